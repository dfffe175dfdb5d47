"""onnxpipe_export: turn Hugging Face checkpoints into optimized, validated ONNX folders for onnxpipe.

Importing this package is cheap; torch, transformers and optimum are imported by `export()` itself.
"""

from .api import ExportResult, export

__all__ = ["export", "ExportResult"]
