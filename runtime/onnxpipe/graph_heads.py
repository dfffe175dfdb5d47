"""Which head a text graph ends in, read from its outputs: the check that a folder without a manifest (a plain
optimum export, a transformers.js repo) really holds the head the requested task reads, so that a base model is
not misread as a classifier (`LABEL_99`) or a classifier as a masked LM.

Folders with a manifest are checked by the task it records (pipelines.check_task_matches) before any session opens.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from onnxpipe.errors import InvalidOptionError
from onnxpipe.registry import GRAPH_HEADS


def head_of_outputs(shapes: Mapping[str, Sequence[Any]], vocab_size: Optional[int]) -> Optional[str]:
    """The GRAPH_HEADS head that graph outputs `shapes` (name -> declared shape) imply, or None when they do not
    say (unusual names, symbolic label axes)."""
    names = set(shapes)
    if {"start_logits", "end_logits"} <= names:
        return GRAPH_HEADS["question-answering"]
    if "logits" not in names:
        return GRAPH_HEADS["feature-extraction"] if "last_hidden_state" in names else None
    shape = list(shapes["logits"])
    if len(shape) == 2:
        return GRAPH_HEADS["text-classification"]
    if len(shape) == 3 and isinstance(shape[-1], int):
        if vocab_size and shape[-1] == vocab_size:
            return GRAPH_HEADS["fill-mask"]
        return GRAPH_HEADS["token-classification"]
    return None


def check_graph_head(task: str, shapes: Mapping[str, Sequence[Any]], vocab_size: Optional[int], where: str) -> None:
    """InvalidOptionError when the graph at `where` ends in a head other than the one `task` reads."""
    wanted = GRAPH_HEADS.get(task)
    found = head_of_outputs(shapes, vocab_size)
    if wanted is None or found is None or found == wanted:
        return
    tasks = [name for name, head in GRAPH_HEADS.items() if head == found]
    outputs = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    raise InvalidOptionError(
        f"{where} ends in a {found} head (outputs: {outputs}), not the {wanted} head {task!r} reads. "
        f"Use pipeline({tasks[0]!r}, model=...), or export the checkpoint for {task!r} with "
        f"`onnxpipe export CHECKPOINT --task {task}`."
    )
