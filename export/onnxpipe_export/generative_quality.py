"""Measured quality of generation exports: each variant teacher-forced against torch fp32 on fixed texts.

The torch side lives here: tokenize a fixed multi-paragraph English text (337 tokens on SmolLM2's tokenizer)
and, when the tokenizer has a chat template, one chat rendered with it; run torch fp32 over the ids once and keep
each position's NLL of the following token and torch's top choice (quality.QualityText). Encoder-decoders read a
fixed source text in the encoder and are teacher-forced on a fixed English target in the decoder. Each variant's
files are then measured torch-free by the runtime (quality.measure_variant), which `onnxpipe check` reruns later
on the user's CPU from the stored references (quality.npz).

Figures are reported, and warned about below the issue-16 targets (WARN_*); only fp32 can fail the export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.generation.teacher_forced import next_token_scores
from onnxpipe.quality import QualityText, measure_variant

from .errors import ValidationError

QUALITY_TEXT = (
    "The lighthouse at the end of the harbour was built in 1872, when the town still lived from fishing. For more "
    "than a century a keeper climbed its hundred and twelve steps every evening to light the lamp, wind the clockwork "
    "that turned the lens, and write the weather in a thick book. The last keeper, a quiet woman named Ellen Hart, "
    "kept that book for twenty-six years. Her entries are short: the wind, the sea, the ships that passed, and now "
    "and then a line about the birds that rested on the gallery during storms.\n\n"
    "When the lamp was automated in 1981, the book went to the town museum. Visitors rarely asked to see it until a "
    "group of students from the local school began to read it page by page. They counted the storms in each decade, "
    "noted the dates on which the first swallows arrived, and compared her notes on the sea ice with the records of "
    "the national weather service. The numbers agreed closely, and in a few places her book filled gaps where the "
    "official records were missing.\n\n"
    "Today the students' tables hang on the wall beside the old lens. They show that spring now comes about eleven "
    "days earlier than it did when the lighthouse was new, and that the harbour freezes far less often. The museum "
    "has added a small desk where visitors can write down what they see from the window: the colour of the water, "
    "the boats, the birds. Nobody knows yet what these notes will be used for, but the town has learned that "
    "careful observation, written down plainly and kept for a long time, can become more valuable than anyone "
    "expected when the first line was written."
)
QUALITY_CHAT: tuple[dict[str, str], ...] = (
    {"role": "user", "content": "How do plants make their food? Please keep it short."},
    {
        "role": "assistant",
        "content": (
            "Plants make their food through photosynthesis. Their leaves take in sunlight, carbon dioxide from the "
            "air and water from the roots, and turn them into sugar and oxygen. The sugar feeds the plant and helps "
            "it grow, while the oxygen is released into the air."
        ),
    },
)
# encoder-decoders: the source is QUALITY_TEXT; the decoder is teacher-forced on this English target
QUALITY_TARGET = (
    "A lighthouse keeper wrote down the weather for many years. Students later read her book, compared it with "
    "official records and found that spring now comes earlier and the harbour freezes less often."
)
MAX_TOKENS = 512  # per text; a model's position table may allow fewer (tiny test models: 128)

# Warnings in the export summary (never errors): the issue-16 targets. 4-bit: top-1 agreement >= 0.85 and NLL at
# most 2% above torch's. 8-bit and fp16: top-1 agreement >= 0.97 (the issue sets no NLL target for them; the 4-bit
# bound of 2% is used, which they should meet easily).
WARN_MIN_AGREEMENT = {"q4": 0.85, "int8": 0.97, "fp16": 0.97}
WARN_MAX_NLL_INCREASE = {"q4": 0.02, "int8": 0.02, "fp16": 0.02}
# fp32 must follow torch: anything else is an export bug (fp32 logits are also held to a tolerance elsewhere). A
# near tie between two tokens may flip a position or two on a real model, hence not exactly 1.0.
FP32_MIN_AGREEMENT = 0.99
FP32_MAX_NLL_CHANGE = 1e-3  # relative, either way


@dataclass(frozen=True)
class QualityReference:
    """The torch fp32 side, computed once per export: the texts with torch's scores and what they were."""

    texts: tuple[QualityText, ...]
    description: str
    skipped: dict[str, str]


def _max_positions(tokenizer: Any, config: Mapping[str, Any]) -> int:
    """The most tokens one text may have: MAX_TOKENS, the position table and the tokenizer's model_max_length."""
    limits = [MAX_TOKENS] + [int(config[k]) for k in ("n_positions", "max_position_embeddings") if isinstance(config.get(k), int)]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < 1_000_000:
        limits.append(model_max)
    return min(limits)


def _torch_scores(model: Any, ids: np.ndarray, source: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """torch fp32's NLL of each following token and its top-1 id, positions 0..T-2."""
    import torch

    with torch.no_grad():
        if source is None:
            logits = model(input_ids=torch.from_numpy(ids)).logits
        else:
            logits = model(input_ids=torch.from_numpy(source), attention_mask=torch.ones_like(torch.from_numpy(source)),
                           decoder_input_ids=torch.from_numpy(ids)).logits
    scores = next_token_scores(logits[0, :-1].float().numpy(), ids[0, 1:])
    # rounded as quality.npz stores them, so `onnxpipe check` starts from exactly the export's reference
    return scores.nll.astype(np.float32).astype(np.float64), scores.top1


def _decoder_only_ids(tokenizer: Any, limit: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The narrative, and the chat rendered with the tokenizer's template when it has one."""
    ids = {"text": tokenizer(QUALITY_TEXT, truncation=True, max_length=limit)["input_ids"]}
    skipped = {}
    if getattr(tokenizer, "chat_template", None):
        chat = tokenizer.apply_chat_template(
            list(QUALITY_CHAT), tokenize=True, add_generation_prompt=False, truncation=True, max_length=limit
        )
        ids["chat"] = list(chat["input_ids"] if isinstance(chat, Mapping) else chat)[:limit]
    else:
        skipped["chat"] = "the tokenizer has no chat template"
    return {name: np.asarray(v, dtype=np.int64)[None] for name, v in ids.items()}, skipped


def torch_quality(tokenizer: Any, model: Any, config: Mapping[str, Any]) -> QualityReference:
    """Tokenize the quality texts for `model` and run torch fp32 over them once."""
    limit = _max_positions(tokenizer, config)
    if not config.get("is_encoder_decoder"):
        ids, skipped = _decoder_only_ids(tokenizer, limit)
        texts = tuple(QualityText(name, v, None, *_torch_scores(model, v, None)) for name, v in ids.items())
        chat = f", and a {texts[1].tokens + 1}-token chat in the tokenizer's template" if len(texts) > 1 else ""
        description = f"a {texts[0].tokens + 1}-token English narrative{chat}; teacher-forced, torch fp32 as reference"
        return QualityReference(texts, description, skipped)
    source = np.asarray(tokenizer(QUALITY_TEXT, truncation=True, max_length=limit)["input_ids"], dtype=np.int64)[None]
    start = model.generation_config.decoder_start_token_id
    start = model.config.decoder_start_token_id if start is None else start
    start = start[0] if isinstance(start, list) else start
    target = [int(start), *tokenizer(text_target=QUALITY_TARGET, truncation=True, max_length=limit - 1)["input_ids"]]
    ids = np.asarray(target, dtype=np.int64)[None]
    text = QualityText("text", ids, source, *_torch_scores(model, ids, source))
    description = (
        f"encoder: a {source.shape[1]}-token English narrative; decoder teacher-forced on a {ids.shape[1]}-token "
        "English summary of it (after the start token); torch fp32 as reference"
    )
    return QualityReference((text,), description, {"chat": "encoder-decoder models read no chat"})


def measure(decoder: Path, encoder: Optional[Path], reference: QualityReference, config: Mapping[str, Any]) -> dict[str, Any]:
    """One variant's figures against torch, measured with the runtime's code on this CPU."""
    return measure_variant(decoder, encoder, reference.texts, config)


def check_fp32(figures: Mapping[str, Any]) -> None:
    """ValidationError (nothing is written) when the fp32 files do not follow torch teacher-forced."""
    change = abs(float(figures["nll_increase"]))
    if figures["top1_agreement"] < FP32_MIN_AGREEMENT or change > FP32_MAX_NLL_CHANGE:
        raise ValidationError(
            f"The fp32 ONNX export differs from torch teacher-forced: top-1 agreement {figures['top1_agreement']:.4f} "
            f"(at least {FP32_MIN_AGREEMENT} expected), NLL {figures['nll']:.4f} vs torch {figures['nll_torch']:.4f} "
            f"(relative change {change:.2e}, at most {FP32_MAX_NLL_CHANGE:g}); nothing was written."
        )


def quality_warning(dtype: str, name: str, figures: Mapping[str, Any]) -> Optional[str]:
    """A warning line when a reduced-precision variant misses its target (WARN_MIN_AGREEMENT / WARN_MAX_NLL_INCREASE)."""
    if dtype not in WARN_MIN_AGREEMENT:
        return None
    floor, ceiling = WARN_MIN_AGREEMENT[dtype], WARN_MAX_NLL_INCREASE[dtype]
    if figures["top1_agreement"] >= floor and figures["nll_increase"] <= ceiling:
        return None
    return (
        f"{name}: teacher-forced on {figures['tokens']} tokens, top-1 agreement with torch fp32 "
        f"{figures['top1_agreement']:.1%} (target >= {floor:.0%}) and NLL {figures['nll_increase']:+.2%} "
        f"(target <= +{ceiling:.0%}): greedy outputs will differ from torch's; prefer another dtype where quality matters."
    )
