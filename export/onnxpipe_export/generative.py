"""Export for generation tasks: decoder-only `model.onnx`, or `encoder_model.onnx` + `decoder_model_merged.onnx`.

optimum's `-with-past` exports give graphs that take and return the KV cache (past_key_values.N.* ->
present.N.*). For encoder-decoders only the encoder and the merged decoder are kept: the merged
decoder's `use_cache_branch` input picks the first-step or the cached branch, so one session serves
every step (generative_components.py). Variants (int8, fp16, q4) are written per component with transformers.js
names (`decoder_model_merged_quantized.onnx`, `encoder_model_fp16.onnx`, `model_q4.onnx`...), and each
dtype's set of files is validated against torch: greedy tokens and logits (generative_validate.py), and quality
teacher-forced on fixed texts (generative_quality.py; references in quality.npz for `onnxpipe check`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from onnxpipe.manifest import variant_filename, write_manifest

from . import generative_quality as quality
from . import generative_validate as check
from .deps import created_with
from .dtypes import GENERATION_DTYPES, parse_dtypes
from .errors import ConversionError, UnsupportedTaskError
from .folder import install
from .generative_components import stage_components
from .generative_variants import merged_decoder_variant, write_generation_variant
from .manifest_entries import (
    component_entries,
    optimization_entry,
    source_entry,
    stored_quality,
    support_entries,
    with_quality_acceptance,
)
from .marian_tokenizer import is_marian, write_marian_tokenizer
from .onnx_files import opset
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files
from .tasks import ExportTask
from .weight_only_calibration import calibration_windows
from .weight_only_recipes import CALIBRATED, WeightOnlyOptions, weight_only_options

DECODER_ONLY = {"decoder": "model"}
ENCODER_DECODER = {"encoder": "encoder_model", "decoder": "decoder_model_merged"}
NOT_FUSED = (
    "not fused: onnxruntime's optimizer (model_type gpt2) keeps the cache inputs and outputs but fuses only "
    "LayerNorm / SkipLayerNorm / FastGelu on optimum's cache graphs (no attention fusion; logits within 7e-6 on "
    "tiny GPT-2 and Llama); its speed gain was not measured, so the plain graph is written"
)
CACHE_NOTES = {
    "decoder-only": "past_key_values.N.key/value in, present.N.key/value out; an empty cache has length 0",
    "encoder-decoder": (
        "use_cache_branch false at the first step (past inputs are ignored: feed length-0 arrays), true later; "
        "present.N.encoder.* is the cross-attention cache from the first step only (later steps return "
        "placeholders): keep the first step's"
    ),
}


def export_generation(
    model: Union[str, os.PathLike[str]],
    recipe: ExportTask,
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]],
    *,
    optimize: bool = True,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
    weight_only: Optional[WeightOnlyOptions] = None,
) -> ExportResult:
    """Export a generation checkpoint for `recipe` (api.export dispatches here); `weight_only`: the q4 / int8
    recipes' flags (weight_only_recipes.py)."""
    dtypes = parse_dtypes(dtype, allowed=GENERATION_DTYPES)
    options = weight_only or WeightOnlyOptions()
    reason = NOT_FUSED if optimize else "turned off by optimize=False (--no-optimize)"
    return run_export(
        output, 4 + sum(d != "fp32" for d in dtypes), quiet,
        lambda out, work, progress, notes: _run(
            model, recipe, dtypes, out, revision, validate, reason, optimize, options, work, progress, notes
        ),
    )


def check_architecture(recipe: ExportTask, config: dict[str, Any]) -> None:
    """Refuse, with the fix, a model whose shape does not fit the task or that optimum cannot export with a cache."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers optimum's ONNX configs)
    from optimum.exporters.tasks import TasksManager

    model_type = str(config.get("model_type", "")).replace("_", "-")
    encoder_decoder = bool(config.get("is_encoder_decoder"))
    wants_encoder_decoder = recipe.optimum_task.startswith("text2text")
    if encoder_decoder and not wants_encoder_decoder:
        raise UnsupportedTaskError(
            f"{model_type!r} is an encoder-decoder model; export it for text2text-generation, summarization or "
            f"translation, not {recipe.task}."
        )
    if wants_encoder_decoder and not encoder_decoder:
        raise UnsupportedTaskError(
            f"{model_type!r} is not an encoder-decoder model; export it for text-generation, not {recipe.task}."
        )
    try:
        supported = TasksManager.get_supported_tasks_for_model_type(model_type, "onnx", library_name="transformers")
    except KeyError:
        supported = {}
    if recipe.optimum_task not in supported:
        raise UnsupportedTaskError(
            f"Model type {model_type!r} is not supported for {recipe.task} with a KV cache: optimum has no "
            f"{recipe.optimum_task!r} ONNX config for it. Generation exports cover decoder-only models such as "
            "gpt2, llama, mistral, qwen2, phi3, and encoder-decoders such as t5, bart, marian, mbart."
        )


@dataclass(frozen=True)
class _TorchSide:
    """What torch computed once per export: greedy traces for the prompts, and the teacher-forced quality texts."""

    greedy: check.Reference
    quality: quality.QualityReference
    config: dict[str, Any]


@dataclass(frozen=True)
class _Staged:
    """The fp32 components in the staging folder, and optimum's folder (unmerged decoders, support files)."""

    staging: Path
    optimum_folder: Path
    components: dict[str, str]
    encoder_decoder: bool

    def paths(self, dtype: str) -> tuple[Path, Optional[Path]]:
        """(decoder, encoder or None) files of `dtype`."""
        decoder = self.staging / variant_filename(dtype, self.components["decoder"])
        encoder = self.staging / variant_filename(dtype, self.components["encoder"]) if self.encoder_decoder else None
        return decoder, encoder


def _run(
    model: Any, recipe: ExportTask, dtypes: list[str], out: Path, revision: Optional[str], validate: bool,
    not_fused: str, tie_heads: bool, options: WeightOnlyOptions, work: Path, progress: Any, notes: list[str],
) -> dict[str, Any]:
    """The export steps inside the scratch folder `work`; returns the manifest after installing the folder."""
    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        check_architecture(recipe, source.config)
    encoder_decoder = bool(source.config.get("is_encoder_decoder"))
    options = weight_only_options(  # checked again now that the architecture is known (gptq: decoder-only)
        options.q4_method, options.block_size, options.calibration, dtypes=tuple(dtypes), encoder_decoder=encoder_decoder,
    )
    q4 = options.recipe(4)
    calibration = calibration_windows(source.path, q4.calibration) if "q4" in dtypes and q4.method in CALIBRATED else None
    components = ENCODER_DECODER if encoder_decoder else DECODER_ONLY
    staging, optimum_folder, tied = stage_components(source.path, out, recipe, components, work, progress, tie_heads)
    staged = _Staged(staging, optimum_folder, components, encoder_decoder)

    torch_side = None
    validations: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    qualities: dict[str, dict[str, Any]] = {}
    with progress.step("check fp32 against torch" if validate else "skip the torch check"):
        if validate:
            loaded = check.load_torch(source.path, source.config)
            torch_side = _TorchSide(
                check.torch_reference(source.path, source.config, loaded=loaded),
                quality.torch_quality(*loaded, source.config),
                source.config,
            )
            del loaded
            validations["fp32"] = _checked_fp32(staged, torch_side.greedy, notes)
            qualities["fp32"] = quality.measure(*staged.paths("fp32"), torch_side.quality, source.config)
            quality.check_fp32(qualities["fp32"])
    quantization = _write_variants(staged, dtypes, torch_side, validations, qualities, progress, notes, options, calibration)

    with progress.step("write folder"):
        support = copy_support_files(source.path, optimum_folder, staging)
        tokenizer_check = _tokenizer_json(source.path, staging, support)
        if "generation_config.json" not in support:
            _derive_generation_config(source.path, staging)
            support.append("generation_config.json")
        files = component_entries(staging, dtypes, components, lambda dtype, name: quantization.get(name), validations)
        for dtype, figures in qualities.items():  # a dtype's set of files, on its decoder's entry
            files[variant_filename(dtype, components["decoder"])]["quality"] = with_quality_acceptance(figures)
        manifest: dict[str, Any] = {
            "task": recipe.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"optimum_task": recipe.optimum_task, "exporter": "optimum", "opset": opset(staged.paths("fp32")[0])},
            "optimization": optimization_entry(not_fused, tied),
            "is_encoder_decoder": encoder_decoder,
            "components": dict(components),
            "cache": CACHE_NOTES["encoder-decoder" if encoder_decoder else "decoder-only"],
            "default_dtype": dtypes[0],
            "files": files,
            "support_files": support_entries(staging, support),
            "validation": {"inputs": torch_side.greedy.description, "per_dtype": "figures of each dtype's set of files"}
            if torch_side is not None else None,
            "quality": _quality_block(staging, torch_side) if torch_side is not None else None,
        }
        if tokenizer_check is not None:
            manifest["tokenizer_conversion"] = tokenizer_check
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def _checked_fp32(staged: _Staged, reference: check.Reference, notes: list[str]) -> dict[str, Any]:
    """The fp32 files' figures against torch; ValidationError (nothing is written) when their logits are off."""
    figures = check.validate_files(*staged.paths("fp32"), reference, check.FP32_RELATIVE_TOLERANCE)
    return check.accept_fp32(figures, "ONNX", notes)


def _quality_block(staging: Path, torch_side: _TorchSide) -> dict[str, Any]:
    """The manifest's `quality` block (and quality.npz in the staging folder)."""
    return stored_quality(staging, torch_side.quality.texts, {
        "method": (
            "teacher forcing: each variant's decoder reads the texts' token ids; per position, the NLL of the token "
            "that follows and whether its top-1 token is torch fp32's (figures on each dtype's decoder entry, "
            "files[*].quality; nll_increase is relative to torch's NLL)"
        ),
        "inputs": torch_side.quality.description,
        "skipped": torch_side.quality.skipped,
        "warn_below": {"top1_agreement": quality.WARN_MIN_AGREEMENT, "nll_increase_above": quality.WARN_MAX_NLL_INCREASE},
    })


def _write_variants(
    staged: _Staged, dtypes: list[str], torch_side: Optional[_TorchSide],
    validations: dict[str, Optional[dict[str, Any]]], qualities: dict[str, dict[str, Any]], progress: Any,
    notes: list[str], options: WeightOnlyOptions, calibration: Optional[list[Any]],
) -> dict[str, Optional[dict[str, Any]]]:
    """Write every reduced-precision dtype of every component (a merged decoder is converted half by half), and
    add each dtype's figures to `validations` and `qualities` when there is a torch side; returns file name ->
    quantization."""
    quantization: dict[str, Optional[dict[str, Any]]] = {}
    for dtype in dtypes:
        if dtype == "fp32":
            continue
        with progress.step(f"{dtype} variant"):
            for role, stem in staged.components.items():
                target = staged.staging / variant_filename(dtype, stem)
                if role == "decoder" and staged.encoder_decoder:
                    quantization[target.name] = merged_decoder_variant(dtype, staged.optimum_folder, target, options)
                else:
                    fp32 = staged.staging / variant_filename("fp32", stem)
                    quantization[target.name] = write_generation_variant(dtype, fp32, target, options, calibration)
            if torch_side is not None:  # reduced precision is reported (tolerance None), never refused
                name = variant_filename(dtype, staged.components["decoder"])
                validations[dtype] = check.validate_files(*staged.paths(dtype), torch_side.greedy, None)
                qualities[dtype] = quality.measure(*staged.paths(dtype), torch_side.quality, torch_side.config)
                warnings = [check.quality_warning(name, validations[dtype]), quality.quality_warning(dtype, name, qualities[dtype])]
                notes.extend(w for w in warnings if w)
    return quantization


def _tokenizer_json(source: Path, staging: Path, support: list[str]) -> Optional[dict[str, Any]]:
    """Make sure the folder has a tokenizer.json (Marian: converted and checked here); the check figures or None."""
    if "tokenizer.json" in support:
        return None
    if is_marian(source):
        figures = write_marian_tokenizer(source, staging)
        support.append("tokenizer.json")
        return figures
    raise ConversionError(
        f"{str(source)!r} has no tokenizer.json and optimum wrote none; the runtime needs one. Save the tokenizer "
        "with a fast tokenizer class (tokenizer.save_pretrained) and export again."
    )


def _derive_generation_config(source: Path, staging: Path) -> None:
    """Write generation_config.json from config.json, as transformers derives it when a checkpoint has none."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(source))
    transformers.GenerationConfig.from_model_config(config).save_pretrained(str(staging))
