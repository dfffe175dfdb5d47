"""Word error rate of every Whisper variant on real (synthesized) speech, stored so `onnxpipe check` can rerun it.

The clips in speech/ were spoken by espeak-ng (speech/clips.json says how) and carry their texts. torch's
transcripts come from `transformers.pipeline("automatic-speech-recognition")` on the checkpoint, each variant's
from the onnxpipe pipeline on the staged folder, both greedy with the same options
(onnxpipe.tasks.whisper.check.decode_options); the WER figures and their bounds go into the manifest.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.manifest import variant_filename
from onnxpipe.tasks.whisper.check import (
    SPEECH_KEY,
    added_wer_warning,
    decode_options,
    save_speech,
    speech_acceptance,
    speech_figures,
    transcribe,
)
from onnxpipe.validation import REFERENCES_NAME

SPEECH_FOLDER = Path(__file__).with_name("speech")
RATE = 16000


@dataclass(frozen=True)
class SpeechReference:
    """The clips, their texts, and torch's transcripts and token ids under the measurement's options."""

    clips: tuple[np.ndarray, ...]
    texts: tuple[str, ...]
    torch_texts: tuple[str, ...]
    torch_tokens: tuple[tuple[int, ...], ...]
    options: dict[str, Any]
    made_with: str


def speech_clips() -> tuple[list[np.ndarray], list[str], str]:
    """The packaged clips (float32, 16 kHz), their reference texts, and how they were made."""
    listing = json.loads((SPEECH_FOLDER / "clips.json").read_text(encoding="utf-8"))
    clips, texts = [], []
    for item in listing["clips"]:
        with wave.open(str(SPEECH_FOLDER / item["file"]), "rb") as wav:
            if wav.getframerate() != RATE or wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError(f"{item['file']} must be 16 kHz mono 16-bit PCM")
            clips.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32767.0)
        texts.append(item["text"])
    return clips, texts, listing["made_with"]


def torch_speech_reference(source: Path, generation_config: Mapping[str, Any]) -> SpeechReference:
    """torch's transcripts (and token ids) of the packaged clips with transformers' own pipeline."""
    import warnings

    import torch
    import transformers

    clips, texts, made_with = speech_clips()
    options = decode_options(generation_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            asr = transformers.pipeline("automatic-speech-recognition", model=str(source), device="cpu")
            torch_texts = [asr(clip.copy(), generate_kwargs=dict(options))["text"] for clip in clips]
            tokens = []
            for clip in clips:
                features = asr.feature_extractor(clip, sampling_rate=RATE, return_tensors="pt")["input_features"]
                with torch.no_grad():
                    ids = asr.model.generate(features, **options)
                tokens.append(tuple(int(i) for i in ids[0]))
        finally:
            transformers.logging.set_verbosity(verbosity)
    return SpeechReference(tuple(clips), tuple(texts), tuple(torch_texts), tuple(tokens), options, made_with)


def measure_variants(staging: Path, dtypes: Sequence[str], reference: SpeechReference) -> dict[str, dict[str, Any]]:
    """Each dtype's speech figures (fp32 first: the others are measured against its transcripts too)."""
    ordered = ["fp32", *(d for d in dtypes if d != "fp32")]
    texts = {d: transcribe(staging, d, reference.clips, reference.options) for d in ordered}
    figures = {}
    for dtype in ordered:
        numbers = speech_figures(texts[dtype], texts["fp32"], reference.torch_texts, reference.texts)
        figures[dtype] = {**numbers, "acceptance": speech_acceptance(numbers, reference.torch_texts)}
    return figures


def speech_warnings(figures: Mapping[str, Mapping[str, Any]], decoder_stem: str) -> list[str]:
    """Summary warnings of the variants that add more than MAX_ADDED_WER of WER over fp32."""
    notes = []
    for dtype, numbers in figures.items():
        if dtype != "fp32":
            warning = added_wer_warning(variant_filename(dtype, decoder_stem), numbers, figures["fp32"])
            if warning:
                notes.append(warning)
    return notes


def speech_validation(staging: Path, reference: SpeechReference, figures: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Write the clips and torch's tokens to validation.npz; return the manifest's `validation.speech` block."""
    save_speech(staging / REFERENCES_NAME, reference.clips, RATE, reference.torch_tokens)
    seconds = [round(len(c) / RATE, 2) for c in reference.clips]
    return {
        SPEECH_KEY: {
            "clips": f"{len(reference.clips)} English sentences spoken by espeak-ng ({', '.join(f'{s:g} s' for s in seconds)})",
            "made_with": reference.made_with,
            "options": reference.options,
            "reference_texts": list(reference.texts),
            "torch_transcripts": list(reference.torch_texts),
            "fp32_transcripts": list(figures["fp32"]["transcripts"]),
            "wer": "corpus word error rate after onnxpipe.text.wer.normalize (lower case, no punctuation)",
        }
    }


def speech_summary(figures: Optional[Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Lines for the export summary: each dtype's WER against the texts, torch and fp32."""
    if not figures:
        return []
    return [
        f"speech WER {dtype:5s}: {f['wer_vs_text']:.1%} vs reference texts, {f['wer_vs_torch']:.1%} vs torch, "
        f"{f['wer_vs_fp32']:.1%} vs fp32 transcripts"
        for dtype, f in figures.items()
    ]
