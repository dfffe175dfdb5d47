"""The `pipeline()` factory: a task name and a model folder (or hub id) to a ready pipeline object."""

from __future__ import annotations

import importlib
import os
from typing import Any, Optional, Union

from onnxpipe.errors import InvalidOptionError, UnknownTaskError
from onnxpipe.model_folder import ModelFolder
from onnxpipe.registry import GRAPH_HEADS, MODEL_TYPE_CLASSES, TASKS, list_tasks, normalize_task


def pipeline_class(task: str, model_type: Optional[str] = None) -> type:
    """Import and return the pipeline class of a (possibly aliased) task, or of its model family where the
    registry names one for `model_type` (Whisper's speech recognition)."""
    task = normalize_task(task)
    module_name, class_name = MODEL_TYPE_CLASSES.get((task, str(model_type)), TASKS[task]).split(":")
    module = importlib.import_module(f"onnxpipe.tasks.{module_name}")
    return getattr(module, class_name)


def pipeline(
    task: Optional[str] = None,
    model: Union[str, os.PathLike[str], None] = None,
    device: Union[str, int] = "cpu",
    dtype: Optional[str] = None,
    **options: Any,
):
    """Build a pipeline like `transformers.pipeline(task, model=...)`, running on onnxruntime.

    `model` is an onnxpipe export folder, a plain optimum export, a transformers.js-style folder or
    a hub id; `dtype` picks the ONNX variant (fp32, int8, fp16, q4). Remaining keyword arguments are
    the task's default options, checked now.
    """
    if model is None:
        raise InvalidOptionError(
            f"pipeline({task!r}) needs model=: an exported folder (see `onnxpipe export --help`) or a hub id."
        )
    requested = task or ""
    if task is not None:
        task = normalize_task(task)
    folder = ModelFolder.open(model)
    if task is None:
        task = folder.task
        if task is None:
            raise UnknownTaskError(
                f"Cannot infer the task of {str(model)!r}: it has no onnxpipe.json and its config.json "
                f"architectures {folder.config.get('architectures')!r} name no task onnxpipe runs. "
                f"Pass the task, e.g. pipeline('text-classification', model=...). Known: {', '.join(list_tasks())}."
            )
    check_task_matches(task, folder)
    cls = pipeline_class(task, folder.config.get("model_type"))
    if task == "translation" and requested.strip().lower().startswith("translation_"):
        task = requested.strip().lower()  # the pipeline reads the languages (and T5 prefixes) from the full name
    return cls(folder, task=task, device=device, dtype=dtype, **options)


def check_task_matches(task: str, folder: ModelFolder) -> None:
    """InvalidOptionError when the folder's manifest records a task whose graph ends in another head than `task`
    reads (GRAPH_HEADS): its outputs would be misread, or missing."""
    recorded = folder.task if folder.manifest else None
    if recorded is None or recorded == task or task not in GRAPH_HEADS or recorded not in GRAPH_HEADS:
        return
    if GRAPH_HEADS[recorded] == GRAPH_HEADS[task]:
        return
    outputs = ((folder.manifest or {}).get("validation") or {}).get("comparison", {}).get("outputs")
    shown = f" (outputs {', '.join(outputs)})" if isinstance(outputs, list) and outputs else ""
    raise InvalidOptionError(
        f"{folder.path} was exported for {recorded!r}: its graph ends in a {GRAPH_HEADS[recorded]} head{shown}, not "
        f"the {GRAPH_HEADS[task]} head {task!r} needs. Use pipeline({recorded!r}, model=...), or export the checkpoint "
        f"for {task!r} with `onnxpipe export CHECKPOINT --task {task}`."
    )
