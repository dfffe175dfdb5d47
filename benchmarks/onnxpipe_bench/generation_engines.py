"""Generation engines inside a worker: which calls count as "core" (onnxruntime's `run` on every graph, the torch
model's forward) and which count as one decoder step, and Optimum's ORTModelForCausalLM / ORTModelForSeq2SeqLM /
ORTModelForSpeechSeq2Seq / ORTModelForVision2Seq on the very same ONNX files as onnxpipe.

A decoder step is one call of the decoder graph (onnxpipe, Optimum) or of the model's forward (torch): the worker
reports the count per pipeline call, so the loop's own overhead can be given per step.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .core_timer import CoreTimer

PAIR_SEPARATOR = " + "  # EngineSpec.file of an encoder-decoder dtype: "encoder file + decoder file"
OPTIMUM_ENCODER = "encoder_model.onnx"
OPTIMUM_MERGED_DECODER = "decoder_model_merged.onnx"


def _wrap_session(timer: CoreTimer, onnx_session: Any, count: bool) -> None:
    """Time an onnxpipe OnnxSession's InferenceSession (run, and run_with_iobinding where IO is bound)."""
    inner = onnx_session.session
    timer.wrap(inner, "run", count=count)
    timer.wrap(inner, "run_with_iobinding", count=count)


def time_onnxpipe_generation(pipe: Any, timer: CoreTimer) -> None:
    """Core = every graph's run; a step = one decoder-graph run (the first-step graph of an unmerged pair too)."""
    decoder = pipe.decoder
    if hasattr(decoder, "encoder"):  # OnnxSeq2Seq
        _wrap_session(timer, decoder.encoder, count=False)
        _wrap_session(timer, decoder.decoder, count=True)
        if getattr(decoder, "first_session", None) is not None:
            _wrap_session(timer, decoder.first_session, count=True)
    else:  # OnnxDecoder
        _wrap_session(timer, decoder.session, count=True)


def encoder_decoder_pair(file: str) -> tuple[str, str]:
    """(encoder file, decoder file) of an EngineSpec.file written as "encoder + decoder"."""
    parts = file.split(PAIR_SEPARATOR)
    if len(parts) != 2:
        raise ValueError(f"an encoder-decoder engine needs 'ENCODER{PAIR_SEPARATOR}DECODER' as its file, got {file!r}")
    return parts[0], parts[1]


def _standard_names_folder(folder: Path, encoder: str, decoder: str) -> Path:
    """A temporary folder where Optimum finds `encoder` and `decoder` under its standard names, as symbolic links
    to the very same files, beside links to every other file of `folder` (config, tokenizer, external data).

    Optimum 2.1 takes a merged decoder only under its standard name: passing `decoder_file_name` switches it to
    the unmerged decoder_model + decoder_with_past_model pair."""
    staged = Path(tempfile.mkdtemp(prefix="onnxpipe-bench-optimum-"))
    atexit.register(shutil.rmtree, staged, True)
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix != ".onnx":
            os.symlink(entry.resolve(), staged / entry.name)
    os.symlink((folder / encoder).resolve(), staged / OPTIMUM_ENCODER)
    os.symlink((folder / decoder).resolve(), staged / OPTIMUM_MERGED_DECODER)
    return staged


def load_optimum_generation(spec: Any, cls: Any, provider: str, options: Any) -> tuple[Any, CoreTimer]:
    """Optimum's ORTModelForCausalLM (spec.file = the decoder) or ORTModelForSeq2SeqLM (spec.file = "encoder +
    merged decoder") with the KV cache, in a transformers pipeline; IO binding off on CPU (Optimum's own default
    there). Core = every session's run; a step = one decoder run."""
    import transformers

    common = {"provider": provider, "session_options": options, "use_cache": True}
    if provider == "CPUExecutionProvider":
        common["use_io_binding"] = False
    timer = CoreTimer()
    if spec.file and PAIR_SEPARATOR in spec.file:
        encoder, decoder = encoder_decoder_pair(spec.file)
        folder = Path(spec.model)
        if (encoder, decoder) != (OPTIMUM_ENCODER, OPTIMUM_MERGED_DECODER):
            folder = _standard_names_folder(folder, encoder, decoder)
        model = cls.from_pretrained(str(folder), encoder_file_name=OPTIMUM_ENCODER, use_merged=True, **common)
        timer.wrap(model.encoder.session, "run")
        timer.wrap(model.encoder.session, "run_with_iobinding")
        for part in (model.decoder, getattr(model, "decoder_with_past", None)):
            if part is not None:
                timer.wrap(part.session, "run", count=True)
                timer.wrap(part.session, "run_with_iobinding", count=True)
    else:
        model = cls.from_pretrained(spec.model, file_name=spec.file, **common)
        timer.wrap(model.session, "run", count=True)
        timer.wrap(model.session, "run_with_iobinding", count=True)
    processor = {"tokenizer": transformers.AutoTokenizer.from_pretrained(spec.model)}
    if model.main_input_name == "input_features":  # Whisper: the pipeline needs its feature extractor too
        processor["feature_extractor"] = transformers.AutoFeatureExtractor.from_pretrained(spec.model)
    if model.main_input_name == "pixel_values":  # a VisionEncoderDecoder captioner: and its image processor
        processor["image_processor"] = transformers.AutoImageProcessor.from_pretrained(spec.model)
    return transformers.pipeline(spec.task, model=model, **processor), timer
