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
    output: str  # output compared against torch
    token_level: bool  # output has a sequence axis: compare only where attention_mask == 1
    metric: str  # "top1" (fraction of rows whose argmax agrees) or "cosine" (min cosine of mean-pooled rows)
    text_pairs: bool = False  # also validate on a batch of text pairs
    # optimum's library_name: without it, a folder holding sentence_*.json files is exported as a whole
    # sentence-transformers model (outputs token_embeddings + sentence_embedding, not the transformers outputs)
    optimum_library: str = "transformers"


EXPORT_TASKS: dict[str, ExportTask] = {
    t.task: t
    for t in (
        ExportTask(
            task="text-classification",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            output="logits",
            token_level=False,
            metric="top1",
            text_pairs=True,
        ),
        ExportTask(
            task="feature-extraction",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            output="last_hidden_state",
            token_level=True,
            metric="cosine",
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
