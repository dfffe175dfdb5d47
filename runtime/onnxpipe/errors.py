"""The exceptions onnxpipe raises: each names the bad value and the fix.

They subclass the built-in exception a caller would already catch (ValueError, FileNotFoundError,
RuntimeError), so code written against transformers keeps working.
"""


class OnnxpipeError(Exception):
    """Base class of every error onnxpipe raises on purpose."""


class UnknownTaskError(OnnxpipeError, KeyError):
    """A task name that is neither a task nor an alias onnxpipe knows."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(OnnxpipeError, FileNotFoundError):
    """A model folder or hub id that cannot be found or downloaded."""


class MissingModelFileError(OnnxpipeError, FileNotFoundError):
    """A model folder without a file the pipeline needs (ONNX variant, tokenizer, config)."""


class IntegrityError(OnnxpipeError, ValueError):
    """A file whose sha256 differs from the one the manifest recorded."""


class CorruptModelError(OnnxpipeError, ValueError):
    """A model file that cannot be read: an ONNX graph onnxruntime cannot load, a broken manifest or tokenizer.json."""


class DeviceNotAvailableError(OnnxpipeError, RuntimeError):
    """A device whose execution provider is not in this onnxruntime build."""


class InvalidInputError(OnnxpipeError, ValueError):
    """Pipeline input of the wrong type or shape (None, an int, an empty list...)."""


class InvalidOptionError(OnnxpipeError, ValueError):
    """A pipeline option with a bad value, or one that onnxpipe does not implement."""


class ExportDependencyError(OnnxpipeError, ImportError):
    """The export stage was asked for without its extra installed."""


class CancelledError(OnnxpipeError, RuntimeError):
    """A call stopped because its CancelToken was cancelled (onnxpipe.cancellation): a deadline, a client that
    went away, a shutdown. Not asyncio's CancelledError."""
