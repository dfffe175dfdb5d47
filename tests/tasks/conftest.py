"""Fixtures the task tests share beyond tests/conftest.py."""

from __future__ import annotations

import pytest
from support.retrieval_folders import RetrievalFolders, retrieval_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> RetrievalFolders:
    """The tiny retrieval folders (SPLADE, ColBERT, BGE-M3, ...), built and exported once per test session."""
    return retrieval_folders(tmp_path_factory)
