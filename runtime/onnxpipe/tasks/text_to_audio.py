"""Text-to-audio (alias text-to-speech): text -> {"audio": float32 waveform, "sampling_rate": int}, as transformers'
TextToAudioPipeline returns it.

This module holds what every text-to-speech family shares: string inputs, the `forward_params` / `generate_kwargs`
dictionaries transformers takes, the `seed` of the family's noise, and the output dict. The registry sends VITS
folders to text_to_audio_vits.py and SpeechT5 folders to text_to_audio_speecht5.py. Texts run one at a time (as
transformers does by default): each waveform has its own length, none is padded.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.options import check_int
from onnxpipe.tasks.pipeline_base import Pipeline

FAMILIES = "VITS (MMS-TTS) and SpeechT5"


class TextToAudioPipeline(Pipeline):
    """The shared part of the text-to-speech families; a folder of another family is refused with a clear error."""

    OPTIONS: Mapping[str, Any] = {"forward_params": None, "generate_kwargs": None, "seed": None}
    #: forward_params / generate_kwargs names the family implements -> default
    PARAMS: Mapping[str, Any] = {}
    #: whether generate_kwargs apply (transformers refuses them for forward-only models such as VITS)
    GENERATES = False

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        model_type = self.folder.config.get("model_type")
        raise MissingModelFileError(
            f"text-to-audio runs {FAMILIES} folders; {self.folder.path} holds model_type {model_type!r}. "
            "Export a VITS or SpeechT5 checkpoint with `onnxpipe export CHECKPOINT --task text-to-audio`."
        )

    # -- options -------------------------------------------------------------------------------
    def validate_options(self, options: dict[str, Any]) -> None:
        check_int("seed", options["seed"], minimum=0, optional=True, must="must be an int >= 0 or None")
        forward = _params_dict("forward_params", options["forward_params"])
        generate = _params_dict("generate_kwargs", options["generate_kwargs"])
        if generate and not self.GENERATES:
            raise InvalidOptionError(
                f"{type(self).__name__} runs a forward-only model, so generate_kwargs do not apply (transformers "
                f"refuses them too); got {sorted(generate)}. Use forward_params instead."
            )
        params = {**forward, **generate}  # transformers merges generate_kwargs into forward_params
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            takes = ", ".join(sorted(self.PARAMS)) or "none"
            raise InvalidOptionError(
                f"{type(self).__name__} does not take {unknown} in forward_params / generate_kwargs; it takes: {takes}."
            )
        self.check_params(params)

    def check_params(self, params: dict[str, Any]) -> None:
        """Check the family's forward_params / generate_kwargs values (subclasses override)."""

    def params(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The call's forward_params and generate_kwargs merged over the family's defaults."""
        return {**self.PARAMS, **(options["forward_params"] or {}), **(options["generate_kwargs"] or {})}

    # -- inputs --------------------------------------------------------------------------------
    def check_item(self, item: Any) -> Any:
        if not isinstance(item, str):
            raise InvalidInputError(
                f"{self.task} takes a string or a list of strings; got {type(item).__name__}: {item!r:.80}."
            )
        if not item.strip():
            raise InvalidInputError(f"{self.task} got an empty text ({item!r}); pass some words to speak.")
        return item

    # -- running -------------------------------------------------------------------------------
    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """Each text alone, with its own generator seeded by `seed` (fresh entropy when None): a text's audio does not
        depend on the texts beside it in the call, nor on batch_size."""
        params = self.params(options)
        results = []
        for text in items:
            raise_if_cancelled()
            audio = self.synthesize(text, params, np.random.default_rng(options["seed"]), options)
            results.append({"audio": audio, "sampling_rate": self.sampling_rate})
        return results

    def synthesize(self, text: str, params: dict[str, Any], rng: np.random.Generator, options: dict[str, Any]) -> np.ndarray:
        """The waveform of one text, float32, shaped as transformers returns it (subclasses implement)."""
        raise NotImplementedError


def _params_dict(name: str, value: Any) -> dict[str, Any]:
    """forward_params / generate_kwargs: a dict with string keys, or None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidOptionError(f"{name} must be a dict of parameter names to values, or None, got {value!r:.80}.")
    return dict(value)
