"""Validate exported generation graphs against torch: logits with and without the KV cache, and greedy tokens.

A minimal numpy greedy loop over onnxruntime (the runtime's generation package is not used here, so the
export stage checks the graphs on their own) runs each prompt for NEW_TOKENS steps with the KV cache and
is compared with a torch greedy loop over the same checkpoint. Logits are compared at every step whose
inputs are identical in both loops (same prompt, same tokens so far): step 0 is the whole prompt
without a cache, later steps feed one token plus the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.session import session_options

from .errors import ValidationError

VALIDATION_PROMPTS: tuple[str, ...] = (
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Café crème, naïve façade, São Paulo; 東京は日本の首都です。",
    "When the people of the town came back after the first long day of work, they said that the new road "
    "was good and that the old bridge would have to go.",
)
NEW_TOKENS = 16
MAX_PROMPT_TOKENS = 64
# fp32 logits farther from torch than this, relative to max(1, max|torch logits|), fail the export.
# ONNX-vs-torch differences grow with model size (measured): ~1e-6 on tiny models, ~1e-4 absolute on a
# 135M decoder whose logits reach ~20, i.e. ~5e-6 relative.
FP32_RELATIVE_TOLERANCE = 1e-4
# a reduced-precision file whose greedy tokens agree with torch on less than this share gets a warning
MIN_GREEDY_AGREEMENT_WARN = 0.5

_ORT_FLOAT = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass
class Trace:
    """One greedy run: the new tokens and the logits of each step (last position; whole prompt at step 0)."""

    tokens: list[int]
    logits: list[np.ndarray]


class OrtDecoder:
    """Runs exported generation graphs step by step; input and output names are read from the sessions."""

    def __init__(self, decoder: Path, encoder: Optional[Path] = None):
        import onnxruntime as ort

        options = session_options()  # the runtime's settings for this CPU class
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(decoder), options, providers=["CPUExecutionProvider"])
        self.encoder = (
            ort.InferenceSession(str(encoder), options, providers=["CPUExecutionProvider"]) if encoder else None
        )
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = [n for n in self.inputs if n.startswith("past_key_values.")]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def _empty_past(self, batch: int) -> dict[str, np.ndarray]:
        past = {}
        for name in self.past_names:
            shape = self.inputs[name].shape  # [batch, heads, length, head_dim]
            heads, dim = shape[1], shape[3]
            if not isinstance(heads, int) or not isinstance(dim, int):
                raise ValueError(f"{name} has a symbolic head count or size {shape}; cannot build an empty cache.")
            past[name] = np.zeros((batch, heads, 0, dim), dtype=_ORT_FLOAT.get(self.inputs[name].type, np.float32))
        return past

    def _step(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        values = self.session.run(None, feeds)
        named = dict(zip(self.outputs, values))
        present = {"past_key_values." + k[len("present."):]: v for k, v in named.items() if k.startswith("present.")}
        return named["logits"], present

    def greedy_cross(self, hidden: np.ndarray, extra: dict[str, np.ndarray], prompt: Sequence[int], steps: int) -> Trace:
        """Greedy steps of the merged decoder over an encoder output (`extra`: e.g. the encoder mask); the decoder
        prompt is fed whole at the first step."""
        past = self._empty_past(1)
        current = np.array([list(prompt)], dtype=np.int64)
        tokens: list[int] = []
        logits_seen: list[np.ndarray] = []
        for step in range(steps):
            feeds = {"input_ids": current, "encoder_hidden_states": hidden, **extra, **past}
            if "use_cache_branch" in self.inputs:
                feeds["use_cache_branch"] = np.array([step > 0])
            logits, present = self._step({k: v for k, v in feeds.items() if k in self.inputs})
            # the cross-attention cache is made at step 0; later steps' encoder presents are placeholders
            # (optimum's merged decoder passes them through its with-past branch unchanged or empty)
            past = present if step == 0 else {**present, **{k: v for k, v in past.items() if ".encoder." in k}}
            last = logits[0, -1].astype(np.float32)
            logits_seen.append(last)
            tokens.append(int(last.argmax()))
            current = np.array([[tokens[-1]]], dtype=np.int64)
        return Trace(tokens, logits_seen)

    def greedy(self, input_ids: np.ndarray, steps: int, start_token: Optional[int] = None) -> Trace:
        """Greedy tokens and per-step logits for one prompt (batch 1), with the KV cache."""
        ids = input_ids.astype(np.int64)
        mask = np.ones_like(ids)
        tokens: list[int] = []
        logits_seen: list[np.ndarray] = []
        past = self._empty_past(1)
        if self.encoder is not None:
            hidden = self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            return self.greedy_cross(hidden, {"encoder_attention_mask": mask}, [start_token], steps)
        current, length = ids, 0
        for step in range(steps):
            length += current.shape[1]
            feeds = {"input_ids": current, "attention_mask": np.ones((1, length), dtype=np.int64), **past}
            if "position_ids" in self.inputs:
                feeds["position_ids"] = np.arange(length - current.shape[1], length, dtype=np.int64)[None]
            logits, past = self._step({k: v for k, v in feeds.items() if k in self.inputs})
            logits_seen.append(logits[0].astype(np.float32) if step == 0 else logits[0, -1].astype(np.float32))
            tokens.append(int(logits[0, -1].argmax()))
            current = np.array([[tokens[-1]]], dtype=np.int64)
        return Trace(tokens, logits_seen)


def torch_greedy_cross(model: Any, encoded: Any, extra: dict[str, Any], prompt: Sequence[int], steps: int) -> Trace:
    """The torch reference of OrtDecoder.greedy_cross: greedy decoder steps over encoder outputs, with the cache."""
    import torch

    tokens: list[int] = []
    logits_seen: list[np.ndarray] = []
    current, past = torch.tensor([list(prompt)]), None
    with torch.no_grad():
        for _ in range(steps):
            out = model(encoder_outputs=encoded, decoder_input_ids=current, past_key_values=past, use_cache=True, **extra)
            past = out.past_key_values
            last = out.logits[0, -1].float().numpy()
            logits_seen.append(last)
            tokens.append(int(last.argmax()))
            current = torch.tensor([[tokens[-1]]])
    return Trace(tokens, logits_seen)


def torch_greedy(model: Any, input_ids: np.ndarray, steps: int, start_token: Optional[int] = None) -> Trace:
    """The torch reference of OrtDecoder.greedy: the same loop over the transformers model, with its cache."""
    import torch

    ids = torch.from_numpy(input_ids.astype(np.int64))
    mask = torch.ones_like(ids)
    tokens: list[int] = []
    logits_seen: list[np.ndarray] = []
    past = None
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
            return torch_greedy_cross(model, encoded, {"attention_mask": mask}, [start_token], steps)
        current, length = ids, 0
        for step in range(steps):
            length += current.shape[1]
            out = model(input_ids=current, attention_mask=torch.ones((1, length), dtype=torch.long),
                        past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0].float().numpy()
            logits_seen.append(logits if step == 0 else logits[-1])
            tokens.append(int(logits[-1].argmax()))
            current = torch.tensor([[tokens[-1]]])
    return Trace(tokens, logits_seen)


def compare_traces(ours: Sequence[Trace], reference: Sequence[Trace], tolerance: Optional[float]) -> dict[str, Any]:
    """Manifest figures: logits differences where inputs agree, and greedy-token agreement with torch."""
    diff = scale = 0.0
    cached_steps = 0
    agreement, identical = [], []
    for got, want in zip(ours, reference):
        prefix = 0
        while prefix < len(want.tokens) and got.tokens[prefix] == want.tokens[prefix]:
            prefix += 1
        agreement.append(prefix / len(want.tokens))
        identical.append(prefix == len(want.tokens))
        for step in range(min(prefix + 1, len(want.tokens))):  # steps whose inputs are the same in both loops
            diff = max(diff, float(np.abs(got.logits[step] - want.logits[step]).max()))
            scale = max(scale, float(np.abs(want.logits[step]).max()))
            cached_steps += int(step > 0)
    relative = diff / max(1.0, scale)
    return {
        "max_abs_diff": diff,
        "logits_max_abs": scale,
        "logits_relative_diff": relative,
        "tolerance": tolerance,
        "passed": None if tolerance is None else relative <= tolerance,
        "cached_steps_compared": cached_steps,
        "greedy_agreement": float(np.mean(agreement)),
        "greedy_identical_prompts": float(np.mean(identical)),
        "prompts": len(reference),
        "new_tokens": len(reference[0].tokens) if reference else 0,
    }


def quality_warning(name: str, figures: dict[str, Any]) -> Optional[str]:
    """A warning line when a reduced-precision file's greedy tokens drift far from torch's."""
    if figures["greedy_agreement"] < MIN_GREEDY_AGREEMENT_WARN:
        return (
            f"{name}: greedy tokens agree with torch on {figures['greedy_agreement']:.0%} of {figures['new_tokens']} "
            f"new tokens (logits relative diff {figures['logits_relative_diff']:.3g}); check it on your own texts."
        )
    return None


@dataclass(frozen=True)
class Reference:
    """The torch side of validation, computed once per export: tokenized prompts and torch greedy traces."""

    prompts: tuple[np.ndarray, ...]
    traces: tuple[Trace, ...]
    start_token: Optional[int]
    description: str


def load_torch(source: Path, config: dict[str, Any]) -> tuple[Any, Any]:
    """The transformers tokenizer and model (eval mode) of the checkpoint at `source`."""
    import warnings

    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
        auto = transformers.AutoModelForSeq2SeqLM if config.get("is_encoder_decoder") else transformers.AutoModelForCausalLM
        model = auto.from_pretrained(str(source)).eval()
    return tokenizer, model


def torch_reference(
    source: Path, config: dict[str, Any], prompts: Sequence[str] = VALIDATION_PROMPTS, loaded: Optional[tuple[Any, Any]] = None
) -> Reference:
    """Tokenize the prompts and run the torch greedy loop over the checkpoint at `source` (or the (tokenizer, model)
    pair `loaded` from it)."""
    tokenizer, model = loaded if loaded is not None else load_torch(source, config)
    start = None
    if model.config.is_encoder_decoder:
        start = model.generation_config.decoder_start_token_id
        if start is None:
            start = model.config.decoder_start_token_id
        if isinstance(start, list):
            start = start[0]
    encoded = tuple(
        np.asarray(tokenizer(p, truncation=True, max_length=MAX_PROMPT_TOKENS)["input_ids"], dtype=np.int64)[None]
        for p in prompts
    )
    traces = tuple(torch_greedy(model, ids, NEW_TOKENS, start) for ids in encoded)
    lengths = ", ".join(str(ids.shape[1]) for ids in encoded)
    description = f"{len(prompts)} prompts of {lengths} tokens, batch 1, {NEW_TOKENS} greedy new tokens with the KV cache"
    return Reference(encoded, traces, start, description)


def validate_files(decoder: Path, encoder: Optional[Path], reference: Reference, tolerance: Optional[float]) -> dict[str, Any]:
    """Run the ONNX greedy loop over `decoder` (and `encoder`) on the reference prompts; return the figures."""
    runner = OrtDecoder(decoder, encoder)
    traces = [runner.greedy(ids, NEW_TOKENS, reference.start_token) for ids in reference.prompts]
    return compare_traces(traces, reference.traces, tolerance)


def accept_fp32(figures: dict[str, Any], what: str, notes: list[str]) -> dict[str, Any]:
    """The fp32 files' figures against torch (validate_files), or ValidationError (nothing is written) when their
    logits are off; a near tie that moves a greedy token goes into the summary's `notes`. `what`: e.g. "ONNX"."""
    if not figures["passed"]:
        raise ValidationError(
            f"The fp32 {what} export differs from torch: logits relative diff {figures['logits_relative_diff']:.3g} "
            f"> {FP32_RELATIVE_TOLERANCE:g} (max abs diff {figures['max_abs_diff']:.3g} on logits up to "
            f"{figures['logits_max_abs']:.3g}); nothing was written."
        )
    if figures["greedy_agreement"] < 1.0:
        notes.append(
            f"fp32: greedy tokens agree with torch on {figures['greedy_agreement']:.0%} (logits within "
            "tolerance: a near tie between two tokens)"
        )
    return figures
