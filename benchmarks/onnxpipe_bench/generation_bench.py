"""The generation side of a benchmark run: which ONNX files a dtype means in a decoder-only or encoder-decoder
folder, and the figures of a generation row (tokens/s, time per token, the decoding loop's overhead per step).

tokens/s = forced new tokens x batch / median latency: every engine generates exactly `new_tokens` tokens per
sequence (min_new_tokens = max_new_tokens), so the count is the same for all of them; beams are not counted.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from .generation_engines import OPTIMUM_MERGED_DECODER, PAIR_SEPARATOR


def decoder_stem(folder: Any) -> str:
    """The stem whose variants name a folder's dtypes: the manifest's decoder component (encoder-decoder exports
    write `encoder_model*.onnx` + `decoder_model_merged*.onnx`), VITS's prior graph (`vits_prior*.onnx`), else "model"."""
    components = (folder.manifest or {}).get("components") or {}
    return components.get("decoder") or components.get("prior") or "model"


def encoder_stem(folder: Any) -> Optional[str]:
    """The manifest's encoder component of an encoder-decoder export, or None."""
    return ((folder.manifest or {}).get("components") or {}).get("encoder")


def describe_files(folder: Any, dtype: str, kind: str) -> str:
    """The file(s) of a dtype as the report names them: "model_quantized.onnx", for an encoder-decoder folder
    "encoder_model_quantized.onnx + decoder_model_merged_quantized.onnx", for VITS "vits_prior.onnx + vits_waveform.onnx"."""
    decoder = folder.onnx_file(dtype, kind, decoder_stem(folder)).relative_to(folder.path).as_posix()
    encoder = encoder_stem(folder)
    waveform = ((folder.manifest or {}).get("components") or {}).get("waveform")
    if waveform is not None:
        return decoder + PAIR_SEPARATOR + folder.onnx_file(dtype, kind, waveform).relative_to(folder.path).as_posix()
    if encoder is None:
        return decoder
    return folder.onnx_file(dtype, kind, encoder).relative_to(folder.path).as_posix() + PAIR_SEPARATOR + decoder


def optimum_skip_reason(folder: Any, dtype: str, kind: str) -> Optional[str]:
    """Why Optimum cannot run a dtype's files, or None when it can (top-level files; a merged decoder)."""
    try:
        files = describe_files(folder, dtype, kind).split(PAIR_SEPARATOR)
    except Exception as exc:  # noqa: BLE001 - e.g. an encoder file missing for this dtype
        return f"the folder has no complete {dtype} set of files: {exc}"
    nested = [f for f in files if "/" in f]
    if nested:
        return f"{', '.join(nested)} not at the folder's top level"
    if len(files) == 2 and not files[1].startswith(Path(OPTIMUM_MERGED_DECODER).stem):
        return f"{files[1]} is not a merged decoder (this harness loads Optimum's seq2seq model with use_merged=True)"
    return None


def generation_fields(summary: dict[str, Any], steps: Sequence[int], new_tokens: int, batch: int) -> dict[str, Any]:
    """tokens/s, ms per new token, decoder steps per call and the loop's overhead per step, from a row's summary
    (stats.summarize) and the measured decoder steps of each call."""
    median_steps = statistics.median(steps) if steps else None
    per_step = summary["overhead_ms"] / median_steps if median_steps else None
    return {
        "new_tokens": new_tokens,
        "tokens_per_s": new_tokens * batch * 1000 / summary["median_ms"],
        "ms_per_token": summary["median_ms"] / new_tokens,
        "decoder_steps": median_steps,
        "steps_samples": list(steps),
        "overhead_per_step_ms": per_step,
        # the 10% rule: the loop's own work (pipeline time - core time) as a share of the whole call
        "loop_share_pct": 100 * summary["overhead_ms"] / summary["median_ms"],
    }


def generation_notes(spec: Any, prompt_given: bool) -> list[str]:
    """The notes of a generation record: forced lengths, what tokens/s and the loop overhead mean."""
    options = ", ".join(f"{k}={v!r}" for k, v in spec.call_options.items())
    notes = [
        f"every engine is called with {options}: each sequence gets exactly {spec.new_tokens} new tokens "
        "(EOS cannot stop it early), so tokens/s = new tokens x batch / median latency is comparable",
        "decoder steps = calls of the decoder graph (onnxpipe, Optimum) or of the model's forward (torch) per pipeline "
        "call, counted; loop overhead per step = (pipeline time - core time) / steps; loop share = that overhead "
        "over the whole call (issue #4: fix it above 10%)",
    ]
    if spec.task != "text-generation":
        notes.append("beam search as each pipeline does by default (the model's task_specific_params, else 4 beams); "
                     "tokens/s counts output tokens, not beams")
    if not prompt_given:
        notes.append("prompt length: the default 32 tokens (--seq-len sets it)")
    return notes
