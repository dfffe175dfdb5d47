"""Export for image-to-text (VisionEncoderDecoder: ViT + GPT-2 captioners, TrOCR): `encoder_model.onnx` +
`decoder_model_merged.onnx` with a KV cache.

optimum's `image-to-text-with-past` task writes the encoder (pixel_values -> last_hidden_state) and three decoders;
as for text encoder-decoders only the merged decoder is kept (generative_components.py). Each dtype's pair is
checked against torch on generated pictures (vision_encoder_decoder_validate.py): logits where the inputs agree and
greedy tokens. q4 writes a 4-bit decoder and an 8-bit encoder, as for Whisper. Other image-to-text families
(Pix2Struct, GIT, BLIP) are refused by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from onnxpipe.manifest import variant_filename, write_manifest

from . import generative_validate
from . import vision_encoder_decoder_validate as check
from .deps import created_with
from .dtypes import GENERATION_DTYPES, parse_dtypes
from .errors import UnsupportedTaskError
from .folder import install
from .generative_components import stage_components
from .generative_variants import merged_decoder_variant, write_generation_variant
from .manifest_entries import component_entries, optimization_entry, source_entry, support_entries
from .onnx_files import opset
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files
from .tasks import ExportTask

MODEL_TYPE = "vision-encoder-decoder"
PIX2STRUCT = "pix2struct"
MODEL_TYPES = (MODEL_TYPE, PIX2STRUCT)
OPTIMUM_TASK = "image-to-text-with-past"
COMPONENTS = {"encoder": "encoder_model", "decoder": "decoder_model_merged"}
CACHE_NOTE = (
    "use_cache_branch false at the first step (past inputs are ignored: feed length-0 arrays), true later; "
    "encoder_hidden_states is fed at every step; present.N.encoder.*, where the decoder has them (TrOCR), is the "
    "cross-attention cache from the first step only: keep the first step's. The encoder takes pixel_values."
)
# the weights each component of the q4 variant gets (as Whisper's: the encoder is small next to its error)
Q4_COMPONENTS = {"encoder": "int8", "decoder": "q4"}


def check_model_type(config: dict[str, Any]) -> None:
    """Refuse image-to-text checkpoints that are neither VisionEncoderDecoder nor captioning Pix2Struct models,
    naming what is supported."""
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise UnsupportedTaskError(
            f"image-to-text exports VisionEncoderDecoder checkpoints (model_type {MODEL_TYPE!r}: ViT + GPT-2 "
            f"captioners, TrOCR) and Pix2Struct captioners, not model_type {model_type!r} (GIT and BLIP are not "
            "supported)."
        )
    if model_type == PIX2STRUCT and config.get("is_vqa"):
        raise UnsupportedTaskError(
            "This Pix2Struct checkpoint is a VQA model (is_vqa true): it reads its question rendered as a header onto "
            "the image, which needs a font from the hub; only captioning Pix2Struct checkpoints (e.g. "
            "google/pix2struct-textcaps-base) are supported for image-to-text."
        )


def export_image_to_text(
    model: Union[str, os.PathLike[str]],
    recipe: ExportTask,
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]],
    *,
    optimize: bool = True,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
) -> ExportResult:
    """Export a VisionEncoderDecoder checkpoint for image-to-text (api.export dispatches here)."""
    dtypes = parse_dtypes(dtype, allowed=GENERATION_DTYPES)
    return run_export(
        output, 4 + sum(d != "fp32" for d in dtypes), quiet,
        lambda out, work, progress, notes: _run(model, recipe, dtypes, out, revision, validate, optimize, work, progress, notes),
    )


def _run(
    model: Any, recipe: ExportTask, dtypes: list[str], out: Path, revision: Optional[str], validate: bool,
    optimize: bool, work: Path, progress: Any, notes: list[str],
) -> dict[str, Any]:
    """The export steps inside the scratch folder `work`; returns the manifest after installing the folder."""
    tolerance = generative_validate.FP32_RELATIVE_TOLERANCE
    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        check_model_type(source.config)
    staging, optimum_folder, tied = stage_components(source.path, out, recipe, COMPONENTS, work, progress, optimize)

    def pair(dtype: str) -> tuple[Path, Path]:
        return staging / variant_filename(dtype, COMPONENTS["decoder"]), staging / variant_filename(dtype, COMPONENTS["encoder"])

    reference = None
    validations: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    with progress.step("check fp32 against torch" if validate else "skip the torch check"):
        if validate:
            reference = check.torch_reference(source.path)
            figures = check.validate_files(*pair("fp32"), reference, tolerance)
            validations["fp32"] = generative_validate.accept_fp32(figures, "image-to-text", notes)

    quantization: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    encoder_quantization: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    for dtype in dtypes:
        if dtype == "fp32":
            continue
        with progress.step(f"{dtype} variant"):
            encoder_dtype = Q4_COMPONENTS["encoder"] if dtype == "q4" else dtype
            decoder_dtype = Q4_COMPONENTS["decoder"] if dtype == "q4" else dtype
            encoder_quantization[dtype] = write_generation_variant(
                encoder_dtype, staging / variant_filename("fp32", COMPONENTS["encoder"]), pair(dtype)[1]
            )
            quantization[dtype] = merged_decoder_variant(decoder_dtype, optimum_folder, pair(dtype)[0])
            if reference is not None:  # reduced precision is reported, never refused
                validations[dtype] = check.validate_files(*pair(dtype), reference, None)
                name = variant_filename(dtype, COMPONENTS["decoder"])
                warning = generative_validate.quality_warning(name, validations[dtype])
                if warning:
                    notes.append(warning)

    with progress.step("write folder"):
        support = _support_files(source.path, optimum_folder, staging)

        def quantization_of(dtype: str, name: str) -> Optional[dict[str, Any]]:
            encoder = name == variant_filename(dtype, COMPONENTS["encoder"])
            return (encoder_quantization if encoder else quantization)[dtype]

        manifest: dict[str, Any] = {
            "task": recipe.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"optimum_task": OPTIMUM_TASK, "exporter": "optimum", "opset": opset(pair("fp32")[0])},
            "optimization": optimization_entry(
                "optimum's cache graphs are not fused" if optimize else "turned off by optimize=False (--no-optimize)", tied
            ),
            "is_encoder_decoder": True,
            "components": dict(COMPONENTS),
            "cache": CACHE_NOTE,
            "default_dtype": dtypes[0],
            "files": component_entries(staging, dtypes, COMPONENTS, quantization_of, validations),
            "support_files": support_entries(staging, support),
            "validation": {"inputs": reference.description, "per_dtype": "figures of each dtype's pair of files"}
            if reference is not None else None,
            "q4_components": dict(Q4_COMPONENTS) if "q4" in dtypes else None,
        }
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def _support_files(source: Path, optimum_folder: Path, staging: Path) -> list[str]:
    """Copy config, tokenizer and processor files; derive generation_config.json from config.json when the
    checkpoint has none (as transformers does); refuse a folder the runtime could not run."""
    support = copy_support_files(source, optimum_folder, staging)
    if "generation_config.json" not in support:
        import transformers

        config = transformers.AutoConfig.from_pretrained(str(source))
        transformers.GenerationConfig.from_model_config(config).save_pretrained(str(staging))
        support.append("generation_config.json")
    for needed in ("tokenizer.json", "preprocessor_config.json"):
        if needed not in support:
            raise UnsupportedTaskError(
                f"{str(source)!r} has no {needed} (and optimum wrote none); the runtime needs it for image-to-text. "
                "Save the image processor and a fast tokenizer with save_pretrained beside the model."
            )
    return support
