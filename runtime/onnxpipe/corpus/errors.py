"""The errors of corpus embedding: a bad row or file, and Parquet asked for without pyarrow."""

from __future__ import annotations

from typing import Optional

from onnxpipe.errors import InvalidInputError, InvalidOptionError, OnnxpipeError

CORPUS_INSTALL = "pip install 'onnxpipe[corpus]'"


class CorpusInputError(InvalidInputError):
    """A corpus row (or file) that cannot be embedded; `row` is its 0-based row number where there is one."""

    def __init__(self, message: str, row: Optional[int] = None):
        super().__init__(message)
        self.row = row


class CorpusStateError(InvalidOptionError):
    """A partial run beside the output that another command started, or an output that is already there."""


class CorpusDependencyError(OnnxpipeError, ImportError):
    """Parquet input or output asked for without pyarrow (the `corpus` extra)."""


def require_pyarrow(what: str):
    """The `pyarrow.parquet` module, or CorpusDependencyError naming the extra that installs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise CorpusDependencyError(
            f"{what} needs pyarrow, which is not installed. Install it with: {CORPUS_INSTALL} "
            "(JSONL and CSV input and .npy output work without it)."
        ) from exc
    return pq
