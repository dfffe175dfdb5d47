"""VITS (MMS-TTS) as two graphs whose noise comes from outside, so the runtime can seed it per call.

VitsModel draws two noises inside its forward: the stochastic duration predictor's latents (batch, 2, text length)
and the prior's (batch, flow_size, frames), whose length the predicted durations decide. optimum's single-graph
export keeps them as RandomNormal(Like) nodes that onnxruntime draws unseeded. Here the model is cut where the
second noise enters:
- vits_prior.onnx: input_ids, attention_mask, duration_noise (already scaled by noise_scale_duration), length_scale
  (1 / speaking_rate) -> prior_means, prior_log_variances (batch, flow_size, frames), output_padding_mask;
- vits_waveform.onnx: prior_latents (= means + noise * exp(log_variances) * noise_scale), output_padding_mask
  -> waveform (batch, samples).
Both follow VitsModel.forward of transformers 4.57 line by line; the torch reference is VitsModel itself with its
noise scales set to 0 (then neither noise matters).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConversionError, first_line
from .waveform_check import waveform_figures

COMPONENTS = {"prior": "vits_prior", "waveform": "vits_waveform"}
TOLERANCE = 1e-4  # max |waveform difference| relative to the waveform's peak, noise off
CHECK_TEXTS = ("hello world", "the quick brown fox jumps over the lazy dog", "a", "Hi-there, it's me!")


def _modules(model: Any) -> tuple[Any, Any]:
    """The two torch modules that are exported (built lazily: they subclass torch.nn.Module)."""
    import torch
    from torch import nn

    class Prior(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, duration_noise, length_scale):  # noqa: ANN001, ANN202
            m = self.model
            input_padding_mask = attention_mask.unsqueeze(-1).to(torch.float32)
            encoded = m.text_encoder(
                input_ids=input_ids, padding_mask=input_padding_mask, attention_mask=attention_mask, return_dict=True
            )
            hidden_states = encoded.last_hidden_state.transpose(1, 2)
            input_padding_mask = input_padding_mask.transpose(1, 2)
            if m.config.use_stochastic_duration_prediction:
                log_duration = _reverse_duration(m.duration_predictor, hidden_states, input_padding_mask, duration_noise)
            else:
                log_duration = m.duration_predictor(hidden_states, input_padding_mask, None)
            duration = torch.ceil(torch.exp(log_duration) * input_padding_mask * length_scale)
            predicted_lengths = torch.clamp_min(torch.sum(duration, [1, 2]), 1).long()
            indices = torch.arange(predicted_lengths.max(), dtype=predicted_lengths.dtype)
            output_padding_mask = (indices.unsqueeze(0) < predicted_lengths.unsqueeze(1)).unsqueeze(1).to(torch.float32)
            attn_mask = torch.unsqueeze(input_padding_mask, 2) * torch.unsqueeze(output_padding_mask, -1)
            batch_size, _, output_length, input_length = attn_mask.shape
            cum_duration = torch.cumsum(duration, -1).view(batch_size * input_length, 1)
            indices = torch.arange(output_length, dtype=duration.dtype)
            valid = (indices.unsqueeze(0) < cum_duration).to(attn_mask.dtype).view(batch_size, input_length, output_length)
            padded = valid - nn.functional.pad(valid, [0, 0, 1, 0, 0, 0])[:, :-1]
            attn = padded.unsqueeze(1).transpose(2, 3) * attn_mask
            means = torch.matmul(attn.squeeze(1), encoded.prior_means).transpose(1, 2)
            log_variances = torch.matmul(attn.squeeze(1), encoded.prior_log_variances).transpose(1, 2)
            return means, log_variances, output_padding_mask

    class Waveform(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, prior_latents, output_padding_mask):  # noqa: ANN001, ANN202
            latents = self.model.flow(prior_latents, output_padding_mask, None, reverse=True)
            return self.model.decoder(latents * output_padding_mask, None).squeeze(1)

    return Prior().eval(), Waveform().eval()


def _reverse_duration(predictor: Any, inputs: Any, padding_mask: Any, latents: Any) -> Any:
    """VitsStochasticDurationPredictor.forward(reverse=True) with its noise given (`latents`, already scaled)."""
    import torch

    inputs = predictor.conv_pre(inputs)
    inputs = predictor.conv_dds(inputs, padding_mask)
    inputs = predictor.conv_proj(inputs) * padding_mask
    flows = list(reversed(predictor.flows))
    flows = flows[:-2] + [flows[-1]]  # transformers drops a useless flow the same way
    for flow in flows:
        latents = torch.flip(latents, [1])
        latents, _ = flow(latents, padding_mask, global_conditioning=inputs, reverse=True)
    log_duration, _ = torch.split(latents, [1, 1], dim=1)
    return log_duration


def check_vits_config(config: dict[str, Any]) -> None:
    """Refuse what the two graphs do not carry: speaker embeddings of multi-speaker checkpoints."""
    if int(config.get("num_speakers", 1)) > 1:
        raise ConversionError(
            f"This VITS checkpoint has {config['num_speakers']} speakers; onnxpipe exports single-speaker VITS "
            "(MMS-TTS) only, speaker_id is not an input of its graphs yet."
        )


def write_graphs(source: Path, staging: Path) -> dict[str, str]:
    """Export the checkpoint in `source` to staging/vits_prior.onnx and staging/vits_waveform.onnx."""
    import torch
    from transformers import VitsModel

    model = VitsModel.from_pretrained(str(source)).eval()
    check_vits_config(model.config.to_dict())
    prior, waveform = _modules(model)
    ids = torch.tensor([[0, 5, 0, 6, 0, 7, 0]], dtype=torch.long)
    mask = torch.ones_like(ids)
    noise = torch.zeros(1, 2, ids.shape[1])
    scale = torch.tensor(1.0)
    flow = model.config.flow_size
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings, dynamo=False deprecation
            torch.onnx.export(
                prior, (ids, mask, noise, scale), str(staging / f"{COMPONENTS['prior']}.onnx"), dynamo=False,
                input_names=["input_ids", "attention_mask", "duration_noise", "length_scale"],
                output_names=["prior_means", "prior_log_variances", "output_padding_mask"],
                dynamic_axes={
                    "input_ids": {0: "batch_size", 1: "sequence_length"},
                    "attention_mask": {0: "batch_size", 1: "sequence_length"},
                    "duration_noise": {0: "batch_size", 2: "sequence_length"},
                    "prior_means": {0: "batch_size", 2: "frames"},
                    "prior_log_variances": {0: "batch_size", 2: "frames"},
                    "output_padding_mask": {0: "batch_size", 2: "frames"},
                },
                opset_version=17,
            )
            torch.onnx.export(
                waveform, (torch.zeros(1, flow, 9), torch.ones(1, 1, 9)), str(staging / f"{COMPONENTS['waveform']}.onnx"),
                dynamo=False, input_names=["prior_latents", "output_padding_mask"], output_names=["waveform"],
                dynamic_axes={
                    "prior_latents": {0: "batch_size", 2: "frames"},
                    "output_padding_mask": {0: "batch_size", 2: "frames"},
                    "waveform": {0: "batch_size", 1: "samples"},
                },
                opset_version=17,
            )
    except Exception as exc:
        raise ConversionError(f"torch.onnx could not export the VITS checkpoint {str(source)!r}: {first_line(exc)}") from exc
    return dict(COMPONENTS)


def validate(source: Path, staging: Path) -> dict[str, Any]:
    """The two graphs against VitsModel with its noise off, on CHECK_TEXTS: max |diff| relative to the peak."""
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, VitsModel

    model = VitsModel.from_pretrained(str(source)).eval()
    model.noise_scale = model.noise_scale_duration = 0.0
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    prior = ort.InferenceSession(str(staging / f"{COMPONENTS['prior']}.onnx"), providers=["CPUExecutionProvider"])
    waveform = ort.InferenceSession(str(staging / f"{COMPONENTS['waveform']}.onnx"), providers=["CPUExecutionProvider"])
    length_scale = np.asarray(1.0 / float(model.config.speaking_rate), dtype=np.float32)

    def pair(text: str) -> tuple[np.ndarray, np.ndarray]:
        encoded = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            expected = model(**encoded).waveform.numpy()
        ids = encoded["input_ids"].numpy()
        means, _, mask = prior.run(None, {
            "input_ids": ids, "attention_mask": encoded["attention_mask"].numpy(),
            "duration_noise": np.zeros((1, 2, ids.shape[1]), np.float32), "length_scale": length_scale,
        })
        return waveform.run(None, {"prior_latents": means, "output_padding_mask": mask})[0], expected

    return waveform_figures(map(pair, CHECK_TEXTS), TOLERANCE)
