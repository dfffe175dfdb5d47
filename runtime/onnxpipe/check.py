"""`onnxpipe check FOLDER`: measure every ONNX file of an export folder again, on this machine, without torch.

The export stored its validation inputs and torch's outputs beside the files (sha256 in the manifest). Running each
file on them here gives the export's figures as this CPU computes them: int8 kernels differ between CPU classes
(cpu.py), so a folder validated on one machine is proven on another before it serves.

Each kind of folder has its checker in CHECKERS (first match wins): generation folders re-measure teacher-forced
quality (quality.py, quality.npz); single-graph tasks compare outputs (validation.py, validation.npz). A new kind
adds one row; every checker returns a check_report.FolderCheck.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from onnxpipe.check_report import FileCheck, FolderCheck, format_report, verified_file
from onnxpipe.cpu import this_cpu
from onnxpipe.errors import MissingModelFileError
from onnxpipe.manifest import MANIFEST_NAME
from onnxpipe.model_folder import ModelFolder
from onnxpipe.quality import check_generation_folder
from onnxpipe.tasks.whisper.check import check_whisper_folder, is_whisper
from onnxpipe.validation import (
    REFERENCES_NAME,
    Comparison,
    acceptance,
    batch_mask,
    compare,
    load_references,
    run_file,
)

__all__ = ["CHECKERS", "FileCheck", "FolderCheck", "check_folder", "format_report", "run_check"]

GENERATION_TASKS = frozenset({"text-generation", "text2text-generation", "summarization", "translation"})


def _references(folder: ModelFolder, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """The manifest's validation block and the verified path of its references file."""
    validation = manifest.get("validation") or {}
    entry = validation.get("references")
    if not entry:
        how = f"onnxpipe export {manifest.get('source', {}).get('model', 'CHECKPOINT')} --task {manifest.get('task')} --output {folder.path}"
        task = manifest.get("task")
        if not validation:
            raise MissingModelFileError(
                f"{folder.path} holds no validation at all (exported with --no-validate?), so there is nothing to "
                f"re-measure; re-export without --no-validate: `{how}` (with the same --dtype options)."
            )
        raise MissingModelFileError(
            f"{folder.path} holds no stored validation references ({REFERENCES_NAME}): its {task!r} export was "
            "checked against torch when it was written (the figures are in its onnxpipe.json, per file), but "
            f"this kind of export does not store the inputs and outputs `onnxpipe check` re-runs, or an older "
            f"onnxpipe wrote it. Re-exporting with this version (`{how}`) stores them where the export supports it."
        )
    return validation, verified_file(folder.path, entry, "references")


def check_graph_folder(folder: ModelFolder) -> FolderCheck:
    """Run every validated ONNX file of a single-graph export folder on its stored references (validation.npz)."""
    manifest = folder.manifest or {}
    validation, path = _references(folder, manifest)
    batches, reference = load_references(path)
    comparison = Comparison.from_manifest(validation["comparison"])
    masks = [batch_mask(b) for b in batches]
    checks = []
    for rel, entry in manifest.get("files", {}).items():
        exported = entry.get("validation")
        if not exported:
            continue
        onnx_path = folder.path / rel
        if not onnx_path.is_file():
            raise MissingModelFileError(f"{onnx_path} is listed in {MANIFEST_NAME} but missing; restore it or re-export.")
        folder.verify(rel, onnx_path)
        outputs = run_file(onnx_path, comparison, batches)
        here = compare(outputs, reference, masks, comparison, exported.get("tolerance"))
        bound = exported.get("acceptance") or acceptance(exported)
        checks.append(FileCheck(rel, str(entry.get("dtype")), dict(exported), here, bound))
    return FolderCheck(folder.path, this_cpu(), validation.get("measured_on"), tuple(checks))


def is_generation(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest describes a text generation folder (decoder-only or encoder-decoder)."""
    return manifest.get("task") in GENERATION_TASKS


# (kind, does this manifest belong to it, its checker); first match wins, single-graph folders are the rest
Checker = Callable[[ModelFolder], FolderCheck]
CHECKERS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool], Checker], ...] = (
    ("generation", is_generation, check_generation_folder),
    ("whisper", is_whisper, check_whisper_folder),  # word error rates on stored speech (tasks/whisper/check.py)
    ("graph", lambda manifest: True, check_graph_folder),
)


def check_folder(model: Union[str, Path]) -> FolderCheck:
    """Re-measure every validated ONNX file of an export folder on its stored references, on this machine's CPU."""
    folder = ModelFolder.open(model)
    manifest = folder.manifest
    if manifest is None:
        raise MissingModelFileError(
            f"{folder.path} has no {MANIFEST_NAME}: `onnxpipe check` needs a folder written by `onnxpipe export`, "
            "which stores the validation inputs and torch's outputs in it."
        )
    checker = next(run for _, belongs, run in CHECKERS if belongs(manifest))
    return checker(folder)


def run_check(folder: str, as_json: bool = False) -> int:
    """Print the check of `folder`; 0 when every file meets its bound, 1 otherwise."""
    report = check_folder(folder)
    print(json.dumps(report.as_dict(), indent=2) if as_json else format_report(report))
    return 0 if report.passed else 1
