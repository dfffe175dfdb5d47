"""onnxpipe: transformers pipelines on onnxruntime, without torch."""

from __future__ import annotations

import importlib
from typing import Any

from onnxpipe import errors
from onnxpipe.pipelines import pipeline
from onnxpipe.registry import list_tasks

__version__ = "0.1.0"

# public names imported on first use, so that `import onnxpipe` stays cheap (the streamers need numpy)
_LAZY = {
    "MediaSources": "onnxpipe.media_sources",
    "Limits": "onnxpipe.limits",
    "TextStreamer": "onnxpipe.generation.streaming",
    "TextIteratorStreamer": "onnxpipe.generation.streaming",
}


def __getattr__(name: str) -> Any:
    """The lazily imported public names (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onnxpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["pipeline", "list_tasks", "errors", "Limits", "MediaSources", "TextStreamer", "TextIteratorStreamer", "__version__"]
