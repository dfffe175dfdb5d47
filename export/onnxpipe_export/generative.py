"""Export for generation tasks: decoder-only `model.onnx`, or `encoder_model.onnx` + `decoder_model_merged.onnx`.

optimum's `-with-past` exports give graphs that take and return the KV cache (past_key_values.N.* ->
present.N.*). For encoder-decoders only the encoder and the merged decoder are kept: the merged
decoder's `use_cache_branch` input picks the first-step or the cached branch, so one session serves
every step. Variants (int8, fp16, q4) are written per component with transformers.js names
(`decoder_model_merged_quantized.onnx`, `encoder_model_fp16.onnx`, `model_q4.onnx`...), and each
dtype's set of files is validated against torch (generative_validate.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from onnxpipe.manifest import variant_filename, write_manifest

from .errors import ConversionError, UnsupportedTaskError, ValidationError
from .onnx_files import place_graph
from .tied_weights import fuse_file
from .tasks import ExportTask

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
    model: Union[str, "os.PathLike[str]"],
    recipe: ExportTask,
    output: Union[str, "os.PathLike[str]"],
    dtype: Union[str, Sequence[str]],
    *,
    optimize: bool = True,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
) -> Any:
    """Export a generation checkpoint for `recipe` (api.export dispatches here); returns api.ExportResult."""
    from .dtypes import GENERATION_DTYPES, parse_dtypes
    from .frame import run_export

    dtypes = parse_dtypes(dtype, allowed=GENERATION_DTYPES)
    reason = NOT_FUSED if optimize else "turned off by optimize=False (--no-optimize)"
    return run_export(
        output, 4 + sum(d != "fp32" for d in dtypes), quiet,
        lambda out, work, progress, notes: _run(
            model, recipe, dtypes, out, revision, validate, reason, optimize, work, progress, notes
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


def _optimum_export(source: Path, work: Path, recipe: ExportTask, components: dict[str, str]) -> dict[str, Path]:
    """Run optimum's main_export; return the fp32 graph of each component (the other decoders are dropped)."""
    from optimum.exporters.onnx import main_export

    from .errors import first_line

    try:
        main_export(str(source), str(work), task=recipe.optimum_task, library_name="transformers", do_validation=False)
    except Exception as exc:  # optimum raises ValueError, KeyError, RuntimeError... on unsupported models
        raise ConversionError(
            f"optimum could not export {str(source)!r} for {recipe.optimum_task!r}: {first_line(exc)}"
        ) from exc
    paths = {role: work / f"{stem}.onnx" for role, stem in components.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        written = sorted(p.name for p in work.glob("*.onnx"))
        raise ConversionError(f"optimum wrote {written} for {recipe.optimum_task!r}, without {missing}.")
    return paths


def stage_components(
    source: Path, out: Path, recipe: ExportTask, components: dict[str, str], work: Path, progress: Any,
    tie_heads: bool = True,
) -> tuple[Path, Path, int]:
    """Export `source` with optimum and move each component's fp32 graph into a staging folder, named by its stem;
    refuses an output inside the checkpoint first. With `tie_heads`, tied LM heads become FusedMatMul on the
    embedding (tied_weights.py). Returns (staging folder, optimum's folder, which keeps the unmerged decoders and
    support files, the number of heads rewritten). Shared by the generation and Whisper paths."""
    from .folder import check_outside_source

    check_outside_source(out, source)
    with progress.step("optimum export"):
        plain = _optimum_export(source, work / "plain", recipe, components)
    staging = work / "folder"
    staging.mkdir()
    tied = 0
    for role, stem in components.items():
        place_graph(plain[role], staging / variant_filename("fp32", stem))
        if tie_heads:
            tied += fuse_file(staging / variant_filename("fp32", stem))
    return staging, work / "plain", tied


def optimization_entry(reason: str, tied: int) -> dict[str, Any]:
    """The manifest's `optimization` block of a generation export: no fusion (why), and the tied-head rewrite."""
    entry: dict[str, Any] = {"fusion": False, "reason": reason}
    if tied:
        entry["tied_lm_head"] = (
            f"{tied} MatMul(x, Transpose(embedding)) written as FusedMatMul(transB=1) in the fp32 graphs, so "
            "onnxruntime keeps no transposed copy of the embedding (int8 / q4 / fp16 keep the MatMul)"
        )
    return entry


def component_entries(
    staging: Path, dtypes: Sequence[str], components: dict[str, str], quantization: Any, validations: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's `files` entries of every component in every dtype, fp32 first; `quantization(dtype, name)`
    gives a file's quantization settings."""
    from .record import onnx_file_entry

    files: dict[str, Any] = {}
    for dtype in ["fp32", *(d for d in dtypes if d != "fp32")]:
        for role, stem in components.items():
            name = variant_filename(dtype, stem)
            entry = onnx_file_entry(staging / name, dtype, quantization(dtype, name), validations.get(dtype))
            entry["component"] = role
            files[name] = entry
    return files


def _run(
    model: Any, recipe: ExportTask, dtypes: list[str], out: Path, revision: Optional[str], validate: bool,
    not_fused: str, tie_heads: bool, work: Path, progress: Any, notes: list[str],
) -> dict[str, Any]:
    """The export steps inside the scratch folder `work`; returns the manifest after installing the folder."""
    from . import generative_validate as check
    from .deps import created_with
    from .generative_variants import merged_decoder_variant, write_generation_variant
    from .folder import install
    from .onnx_files import opset
    from .record import source_entry, support_entries
    from .source import resolve_source
    from .support import copy_support_files

    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        check_architecture(recipe, source.config)
    encoder_decoder = bool(source.config.get("is_encoder_decoder"))
    components = ENCODER_DECODER if encoder_decoder else DECODER_ONLY
    staging, optimum_folder, tied = stage_components(source.path, out, recipe, components, work, progress, tie_heads)

    def paths(dtype: str) -> tuple[Path, Optional[Path]]:
        decoder = staging / variant_filename(dtype, components["decoder"])
        encoder = staging / variant_filename(dtype, components["encoder"]) if encoder_decoder else None
        return decoder, encoder

    reference = None
    validations: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    with progress.step("check fp32 against torch" if validate else "skip the torch check"):
        if validate:
            reference = check.torch_reference(source.path, source.config)
            figures = check.validate_files(*paths("fp32"), reference, check.FP32_RELATIVE_TOLERANCE)
            if not figures["passed"]:
                raise ValidationError(
                    f"The fp32 ONNX export differs from torch: logits relative diff {figures['logits_relative_diff']:.3g} "
                    f"> {check.FP32_RELATIVE_TOLERANCE:g} (max abs diff {figures['max_abs_diff']:.3g} on logits up to "
                    f"{figures['logits_max_abs']:.3g}); nothing was written."
                )
            if figures["greedy_agreement"] < 1.0:
                notes.append(
                    f"fp32: greedy tokens agree with torch on {figures['greedy_agreement']:.0%} (logits within "
                    "tolerance: a near tie between two tokens)"
                )
            validations["fp32"] = figures

    quantization: dict[str, Optional[dict[str, Any]]] = {}  # file name -> its quantization settings
    for dtype in dtypes:
        if dtype == "fp32":
            continue
        with progress.step(f"{dtype} variant"):
            for role, stem in components.items():
                target = staging / variant_filename(dtype, stem)
                if role == "decoder" and encoder_decoder:
                    quantization[target.name] = merged_decoder_variant(dtype, optimum_folder, target)
                else:
                    fp32 = staging / variant_filename("fp32", stem)
                    quantization[target.name] = write_generation_variant(dtype, fp32, target)
            if reference is not None:  # reduced precision is reported (tolerance None), never refused
                validations[dtype] = check.validate_files(*paths(dtype), reference, None)
                warning = check.quality_warning(variant_filename(dtype, components["decoder"]), validations[dtype])
                if warning:
                    notes.append(warning)

    with progress.step("write folder"):
        support = copy_support_files(source.path, optimum_folder, staging)
        tokenizer_check = _tokenizer_json(source.path, staging, support)
        if "generation_config.json" not in support:
            _derive_generation_config(source.path, staging)
            support.append("generation_config.json")
        files = component_entries(staging, dtypes, components, lambda dtype, name: quantization.get(name), validations)
        manifest: dict[str, Any] = {
            "task": recipe.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"optimum_task": recipe.optimum_task, "exporter": "optimum", "opset": opset(paths("fp32")[0])},
            "optimization": optimization_entry(not_fused, tied),
            "is_encoder_decoder": encoder_decoder,
            "components": dict(components),
            "cache": CACHE_NOTES["encoder-decoder" if encoder_decoder else "decoder-only"],
            "default_dtype": dtypes[0],
            "files": files,
            "support_files": support_entries(staging, support),
            "validation": {"inputs": reference.description, "per_dtype": "figures of each dtype's set of files"}
            if reference is not None else None,
        }
        if tokenizer_check is not None:
            manifest["tokenizer_conversion"] = tokenizer_check
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def _tokenizer_json(source: Path, staging: Path, support: list[str]) -> Optional[dict[str, Any]]:
    """Make sure the folder has a tokenizer.json (Marian: converted and checked here); the check figures or None."""
    if "tokenizer.json" in support:
        return None
    from .marian_tokenizer import is_marian, write_marian_tokenizer

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
