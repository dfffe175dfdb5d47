"""Calibration data for GPTQ weight-only quantization: a built-in English text (or the user's file), tokenized
with the checkpoint's tokenizer and cut into windows that the fp32 decoder reads with an empty KV cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from .errors import ExportOptionError
from .samples import load_tokenizer
from .weight_only_recipes import BUILTIN_CALIBRATION

WINDOW = 128  # tokens per calibration sample
MAX_SAMPLES = 16

# Plain English of several registers (narrative, instructions, dialogue, facts, code-like text); none of it is
# used by the export's validation or quality texts.
BUILTIN_TEXT = """\
The lighthouse keeper climbed the spiral stairs every evening at six, long after the ships had stopped needing
him. He polished the lens, wound the clock, and wrote a single line in the logbook: the weather, the wind, and
whether anyone had come to visit. Most days the answer was no. In the spring a girl from the village began to
bring him bread on Saturdays, and he taught her the names of the stars in exchange.

To make a simple tomato sauce, warm two tablespoons of olive oil in a wide pan over medium heat. Add one chopped
onion and a pinch of salt, and cook until soft, about eight minutes. Stir in two cloves of garlic, then a can of
crushed tomatoes. Let it simmer for twenty minutes, stirring now and then, and season with pepper and basil.

"Can you help me with my homework?" asked Sam. "Of course," said his mother. "What is it about?" "Fractions. I
don't understand why one half is bigger than one third." She took a sheet of paper and drew two circles.

The Amazon rainforest covers about five and a half million square kilometres across nine countries. It produces
a large share of the world's oxygen and holds roughly a tenth of all known species. Scientists warn that
deforestation, driven by farming and logging, could push parts of the forest past a tipping point.

User: What's the difference between a list and a tuple in Python?
Assistant: A list is mutable, so you can add, remove or change its items after creating it. A tuple is
immutable: once created, it cannot change. Tuples are often used for fixed collections, such as coordinates.

Dear Ms. Patel, thank you for your application for the position of data analyst. We were impressed by your
experience and would like to invite you to an interview on Thursday, March 14, at 10:30 a.m. Please let us
know whether this time suits you. Kind regards, the hiring team.

In 1969, Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon, while Michael Collins
orbited above them. The mission lasted eight days, and the astronauts brought back 21.5 kilograms of rock.
"""


def calibration_text(calibration: Optional[str]) -> str:
    """The built-in English text, or the given file's contents (a clear error when it is empty)."""
    if calibration in (None, BUILTIN_CALIBRATION):
        return BUILTIN_TEXT
    text = Path(str(calibration)).read_text(encoding="utf-8")
    if not text.strip():
        raise ExportOptionError(f"Calibration file {calibration!r} is empty; give it some text in the model's language.")
    return text


def calibration_windows(source: Path, calibration: Optional[str]) -> list[np.ndarray]:
    """The calibration text as token-id windows of WINDOW tokens (at most MAX_SAMPLES), tokenized by `source`."""
    tokenizer = load_tokenizer(source)
    ids = np.asarray(tokenizer(calibration_text(calibration), verbose=False)["input_ids"], dtype=np.int64)
    if ids.size < 8:
        raise ExportOptionError(f"The calibration text has {ids.size} tokens; give it at least a few sentences.")
    return [ids[start:start + WINDOW] for start in range(0, ids.size, WINDOW)][:MAX_SAMPLES]


class DecoderFeeds:
    """A CalibrationDataReader for a decoder-only graph: each window with an empty cache, ones as the mask."""

    def __init__(self, model: Any, windows: list[np.ndarray]):
        self.inputs = {i.name: i for i in model.graph.input}
        self.windows = windows
        self._position = 0

    def _feeds(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        for name, value in self.inputs.items():
            if name == "input_ids":
                feeds[name] = ids[None]
            elif name == "attention_mask":
                feeds[name] = np.ones((1, ids.size), dtype=np.int64)
            elif name == "position_ids":
                feeds[name] = np.arange(ids.size, dtype=np.int64)[None]
            elif name.startswith("past_key_values."):
                dims = value.type.tensor_type.shape.dim  # [batch, heads, length, head_dim]
                feeds[name] = np.zeros((1, dims[1].dim_value, 0, dims[3].dim_value), dtype=np.float32)
            else:
                raise ExportOptionError(
                    f"GPTQ calibration does not know how to feed the decoder input {name!r}; choose another "
                    "--q4-method for this model."
                )
        return feeds

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self._position >= len(self.windows):
            return None
        self._position += 1
        return self._feeds(self.windows[self._position - 1])

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter([self._feeds(ids) for ids in self.windows])
