"""The export recipe of each pipeline task: optimum task, torch model class, output to compare.

Adding a task to the export stage is one row in `EXPORT_TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxpipe.registry import normalize_task

from .errors import UnsupportedTaskError


@dataclass(frozen=True)
class ExportTask:
    """How to export and validate one pipeline task."""

    task: str  # canonical pipeline task name
    optimum_task: str  # task name for optimum.exporters.onnx.main_export
    model_class: str  # transformers auto class that loads the torch reference
    outputs: tuple[str, ...]  # outputs compared against torch (several are stacked on a new last axis)
    token_level: bool  # output has a sequence axis: compare only where attention_mask == 1
    # "top1": fraction of rows (real tokens when token-level) whose argmax over class_axis agrees;
    # "span": fraction of rows whose argmax over the real tokens agrees, per output (QA start/end);
    # "cosine": min cosine of mean-pooled rows
    metric: str
    text_pairs: bool = False  # also validate on a batch of text pairs
    # optimum's library_name: without it, a folder holding sentence_*.json files is exported as a whole
    # sentence-transformers model (outputs token_embeddings + sentence_embedding, not the transformers outputs)
    optimum_library: str = "transformers"
    # "image": validated and calibrated on generated pictures (image_samples.py); "image-text": pictures
    # plus tokenized captions (CLIP)
    modality: str = "text"
    class_axis: int = -1  # the axis "top1" takes the argmax over (1 for per-pixel logits (B, C, H, W))


EXPORT_TASKS: dict[str, ExportTask] = {
    t.task: t
    for t in (
        ExportTask(
            task="text-classification",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            text_pairs=True,
        ),
        ExportTask(
            task="zero-shot-classification",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            text_pairs=True,
        ),
        ExportTask(
            task="token-classification",
            optimum_task="token-classification",
            model_class="AutoModelForTokenClassification",
            outputs=("logits",),
            token_level=True,
            metric="top1",
        ),
        ExportTask(
            task="question-answering",
            optimum_task="question-answering",
            model_class="AutoModelForQuestionAnswering",
            outputs=("start_logits", "end_logits"),
            token_level=True,
            metric="span",
            text_pairs=True,
        ),
        ExportTask(
            task="fill-mask",
            optimum_task="fill-mask",
            model_class="AutoModelForMaskedLM",
            outputs=("logits",),
            token_level=True,
            metric="top1",
        ),
        ExportTask(
            task="feature-extraction",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=True,
            metric="cosine",
        ),
        ExportTask(
            task="image-classification",
            optimum_task="image-classification",
            model_class="AutoModelForImageClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="image",
        ),
        ExportTask(  # top1 over each query's class logits joined with its box: a changed box also counts
            task="object-detection",
            optimum_task="object-detection",
            model_class="AutoModelForObjectDetection",
            outputs=("logits", "pred_boxes"),
            token_level=False,
            metric="top1",
            modality="image",
        ),
        ExportTask(
            task="image-segmentation",
            optimum_task="semantic-segmentation",
            model_class="AutoModelForSemanticSegmentation",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="image",
            class_axis=1,
        ),
        ExportTask(
            task="zero-shot-image-classification",
            optimum_task="zero-shot-image-classification",
            model_class="AutoModelForZeroShotImageClassification",
            outputs=("logits_per_image",),
            token_level=False,
            metric="top1",
            modality="image-text",
        ),
    )
}


def export_task(task: str) -> ExportTask:
    """The export recipe of a task name or alias; UnknownTaskError or UnsupportedTaskError when there is none."""
    name = normalize_task(task)
    if name not in EXPORT_TASKS:
        raise UnsupportedTaskError(
            f"The export stage cannot export task {name!r} yet; it exports {', '.join(sorted(EXPORT_TASKS))}."
        )
    return EXPORT_TASKS[name]
