"""The ViLT export path: optimum has no ONNX config for ViLT, and plain torch.onnx fails on its patch sampling.

ViLT's visual embedding picks the patches it keeps with `nonzero` and `multinomial` (a random order, and random
padding patches when the pixel_mask hides some). With an all-ones pixel_mask every patch is kept, only in a random
order, and attention does not care about order (each patch carries its own position embedding), so a visual
embedding that keeps every patch in place computes the same logits. This module swaps that embedding in on the
loaded model instance only (never on the class) and exports with `torch.onnx.export(dynamo=False)`. The graph
takes no pixel_mask: it is taken as all ones, which the runtime guarantees by batching only images of one size.
"""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

from .errors import ConversionError, first_line
from .tasks import ExportTask

OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    "token_type_ids": {0: "batch", 1: "sequence"},
    "pixel_values": {0: "batch", 2: "height", 3: "width"},
    "logits": {0: "batch"},
}
PIXEL_MASK_LIMITATION = (
    "pixel_mask is taken as all ones: the graph has no pixel_mask input and attends to every image patch, so "
    "images that share a batch must have the same processed size (onnxpipe's runtime batches only same-size "
    "images; transformers pads a mixed batch and masks the padding)"
)


def limitations(config: dict[str, Any]) -> list[str]:
    """The manifest's `limitations` of a ViLT export: what the graph computes differently from torch, and when."""
    notes = [PIXEL_MASK_LIMITATION]
    max_length = config.get("max_image_length")
    if isinstance(max_length, int) and max_length > 0:
        notes.append(
            f"max_image_length is {max_length}: for images with more patches, torch keeps a random sample of "
            f"{max_length} of them on every call, while this graph keeps every patch (deterministic)"
        )
    return notes


def _visual_embed_in_order(self: Any, pixel_values: Any, pixel_mask: Any, max_image_length: Any = -1) -> tuple:
    """ViltEmbeddings.visual_embed for an all-ones pixel_mask, every patch kept in raster order: patch projection
    plus position embeddings interpolated (bilinear, align_corners) to the patch grid, then the class token."""
    import torch
    from torch import nn

    x = self.patch_embeddings(pixel_values)
    batch, channels, height, width = x.shape
    grid = self.config.image_size // self.config.patch_size
    spatial = self.position_embeddings[:, 1:, :].transpose(1, 2).reshape(1, channels, grid, grid)
    positions = nn.functional.interpolate(spatial, size=(height, width), mode="bilinear", align_corners=True)
    x = (x + positions).flatten(2).transpose(1, 2)
    cls = (self.cls_token + self.position_embeddings[:, :1, :]).expand(batch, -1, -1)
    x = self.dropout(torch.cat((cls, x), dim=1))
    mask = torch.ones_like(x[:, :, 0], dtype=torch.long)
    return x, mask, None


def _logits_module(model: Any) -> Any:
    """The torch module the exporter traces: the four graph inputs in, the answer logits out."""
    from torch import nn

    class LogitsOnly(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any, pixel_values: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                pixel_values=pixel_values,
            ).logits

    return LogitsOnly(model)


def _load(source: Path, recipe: ExportTask) -> Any:
    import transformers

    try:
        model = getattr(transformers, recipe.model_class).from_pretrained(str(source)).eval()
    except Exception as exc:
        raise ConversionError(f"Cannot load {str(source)!r} with {recipe.model_class}: {first_line(exc)}") from exc
    if getattr(model.config, "model_type", None) != "vilt" or not hasattr(getattr(model, "vilt", None), "embeddings"):
        raise ConversionError(
            f"The vilt exporter exports ViltForQuestionAnswering; {str(source)!r} is a "
            f"{type(model).__name__} (model_type {getattr(model.config, 'model_type', None)!r})."
        )
    return model


def _dummy_inputs(model: Any) -> tuple:
    """A batch of 2 questions of 5 tokens and 2 images of 2x3 patches: sizes the tracer must not bake in."""
    import torch

    config = model.config
    ids = torch.randint(1, config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    patch = config.patch_size
    pixels = torch.randn(2, config.num_channels, 2 * patch, 3 * patch, generator=torch.Generator().manual_seed(0))
    return ids, torch.ones_like(ids), torch.zeros_like(ids), pixels


def _save_tokenizer(source: Path, workdir: Path) -> None:
    """Write the checkpoint's tokenizer (tokenizer.json included) beside the graph, as optimum does, so a
    checkpoint with only a slow tokenizer's vocab.txt still gets a tokenizer.json."""
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(workdir))
    except Exception as exc:
        raise ConversionError(f"Cannot load the tokenizer of {str(source)!r}: {first_line(exc)}") from exc


def vilt_export(source: Path, workdir: Path, recipe: ExportTask) -> Path:
    """Export the ViLT checkpoint in `source` to `workdir/model.onnx` (inputs INPUT_NAMES, output logits)."""
    import torch

    model = _load(source, recipe)
    embeddings = model.vilt.embeddings
    embeddings.visual_embed = types.MethodType(_visual_embed_in_order, embeddings)  # this instance only
    workdir.mkdir(parents=True, exist_ok=True)
    onnx_path = workdir / "model.onnx"
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings on shape checks, dynamo=False deprecation
            torch.onnx.export(
                _logits_module(model), _dummy_inputs(model), str(onnx_path), dynamo=False, opset_version=OPSET,
                input_names=list(INPUT_NAMES), output_names=["logits"], dynamic_axes=DYNAMIC_AXES,
            )
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed on ViLT {str(source)!r}: {first_line(exc)}") from exc
    _save_tokenizer(source, workdir)
    return onnx_path
