"""Validate an exported image-to-text pair (encoder_model + decoder_model_merged) against torch on generated pictures.

Each picture (image_samples.generated_image, several sizes) is processed by the checkpoint's own image processor;
the encoder runs on its pixel_values (Pix2Struct: flattened_patches + attention_mask, the mask fed to the decoder as
its encoder_attention_mask) and a greedy loop of NEW_TOKENS steps starts from the decoder start token with
the KV cache, in onnxruntime and in torch. Logits are compared at every step whose inputs agree, as
generative_validate does for text models (its OrtDecoder, Trace and compare_traces are reused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .generative_validate import OrtDecoder, Trace, compare_traces, torch_greedy_cross
from .image_samples import generated_image, load_image_processor

SIZES: tuple[tuple[int, int], ...] = ((64, 48), (40, 96), (57, 57), (120, 90))
NEW_TOKENS = 12


@dataclass(frozen=True)
class ImageToTextReference:
    """The torch side: each picture's pixel_values, the decoder start token and the torch greedy traces."""

    pixels: tuple[dict[str, np.ndarray], ...]
    start_token: int
    traces: tuple[Trace, ...]
    description: str


class OrtImageToText(OrtDecoder):
    """OrtDecoder whose encoder takes `pixel_values`, or Pix2Struct's `flattened_patches` + `attention_mask` (the
    decoder starts from one start token)."""

    def greedy_pixels(self, encoder_inputs: dict[str, np.ndarray], start_token: int, steps: int) -> Trace:
        feeds = {k: v.astype(np.int64 if k == "attention_mask" else np.float32) for k, v in encoder_inputs.items()}
        hidden = self.encoder.run(None, feeds)[0]
        extra = {"encoder_attention_mask": feeds["attention_mask"]} if "attention_mask" in feeds else {}
        return self.greedy_cross(hidden, extra, [start_token], steps)

    def _step(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if "attention_mask" in self.inputs:  # Pix2Struct's decoder mask: all ones over the past and new tokens
            seen = next((v.shape[2] for k, v in feeds.items() if k.startswith("past_key_values.")), 0)
            feeds = {**feeds, "attention_mask": np.ones((1, seen + feeds["input_ids"].shape[1]), dtype=np.int64)}
        return super()._step(feeds)


def start_token_of(model: Any) -> int:
    """The decoder start token as transformers' generate() picks it: generation config, then model config."""
    start = model.generation_config.decoder_start_token_id
    if start is None:
        start = model.config.decoder_start_token_id
    if start is None:
        start = model.generation_config.bos_token_id
    if isinstance(start, list):
        start = start[0]
    return int(start)


def torch_reference(source: Path) -> ImageToTextReference:
    """Load the torch model and image processor from `source` and run the torch greedy loop on every picture."""
    import warnings

    import torch
    import transformers
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processor = load_image_processor(source)
        model = transformers.AutoModelForVision2Seq.from_pretrained(str(source)).eval()
    start = start_token_of(model)
    names = ("flattened_patches", "attention_mask", "pixel_values")
    pixels = tuple(
        {k: np.asarray(v) for k, v in processor(images=Image.fromarray(generated_image(h, w, seed)), return_tensors="np").items()
         if k in names}
        for seed, (h, w) in enumerate(SIZES)
    )
    traces = []
    for values in pixels:
        feeds = {k: torch.from_numpy(v.astype(np.float32)) for k, v in values.items()}
        with torch.no_grad():
            encoded = model.encoder(**feeds)
        extra = {"attention_mask": feeds["attention_mask"]} if "attention_mask" in feeds else {}
        traces.append(torch_greedy_cross(model, encoded, extra, [start], NEW_TOKENS))
    sizes = ", ".join(f"{h}x{w}" for h, w in SIZES)
    description = (
        f"{len(SIZES)} generated pictures ({sizes}), batch 1, decoder start {start}, {NEW_TOKENS} greedy tokens "
        "with the KV cache"
    )
    return ImageToTextReference(pixels, start, tuple(traces), description)


def validate_files(decoder: Path, encoder: Path, reference: ImageToTextReference, tolerance: Optional[float]) -> dict[str, Any]:
    """Run the ONNX greedy loop over the pair on the reference pictures; return generative_validate's figures."""
    runner = OrtImageToText(decoder, encoder)
    traces = [runner.greedy_pixels(p, reference.start_token, NEW_TOKENS) for p in reference.pixels]
    return compare_traces(traces, reference.traces, tolerance)
