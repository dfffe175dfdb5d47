"""Export for Whisper speech recognition: `encoder_model.onnx` + `decoder_model_merged.onnx` with a KV cache.

optimum's `automatic-speech-recognition-with-past` task writes the encoder (input_features -> last_hidden_state)
and three decoders; as for text encoder-decoders only the merged decoder is kept (generative_components.py stages
both paths' graphs). Each dtype's pair is checked against torch on generated audio (whisper_validate.py) and
transcribes packaged speech clips, whose word error rates go into the manifest with the clips
(whisper_speech.py, rerun by `onnxpipe check`). When the generation config names alignment heads, every merged
decoder also outputs their layers' cross-attentions, for word timestamps (whisper_attentions.py). q4 writes a 4-bit
decoder and an 8-bit encoder (Q4_COMPONENTS). CTC speech models keep the single-graph path (graph_export.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from onnxpipe.cpu import this_cpu
from onnxpipe.manifest import variant_filename, write_manifest
from onnxpipe.validation import REFERENCES_NAME

from . import generative_validate
from . import whisper_speech as speech
from . import whisper_validate as check
from .deps import created_with
from .dtypes import GENERATION_DTYPES, parse_dtypes
from .errors import UnsupportedTaskError
from .folder import install
from .generative_components import stage_components
from .generative_variants import DEFAULT_OPTIONS, merged_decoder_variant, write_generation_variant
from .manifest_entries import component_entries, file_info, optimization_entry, source_entry, support_entries
from .onnx_files import opset
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files
from .tasks import ExportTask
from .weight_only_recipes import WeightOnlyOptions
from .whisper_attentions import add_cross_attention_outputs, alignment_layers

OPTIMUM_TASK = "automatic-speech-recognition-with-past"
COMPONENTS = {"encoder": "encoder_model", "decoder": "decoder_model_merged"}
RECIPE = ExportTask(
    "automatic-speech-recognition", OPTIMUM_TASK, "AutoModelForSpeechSeq2Seq", ("logits",), True, "greedy",
    modality="audio", kind="generation",
)
CACHE_NOTE = (
    "use_cache_branch false at the first step (past inputs are ignored: feed length-0 arrays), true later; "
    "present.N.encoder.* is the cross-attention cache from the first step only: keep the first step's. "
    "The encoder takes input_features (batch, num_mel_bins, 2 * max_source_positions)."
)
# the weights each component of the q4 variant gets: measured on real Whisper base (benchmarks/whisper_quality.py)
Q4_COMPONENTS = {"encoder": "int8", "decoder": "q4"}


def is_whisper_checkpoint(model: Union[str, os.PathLike[str]], revision: Optional[str] = None) -> bool:
    """Whether `model` (a folder or hub id) is a Whisper checkpoint (config.json model_type "whisper")."""
    path = Path(str(model)).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            return False
        return json.loads(config_path.read_text(encoding="utf-8")).get("model_type") == "whisper"
    return resolve_source(model, revision).config.get("model_type") == "whisper"


def check_whisper_config(config: dict[str, Any]) -> None:
    """Refuse shapes the runtime's 30 s windows cannot feed: the encoder takes exactly 2 * max_source_positions
    mel frames, and the feature extractor makes 3000."""
    frames = 2 * int(config.get("max_source_positions", 0))
    if frames != 3000:
        raise UnsupportedTaskError(
            f"This Whisper checkpoint has max_source_positions={config.get('max_source_positions')} ({frames} mel "
            "frames), but the feature extractor makes 30 s windows of 3000 frames: keep max_source_positions=1500."
        )


def export_whisper(
    model: Union[str, os.PathLike[str]],
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]],
    *,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
    weight_only: WeightOnlyOptions = DEFAULT_OPTIONS,
) -> ExportResult:
    """Export a Whisper checkpoint for automatic-speech-recognition (api.export dispatches here); `weight_only`
    holds the user's --q4-method / --block-size (the q4 method picks the decoder's 4-bit recipe; the block size
    applies to every weight-only file)."""
    dtypes = parse_dtypes(dtype, allowed=GENERATION_DTYPES)
    return run_export(
        output, 5 + sum(d != "fp32" for d in dtypes), quiet,
        lambda out, work, progress, notes: _run(model, dtypes, out, revision, validate, work, progress, notes,
                                                weight_only),
    )


def _run(
    model: Any, dtypes: list[str], out: Path, revision: Optional[str], validate: bool, work: Path, progress: Any,
    notes: list[str], weight_only: WeightOnlyOptions,
) -> dict[str, Any]:
    """The export steps inside the scratch folder `work`; returns the manifest after installing the folder."""
    tolerance = generative_validate.FP32_RELATIVE_TOLERANCE
    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        check_whisper_config(source.config)
    staging, optimum_folder, tied = stage_components(source.path, out, RECIPE, COMPONENTS, work, progress)

    def pair(dtype: str) -> tuple[Path, Path]:
        return staging / variant_filename(dtype, COMPONENTS["decoder"]), staging / variant_filename(dtype, COMPONENTS["encoder"])

    generation_path = source.path / "generation_config.json"
    generation = json.loads(generation_path.read_text(encoding="utf-8")) if generation_path.is_file() else {}
    reference = None
    validations: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    with progress.step("check fp32 against torch" if validate else "skip the torch check"):
        if validate:
            reference = check.torch_reference(source.path, generation)
            figures = check.validate_files(*pair("fp32"), reference, tolerance)
            validations["fp32"] = generative_validate.accept_fp32(figures, "Whisper", notes)

    quantization: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    encoder_quantization: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    layers = alignment_layers(generation.get("alignment_heads"))
    attention_outputs = add_cross_attention_outputs(pair("fp32")[0], layers) if layers else []
    for dtype in dtypes:
        if dtype == "fp32":
            continue
        with progress.step(f"{dtype} variant"):
            encoder_dtype = Q4_COMPONENTS["encoder"] if dtype == "q4" else dtype
            decoder_dtype = Q4_COMPONENTS["decoder"] if dtype == "q4" else dtype
            encoder_quantization[dtype] = write_generation_variant(
                encoder_dtype, staging / variant_filename("fp32", COMPONENTS["encoder"]), pair(dtype)[1], weight_only
            )
            quantization[dtype] = merged_decoder_variant(decoder_dtype, optimum_folder, pair(dtype)[0], weight_only)
            if layers:
                add_cross_attention_outputs(pair(dtype)[0], layers)
            if reference is not None:
                validations[dtype] = check.validate_files(*pair(dtype), reference, None)
                warning = generative_validate.quality_warning(variant_filename(dtype, COMPONENTS["decoder"]), validations[dtype])
                if warning:
                    notes.append(warning)

    support = copy_support_files(source.path, optimum_folder, staging)
    for needed in ("tokenizer.json", "preprocessor_config.json", "generation_config.json"):
        if needed not in support:
            raise UnsupportedTaskError(
                f"{str(source.path)!r} has no {needed} (and optimum wrote none); the runtime needs it for Whisper. "
                "Save the processor (WhisperProcessor.save_pretrained, fast tokenizer) and the generation config."
            )
    stored: dict[str, Any] = {}
    with progress.step("word error rate on speech" if validate else "skip the speech check"):
        if validate:
            spoken = speech.torch_speech_reference(source.path, generation)
            figures = speech.measure_variants(staging, dtypes, spoken)
            notes.extend(speech.speech_warnings(figures, COMPONENTS["decoder"]))
            for dtype, numbers in figures.items():
                validations[dtype] = {**(validations.get(dtype) or {}), "speech": numbers}
            stored = {**speech.speech_validation(staging, spoken, figures),
                      "references": {"file": REFERENCES_NAME, **file_info(staging / REFERENCES_NAME)},
                      "measured_on": this_cpu().manifest_entry()}

    def quantization_of(dtype: str, name: str) -> Optional[dict[str, Any]]:
        encoder = name == variant_filename(dtype, COMPONENTS["encoder"])
        return (encoder_quantization if encoder else quantization)[dtype]

    with progress.step("write folder"):
        files = component_entries(staging, dtypes, COMPONENTS, quantization_of, validations)
        manifest: dict[str, Any] = {
            "task": RECIPE.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"optimum_task": OPTIMUM_TASK, "exporter": "optimum", "opset": opset(pair("fp32")[0])},
            "optimization": optimization_entry("optimum's cache graphs are not fused", tied),
            "is_encoder_decoder": True,
            "components": dict(COMPONENTS),
            "cache": CACHE_NOTE,
            "default_dtype": dtypes[0],
            "files": files,
            "support_files": support_entries(staging, support),
            "validation": {"inputs": reference.description, "per_dtype": "figures of each dtype's pair of files", **stored}
            if reference is not None else None,
            "word_timestamps": {
                "alignment_heads": generation.get("alignment_heads"), "decoder_outputs": attention_outputs,
                "note": "cross-attention probabilities of the alignment heads' layers, read by one extra decoder pass "
                "per window when return_timestamps='word'",
            } if attention_outputs else None,
            "q4_components": dict(Q4_COMPONENTS) if "q4" in dtypes else None,
        }
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))
