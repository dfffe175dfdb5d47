"""Fetching a model folder from the Hugging Face hub when `model` is a hub id, with errors that name it.

Only metadata (config, tokenizer, manifest) is fetched up front; an ONNX file is fetched when the
pipeline picks it, so a repo holding many variants costs one download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from onnxpipe.errors import ModelNotFoundError

# sentence-transformers module folders: the Dense layers' weights are small and read by the runtime itself
METADATA_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "1_Pooling/*", "*_Dense/model.safetensors"]


def _offline_hint(repo_id: str) -> str:
    return (
        f"Export it on a machine with hub access (`onnxpipe export {repo_id} --task TASK --output DIR`) "
        "and pass the folder as model=, or check the spelling of the id."
    )


def download_metadata(repo_id: str, revision: Optional[str] = None) -> Path:
    """Download (or find in the cache) the non-weight files of a hub repo; return the local snapshot folder."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with tokenizers
        raise ModelNotFoundError(f"{repo_id!r} is not a folder, and huggingface_hub is not installed to fetch it.") from exc
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=METADATA_PATTERNS))
    except Exception as exc:  # offline, unknown repo, gated repo: all end the same way for the user
        raise ModelNotFoundError(
            f"Model {repo_id!r} is not a local folder and could not be fetched from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). {_offline_hint(repo_id)}"
        ) from exc


def list_onnx_files(repo_id: str, revision: Optional[str] = None) -> list[str]:
    """The ONNX file paths a hub repo holds (empty when the listing fails, e.g. offline)."""
    try:
        from huggingface_hub import list_repo_files

        return [f for f in list_repo_files(repo_id, revision=revision) if f.endswith(".onnx")]
    except Exception:
        return []


def download_file(repo_id: str, filename: str, revision: Optional[str] = None) -> Path:
    """Download one file of a hub repo (and its external-data file when it has one)."""
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as exc:
        raise ModelNotFoundError(f"Could not fetch {filename!r} of {repo_id!r}: {exc}. {_offline_hint(repo_id)}") from exc
    for data_name in (filename + "_data", filename + ".data"):
        try:
            hf_hub_download(repo_id, data_name, revision=revision)
        except Exception:
            pass
    return path
