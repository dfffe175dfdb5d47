"""Checks that the export extra is installed, without importing it, and reports its versions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Optional

from .errors import ExportDependencyError

# module the export stage imports -> distribution that provides it
REQUIRED_MODULES: dict[str, str] = {
    "torch": "torch",
    "transformers": "transformers",
    "optimum": "optimum",
    "optimum.exporters.onnx": "optimum-onnx",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
}

# distributions recorded in the manifest's `created_with`
RECORDED_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxpipe",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def missing_dependencies() -> list[str]:
    """The distributions of the export extra that are not installed (empty when all are)."""
    return [dist for module, dist in REQUIRED_MODULES.items() if not _has_module(module)]


def require_export_dependencies() -> None:
    """Raise ExportDependencyError naming the missing packages and the install command."""
    missing = missing_dependencies()
    if missing:
        raise ExportDependencyError(
            f"The export stage needs {', '.join(missing)}, which is not installed. "
            "Install it with: pip install 'onnxpipe[export]'"
        )


def distribution_version(name: str) -> Optional[str]:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def created_with() -> dict[str, Optional[str]]:
    """The versions of the packages that shaped an export, for the manifest."""
    return {name: distribution_version(name) for name in RECORDED_DISTRIBUTIONS}


def import_export_stack() -> None:
    """Import torch, transformers and optimum's exporter (seconds, once per process).

    A broken install gives ExportDependencyError.
    """
    try:
        import optimum.exporters.onnx  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ExportDependencyError(
            f"The export stage could not import its dependencies ({exc}). "
            "Reinstall them with: pip install 'onnxpipe[export]'"
        ) from exc
