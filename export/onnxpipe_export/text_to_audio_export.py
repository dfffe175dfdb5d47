"""The text-to-audio export path: VITS (text_to_audio_vits.py) or SpeechT5 + a HiFi-GAN vocoder
(text_to_audio_speecht5.py), each as graphs whose noise the runtime draws, validated against torch with the noise
off, in a folder with a manifest. fp32 only for now.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from onnxpipe.manifest import write_manifest
from onnxpipe.tasks.text_to_audio_speecht5 import VOCODER_CONFIG

from . import text_to_audio_speecht5 as speecht5
from . import text_to_audio_vits as vits
from .deps import created_with
from .dtypes import parse_dtypes
from .errors import ConversionError, UnsupportedDtypeError, UnsupportedTaskError, ValidationError
from .folder import install
from .manifest_entries import component_entries, optimization_entry, source_entry, support_entries
from .onnx_files import opset
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files

TASK = "text-to-audio"
MODEL_TYPES = ("vits", "speecht5")


def export_text_to_audio(
    model: Union[str, os.PathLike[str]],
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]] = "fp32",
    *,
    vocoder: Optional[str] = None,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
) -> ExportResult:
    """Export a VITS or SpeechT5 checkpoint for text-to-audio; SpeechT5 takes `vocoder` (a SpeechT5HifiGan hub id or
    folder; transformers' default microsoft/speecht5_hifigan when None)."""
    dtypes = parse_dtypes(dtype)
    if dtypes != ["fp32"]:
        raise UnsupportedDtypeError(f"text-to-audio exports write fp32 only for now; got dtype {dtype!r}.")
    return run_export(
        output, 4, quiet, lambda out, work, progress, notes: _run(model, vocoder, out, revision, validate, work, progress),
    )


def _run(model: Any, vocoder: Optional[str], out: Path, revision: Optional[str], validate: bool, work: Path,
         progress: Any) -> dict[str, Any]:
    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        model_type = source.config.get("model_type")
        if model_type not in MODEL_TYPES:
            raise UnsupportedTaskError(
                f"onnxpipe exports text-to-audio for {', '.join(MODEL_TYPES)}; {source.model!r} is model_type {model_type!r}."
            )
        if model_type == "vits" and vocoder is not None:
            raise UnsupportedTaskError("VITS makes its waveform itself; vocoder= applies to SpeechT5 only.")
        vocoder_path = _vocoder_folder(vocoder or speecht5.DEFAULT_VOCODER) if model_type == "speecht5" else None
    staging = work / "staging"
    staging.mkdir()
    with progress.step("export graphs"):
        if model_type == "vits":
            components = vits.write_graphs(source.path, staging)
        else:
            components = speecht5.export_graphs(source.path, str(vocoder_path), work, staging)
            speecht5.write_tokenizer(source.path, staging)
            shutil.copyfile(vocoder_path / "config.json", staging / VOCODER_CONFIG)
    figures = None
    with progress.step("check fp32 against torch (noise off)" if validate else "skip the torch check"):
        if validate:
            figures = vits.validate(source.path, staging) if model_type == "vits" else speecht5.validate(
                source.path, str(vocoder_path), staging)
            if not figures["passed"]:
                raise ValidationError(
                    f"The fp32 {model_type} export differs from torch with its noise off: max relative diff "
                    f"{figures['max_abs_diff']:.3g} (tolerance {figures['tolerance']:g}), lengths equal: "
                    f"{figures['lengths_equal']}; nothing was written."
                )
    with progress.step("write folder"):
        support = copy_support_files(source.path, source.path, staging)
        if model_type == "speecht5":
            support += [VOCODER_CONFIG] + (["tokenizer.json"] if "tokenizer.json" not in support else [])
        first = staging / f"{next(iter(components.values()))}.onnx"
        manifest: dict[str, Any] = {
            "task": TASK,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"exporter": "torch.onnx" if model_type == "vits" else "optimum", "opset": opset(first),
                       "vocoder": (vocoder or speecht5.DEFAULT_VOCODER) if model_type == "speecht5" else None},
            "optimization": optimization_entry("text-to-audio graphs are not fused yet", 0),
            "components": components,
            "noise": "drawn by the runtime (numpy Generator(seed)); "
            + ("duration_noise and prior_latents are inputs" if model_type == "vits" else "prenet_keep_mask.N inputs"),
            "default_dtype": "fp32",
            # validation figures: max |waveform - torch's| relative to torch's peak, noise off, on the sample texts
            "files": component_entries(staging, ["fp32"], components, lambda d, n: None, {"fp32": figures}),
            "support_files": support_entries(staging, support),
            "validation": {"inputs": "sample texts, noise off, against torch"} if figures else None,
        }
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def _vocoder_folder(vocoder: str) -> Path:
    """A local folder of the SpeechT5HifiGan vocoder (downloaded when a hub id)."""
    try:
        return resolve_source(vocoder).path
    except Exception as exc:
        raise ConversionError(
            f"Cannot find the vocoder {vocoder!r} ({exc}); pass vocoder= a SpeechT5HifiGan folder or hub id."
        ) from exc
