"""The exceptions the export stage raises on purpose; each names the bad value and the fix.

They extend `onnxpipe.errors`, so a caller can catch `onnxpipe.errors.OnnxpipeError` for both halves,
and the built-in exception a caller would already catch (FileNotFoundError, ValueError, RuntimeError).
"""

from __future__ import annotations

from onnxpipe.errors import (
    ExportDependencyError,
    InvalidOptionError,
    ModelNotFoundError,
    OnnxpipeError,
    UnknownTaskError,
)

__all__ = [
    "ExportError",
    "SourceNotFoundError",
    "ExportOptionError",
    "UnsupportedDtypeError",
    "UnsupportedTaskError",
    "ConversionError",
    "ValidationError",
    "OutputFolderError",
    "ExportDependencyError",
    "UnknownTaskError",
]


class ExportError(OnnxpipeError):
    """Base class of every error the export stage raises on purpose."""


class SourceNotFoundError(ExportError, ModelNotFoundError):
    """A checkpoint folder without config.json, or a hub id that cannot be downloaded."""


class ExportOptionError(ExportError, InvalidOptionError):
    """An export option with a bad value, or one the export stage does not implement."""


class UnsupportedDtypeError(ExportOptionError):
    """A dtype the export stage does not write (yet) for this task."""


class UnsupportedTaskError(ExportOptionError):
    """A task the runtime knows but the export stage has no recipe for yet."""


class ConversionError(ExportError, RuntimeError):
    """optimum, the graph optimizer or the quantizer failed on this checkpoint."""


class ValidationError(ExportError, RuntimeError):
    """The fp32 ONNX graph does not match the torch model within tolerance."""


class OutputFolderError(ExportError, FileExistsError):
    """An output folder that holds files other than a previous onnxpipe export."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none), for one-line reports."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class ExportQualityWarning(UserWarning):
    """A reduced-precision file that disagrees with torch more than expected, or a fusion that was dropped."""
