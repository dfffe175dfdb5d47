"""Whisper's measured quality on speech, at export and in `onnxpipe check`: the word error rate of each variant's
transcripts against torch's transcripts, the fp32 ONNX transcripts and the clips' reference texts.

The export stores the speech clips (16-bit PCM) and torch's transcripts in the folder's validation.npz and the
figures in the manifest (each dtype's decoder entry). `onnxpipe check` transcribes the same clips with the
runtime pipeline of each dtype on this machine and holds each figure to its export value plus one word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.check_report import FileCheck, FolderCheck, verified_file
from onnxpipe.cpu import this_cpu
from onnxpipe.errors import MissingModelFileError
from onnxpipe.manifest import MANIFEST_NAME
from onnxpipe.model_folder import ModelFolder
from onnxpipe.pipelines import pipeline
from onnxpipe.text.wer import wer, words

TASK = "automatic-speech-recognition"
MAX_NEW_TOKENS = 96
# above this much WER over fp32's (against the reference texts) the export summary warns
MAX_ADDED_WER = 0.01
# `check` accepts a figure up to its export value plus this, or one word of the references when that is more
WER_MARGIN = 0.02
SPEECH_KEY = "speech"


def decode_options(generation_config: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline options of the measurement: greedy, MAX_NEW_TOKENS, no timestamps, and English transcription
    forced where the model is multilingual with an <|en|> token (no language detection in the figures)."""
    options: dict[str, Any] = {"num_beams": 1, "max_new_tokens": MAX_NEW_TOKENS}
    languages = generation_config.get("lang_to_id") or {}
    if generation_config.get("is_multilingual") is not False and "<|en|>" in languages:
        options["language"] = "en"
        if "transcribe" in (generation_config.get("task_to_id") or {}):
            options["task"] = "transcribe"
    return options


def transcribe(folder: Path, dtype: str, clips: Sequence[np.ndarray], options: Mapping[str, Any]) -> list[str]:
    """The runtime pipeline's transcript of each 16 kHz clip with the folder's `dtype` files."""
    asr = pipeline(TASK, model=str(folder), dtype=dtype)
    return [asr(np.asarray(clip, dtype=np.float32).copy(), **options)["text"] for clip in clips]


def speech_figures(texts: Sequence[str], fp32_texts: Sequence[str], torch_texts: Sequence[str],
                   reference_texts: Sequence[str]) -> dict[str, Any]:
    """Corpus WER of one variant's transcripts against torch's, fp32 ONNX's and the reference texts."""
    return {
        "wer_vs_torch": wer(list(torch_texts), list(texts)),
        "wer_vs_fp32": wer(list(fp32_texts), list(texts)),
        "wer_vs_text": wer(list(reference_texts), list(texts)),
        "identical_to_torch": float(np.mean([a.strip() == b.strip() for a, b in zip(texts, torch_texts)])),
        "transcripts": list(texts),
    }


def speech_acceptance(figures: Mapping[str, Any], torch_texts: Sequence[str]) -> dict[str, Any]:
    """The bound `check` holds a variant to: its WER against torch's transcripts, up to the export's plus
    WER_MARGIN (at least one word of torch's transcripts)."""
    total = max(1, sum(len(words(t)) for t in torch_texts))
    return {"figure": "wer_vs_torch", "at_most": round(float(figures["wer_vs_torch"]) + max(WER_MARGIN, 1.0 / total), 6)}


def added_wer_warning(name: str, figures: Mapping[str, Any], fp32: Mapping[str, Any]) -> Optional[str]:
    """A summary warning when a variant's WER against the reference texts is more than MAX_ADDED_WER over fp32's."""
    added = float(figures["wer_vs_text"]) - float(fp32["wer_vs_text"])
    if added <= MAX_ADDED_WER:
        return None
    return (
        f"{name}: word error rate {figures['wer_vs_text']:.1%} on the validation speech against {fp32['wer_vs_text']:.1%} "
        f"for fp32 (+{added * 100:.1f} points; {figures['wer_vs_fp32']:.1%} against fp32's transcripts); "
        "check it on your own audio."
    )


def save_speech(path: Path, clips: Sequence[np.ndarray], rate: int, torch_tokens: Sequence[Sequence[int]]) -> Path:
    """Write the clips (16-bit PCM) and torch's token ids to one compressed .npz file."""
    arrays: dict[str, np.ndarray] = {"rate": np.asarray(rate, dtype=np.int64)}
    for i, (clip, tokens) in enumerate(zip(clips, torch_tokens)):
        arrays[f"clip{i}"] = np.round(np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
        arrays[f"torch_tokens{i}"] = np.asarray(list(tokens), dtype=np.int64)
    np.savez_compressed(path, **arrays)
    return Path(path)


def load_speech(path: Path) -> tuple[list[np.ndarray], int]:
    """The float32 clips and their sampling rate from a file `save_speech` wrote."""
    with np.load(path, allow_pickle=False) as data:
        count = sum(1 for key in data.keys() if key.startswith("clip"))
        clips = [data[f"clip{i}"].astype(np.float32) / 32767.0 for i in range(count)]
        return clips, int(data["rate"])


def is_whisper(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest describes a Whisper speech-recognition folder."""
    return manifest.get("task") == TASK and (manifest.get("source") or {}).get("model_type") == "whisper"


def check_whisper_folder(folder: ModelFolder) -> FolderCheck:
    """Transcribe the stored clips with every dtype of a Whisper folder here; one row per dtype (its decoder file)
    with the export's WER figures, the figures here, and the bound on the WER against torch's transcripts."""
    manifest = folder.manifest or {}
    validation = manifest.get("validation") or {}
    if SPEECH_KEY not in validation or not validation.get("references"):
        source = (manifest.get("source") or {}).get("model", "CHECKPOINT")
        raise MissingModelFileError(
            f"{folder.path} stores no speech references: it was exported with --no-validate or by an onnxpipe before "
            f"Whisper folders kept them. Re-export with `onnxpipe export {source} --task {TASK} --output {folder.path}` "
            "(with the same --dtype options) to check it on this machine."
        )
    speech = validation[SPEECH_KEY]
    clips, _ = load_speech(verified_file(folder.path, validation["references"], "speech references"))
    torch_texts, reference_texts = speech["torch_transcripts"], speech["reference_texts"]
    decoders = [(rel, entry) for rel, entry in manifest.get("files", {}).items()
                if entry.get("component") == "decoder" and (entry.get("validation") or {}).get(SPEECH_KEY)]
    if not decoders:
        raise MissingModelFileError(f"{folder.path / MANIFEST_NAME} lists no decoder with speech figures; re-export the model.")
    transcripts = {str(entry["dtype"]): transcribe(folder.path, str(entry["dtype"]), clips, speech["options"])
                   for _, entry in decoders}
    fp32 = transcripts.get("fp32", speech.get("fp32_transcripts", torch_texts))
    rows = []
    for rel, entry in decoders:
        exported = dict(entry["validation"][SPEECH_KEY])
        bound = exported.pop("acceptance", None) or speech_acceptance(exported, torch_texts)
        here = speech_figures(transcripts[str(entry["dtype"])], fp32, torch_texts, reference_texts)
        rows.append(FileCheck(rel, str(entry["dtype"]), exported, here, bound))
    return FolderCheck(folder.path, this_cpu(), validation.get("measured_on"), tuple(rows))
