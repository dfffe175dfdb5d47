"""Step 5: compare each written ONNX file with the torch model on a few varied inputs of its modality: tokenized
texts (and text pairs) here, generated pictures (image_samples.py) or generated clips (audio_samples.py)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.validation import Comparison, fp32_tolerance, run_file, stacked
from onnxpipe.validation import compare as compare_outputs

from .audio_samples import build_audio_samples
from .document_samples import build_document_samples
from .errors import ConversionError, first_line
from .image_samples import build_image_samples
from .samples import Batch, Samples, load_tokenizer, max_length
from .tasks import ExportTask

SAMPLE_TEXTS: tuple[str, ...] = (
    "Hello world.",
    "ok",
    "The quick brown fox jumps over the lazy dog.",
    "I did not like this film at all: it was far too long, and the plot made no sense to me.",
    "Café crème, naïve façade, Ærøskøbing, São Paulo; 東京は日本の首都です。",
    "Numbers like 3.14 and 2026, symbols #@%&!, and a link: https://example.com/a?b=c",
    "She said \"it's fine\" and then left the room without another word.",
    "When the people of the town came back after the first long day of work, they said that the new road "
    "was good, that the old bridge would have to go, and that nobody could think of a better way to spend "
    "the money they had saved over the year for the school, the market and the small hospital by the river.",
)
SAMPLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("A man is eating food.", "A man is eating a piece of bread."),
    ("The cat sits on the mat.", "It is raining in Paris today, and the streets are empty."),
    ("Is this the right way to the station?", "Yes."),
    ("Le chat dort.", "猫が寝ている。"),
)
# a reduced-precision embedding whose mean-pooled cosine to torch falls below this gets a warning. Measured on
# real all-MiniLM-L6-v2 with these samples: per-channel int8 gives 0.954 (on "ok") to 0.994, per-tensor int8
# (the failure this guards against) 0.86 to 0.97, fp16 1.0000.
MIN_COSINE_WARN = 0.93
# a reduced-precision reranker that orders fewer validation row pairs than this like torch gets a warning
MIN_ORDER_AGREEMENT_WARN = 0.9


def _describe(name: str, batch: Batch) -> str:
    lengths = batch.mask.sum(axis=1)
    return f"{len(lengths)} {name} in one padded batch, {int(lengths.min())}-{int(lengths.max())} tokens"


def build_samples(source: Path, recipe: ExportTask, config: dict[str, Any]) -> Samples:
    """Tokenize the sample texts (and text pairs, for tasks that take them) with the checkpoint's tokenizer;
    image tasks get generated pictures processed by the checkpoint's image processor instead."""
    if recipe.modality == "audio":
        return build_audio_samples(source)
    if recipe.modality == "document":
        return build_document_samples(source, config)
    if recipe.modality != "text":
        return build_image_samples(source, recipe.modality)
    tokenizer = load_tokenizer(source)
    options = dict(padding=True, truncation=True, max_length=max_length(tokenizer, config), return_tensors="np")
    batches = [Batch(dict(tokenizer(list(SAMPLE_TEXTS), **options)))]
    parts = [_describe("texts", batches[0])]
    if recipe.text_pairs:
        firsts, seconds = zip(*SAMPLE_PAIRS)
        batches.append(Batch(dict(tokenizer(list(firsts), list(seconds), **options))))
        parts.append(_describe("text pairs", batches[1]))
    return Samples(tuple(batches), "; ".join(parts))


class TorchReference:
    """The torch model, loaded once, and its outputs on the sample batches."""

    def __init__(self, source: Path, recipe: ExportTask) -> None:
        import torch
        import transformers

        model_class = getattr(transformers, recipe.model_class)
        try:
            self.model = model_class.from_pretrained(str(source)).eval()
        except Exception as exc:
            raise ConversionError(f"Cannot load {str(source)!r} with {recipe.model_class}: {first_line(exc)}") from exc
        self.recipe = recipe
        self._torch = torch
        self._accepted = set(inspect.signature(self.model.forward).parameters)

    def outputs(self, samples: Samples) -> list[np.ndarray]:
        """The reference output (float32 numpy) for each batch."""
        torch = self._torch
        results = []
        with torch.inference_mode():
            for batch in samples.batches:
                kwargs = {k: torch.from_numpy(v) for k, v in batch.feeds.items() if k in self._accepted}
                out = self.model(**kwargs)
                results.append(stacked([out[name].float().numpy() for name in self.recipe.outputs]))
        return results


def comparison_of(recipe: ExportTask) -> Comparison:
    """How the runtime's validation compares this task's outputs (onnxpipe.validation)."""
    return Comparison(tuple(recipe.outputs), recipe.token_level, recipe.metric, recipe.class_axis)


def onnx_outputs(path: Path, recipe: ExportTask, samples: Samples) -> list[np.ndarray]:
    """Run an ONNX file on CPU with onnxruntime and the runtime's session settings for this CPU class."""
    try:
        return run_file(path, comparison_of(recipe), [b.feeds for b in samples.batches])
    except InvalidInputError as exc:
        raise ConversionError(f"{exc} (task {recipe.task!r})") from exc


def tolerance(reference: list[np.ndarray], recipe: ExportTask, samples: Samples) -> float:
    """The fp32 tolerance: 1e-4 times the reference's largest magnitude (at least 1), as differences scale with it."""
    return fp32_tolerance(reference, [b.mask for b in samples.batches], recipe.token_level)


def compare(
    outputs: list[np.ndarray],
    reference: list[np.ndarray],
    recipe: ExportTask,
    samples: Samples,
    tolerance: Optional[float] = None,
) -> dict[str, Optional[float]]:
    """Figures of one file against the reference: max_abs_diff, tolerance, and top1_agreement or min_cosine."""
    return compare_outputs(outputs, reference, [b.mask for b in samples.batches], comparison_of(recipe), tolerance)


def quality_warning(name: str, figures: dict[str, Any]) -> Optional[str]:
    """A warning for a reduced-precision file whose figures show it disagrees with torch, else None."""
    if figures.get("top1_agreement", 1.0) < 1.0:
        return (
            f"{name}: top-1 label agrees with torch on only {figures['top1_agreement']:.0%} of validation rows "
            f"(max_abs_diff {figures['max_abs_diff']:.3g}); check accuracy before serving it."
        )
    if figures.get("order_agreement", 1.0) < MIN_ORDER_AGREEMENT_WARN:
        return (
            f"{name}: puts only {figures['order_agreement']:.0%} of validation row pairs in torch's score order "
            f"(max_abs_diff {figures['max_abs_diff']:.3g}); check ranking quality before serving it."
        )
    if figures.get("min_cosine", 1.0) < MIN_COSINE_WARN:
        return (
            f"{name}: mean-pooled embeddings reach a cosine of only {figures['min_cosine']:.4f} to torch "
            f"(below {MIN_COSINE_WARN}); check retrieval quality before serving it."
        )
    return None
