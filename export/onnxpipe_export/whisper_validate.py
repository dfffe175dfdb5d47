"""Validate an exported Whisper pair (encoder_model + decoder_model_merged) against torch on generated audio.

Clips (tone, chirp, noise, speech-like, near-silence) are featurized by the checkpoint's own
WhisperFeatureExtractor; each runs a greedy loop of NEW_TOKENS steps from Whisper's decoder prompt
(<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>, as the model's generation config gives them)
with the KV cache, in onnxruntime and in torch. Logits are compared at every step whose inputs agree, as
generative_validate does for text models (its Trace / compare_traces are reused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .audio_samples import generated_clip
from .generative_validate import OrtDecoder, Trace, compare_traces, torch_greedy_cross

CLIPS: tuple[tuple[str, float], ...] = (("speechlike", 3.0), ("tone", 1.5), ("noise", 5.0), ("chirp", 2.0), ("silence", 1.0))
NEW_TOKENS = 12


@dataclass(frozen=True)
class WhisperReference:
    """The torch side: each clip's input features, the decoder prompt and the torch greedy traces."""

    features: tuple[np.ndarray, ...]
    prompt: tuple[int, ...]
    traces: tuple[Trace, ...]
    description: str


def decoder_prompt(generation_config: dict[str, Any], decoder_start: int) -> tuple[int, ...]:
    """<|startoftranscript|>, a language (English when the model has it, else its first), the transcribe task
    and <|notimestamps|>, from the generation config's token tables; just the start token when it has none."""
    prompt = [decoder_start]
    languages = generation_config.get("lang_to_id") or {}
    if languages:
        prompt.append(languages.get("<|en|>", next(iter(languages.values()))))
    task = (generation_config.get("task_to_id") or {}).get("transcribe")
    if task is not None:
        prompt.append(task)
    if generation_config.get("no_timestamps_token_id") is not None:
        prompt.append(generation_config["no_timestamps_token_id"])
    return tuple(prompt)


class OrtWhisper(OrtDecoder):
    """OrtDecoder whose encoder takes `input_features` (the decoder prompt is fed whole at the first step)."""

    def greedy_features(self, features: np.ndarray, prompt: Sequence[int], steps: int) -> Trace:
        hidden = self.encoder.run(None, {"input_features": features.astype(np.float32)})[0]
        return self.greedy_cross(hidden, {}, prompt, steps)


def torch_greedy_features(model: Any, features: np.ndarray, prompt: Sequence[int], steps: int) -> Trace:
    """The torch reference of OrtWhisper.greedy_features."""
    import torch

    with torch.no_grad():
        encoded = model.get_encoder()(input_features=torch.from_numpy(features.astype(np.float32)))
    return torch_greedy_cross(model, encoded, {}, prompt, steps)


def torch_reference(source: Path, generation_config: dict[str, Any]) -> WhisperReference:
    """Load the torch model and feature extractor from `source` and run the torch greedy loop on every clip."""
    import warnings

    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extractor = transformers.AutoFeatureExtractor.from_pretrained(str(source))
        model = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(str(source)).eval()
    start = generation_config.get("decoder_start_token_id", model.config.decoder_start_token_id)
    prompt = decoder_prompt(generation_config, start)
    rate = extractor.sampling_rate
    features = tuple(
        extractor(generated_clip(seconds, rate, kind, seed), sampling_rate=rate, return_tensors="np")["input_features"]
        for seed, (kind, seconds) in enumerate(CLIPS)
    )
    traces = tuple(torch_greedy_features(model, f, prompt, NEW_TOKENS) for f in features)
    kinds = ", ".join(f"{kind} {seconds:g} s" for kind, seconds in CLIPS)
    description = f"{len(CLIPS)} generated clips ({kinds}), batch 1, prompt {list(prompt)}, {NEW_TOKENS} greedy tokens with the KV cache"
    return WhisperReference(features, prompt, traces, description)


def validate_files(decoder: Path, encoder: Path, reference: WhisperReference, tolerance: Optional[float]) -> dict[str, Any]:
    """Run the ONNX greedy loop over the pair on the reference clips; return generative_validate's figures."""
    runner = OrtWhisper(decoder, encoder)
    traces = [runner.greedy_features(f, reference.prompt, NEW_TOKENS) for f in reference.features]
    return compare_traces(traces, reference.traces, tolerance)
