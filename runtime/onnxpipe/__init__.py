"""onnxpipe: transformers pipelines on onnxruntime, without torch."""

from .registry import list_tasks, pipeline

__version__ = "0.1.0"

__all__ = ["pipeline", "list_tasks", "__version__"]
