"""onnxpipe: transformers pipelines on onnxruntime, without torch."""

from onnxpipe.pipelines import pipeline
from onnxpipe.registry import list_tasks

__version__ = "0.1.0"

__all__ = ["pipeline", "list_tasks", "__version__"]
