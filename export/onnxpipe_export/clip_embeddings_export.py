"""Export for text-to-image search with CLIP: one CLIPModel checkpoint -> `text_model.onnx` and `vision_model.onnx`
in one folder, the two towers with their projections (transformers' CLIPTextModelWithProjection and
CLIPVisionModelWithProjection, the layout transformers.js CLIP repos use). Their `text_embeds` and `image_embeds` are
CLIPModel.get_text_features / get_image_features: one vector space, compared by cosine.

`onnxpipe export CLIP_CHECKPOINT --task feature-extraction` (or image-feature-extraction) writes this folder; on it
`pipeline("feature-extraction")` embeds captions and `pipeline("image-feature-extraction")` embeds images
(runtime/onnxpipe/tasks/clip_embeddings.py). Both graphs are traced with torch.onnx (optimum has no ONNX config for
the vision tower with its projection) and checked against torch on generated images and the captions of
image_samples.py. fp32 only: int8/fp16 variants of these towers are not written yet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from onnxpipe.manifest import variant_filename, write_manifest

from .deps import created_with
from .dtypes import parse_dtypes
from .errors import UnsupportedTaskError, ValidationError
from .folder import install
from .image_samples import CAPTIONS, generated_image, load_image_processor
from .manifest_entries import component_entries, source_entry, support_entries
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files
from .tasks import ExportTask

COMPONENTS = {"text": "text_model", "vision": "vision_model"}
OUTPUTS = {"text": ("text_embeds", "last_hidden_state"), "vision": ("image_embeds", "last_hidden_state")}
INPUTS = {"text": ("input_ids", "attention_mask"), "vision": ("pixel_values",)}
OPSET = 17
FP32_RELATIVE_TOLERANCE = 1e-4  # max |onnx - torch| / max |torch| of the embeddings
TASKS = ("feature-extraction", "image-feature-extraction")


def is_clip_checkpoint(model: Union[str, os.PathLike[str]], revision: Optional[str] = None) -> bool:
    """Whether `model` (a folder or hub id) is a whole CLIP model (config.json model_type "clip": both towers),
    which the embedding tasks export as two graphs."""
    path = Path(str(model)).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        return config_path.is_file() and json.loads(config_path.read_text(encoding="utf-8")).get("model_type") == "clip"
    return resolve_source(model, revision).config.get("model_type") == "clip"


def export_clip_embeddings(
    model: Union[str, os.PathLike[str]],
    recipe: ExportTask,
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]] = "fp32",
    *,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
) -> ExportResult:
    """Export a CLIPModel checkpoint's two projected towers into `output` (api.export dispatches here)."""
    dtypes = parse_dtypes(dtype)
    if dtypes != ["fp32"]:
        raise UnsupportedTaskError(
            f"CLIP embedding folders are written in fp32 only (asked for {dtypes}); pass --dtype fp32."
        )
    return run_export(output, 4, quiet, lambda out, work, progress, notes: _run(
        model, recipe, out, revision, validate, work, progress))


def _run(model: Any, recipe: ExportTask, out: Path, revision: Optional[str], validate: bool, work: Path,
         progress: Any) -> dict[str, Any]:
    with progress.step("resolve source"):
        source = resolve_source(model, revision)
        if source.config.get("model_type") != "clip":
            raise UnsupportedTaskError(f"{source.model!r} is not a CLIPModel checkpoint (model_type 'clip').")
    staging = work / "staging"
    staging.mkdir()
    with progress.step("export text_model.onnx and vision_model.onnx"):
        towers = load_towers(source.path)
        samples = sample_inputs(source.path)
        for role in COMPONENTS:
            trace(towers[role], role, samples[role], staging / variant_filename("fp32", COMPONENTS[role]))
    validation = None
    with progress.step("check fp32 against torch" if validate else "skip the torch check"):
        if validate:
            validation = compare(towers, samples, staging)
            worst = validation["relative_diff"]
            if worst > FP32_RELATIVE_TOLERANCE:
                raise ValidationError(
                    f"The fp32 CLIP towers differ from torch: relative diff {worst:.3g} > {FP32_RELATIVE_TOLERANCE:g}; "
                    "nothing was written."
                )
    with progress.step("write folder"):
        support = copy_support_files(source.path, source.path, staging)
        for needed in ("tokenizer.json", "preprocessor_config.json"):
            if needed not in support:
                raise UnsupportedTaskError(
                    f"{str(source.path)!r} has no {needed}; save the fast tokenizer and the image processor with "
                    "save_pretrained beside the model."
                )
        manifest: dict[str, Any] = {
            "task": recipe.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"exporter": "torch.onnx", "opset": OPSET,
                       "embeds": "CLIPModel.get_text_features / get_image_features"},
            "components": dict(COMPONENTS),
            "outputs": {role: list(names) for role, names in OUTPUTS.items()},
            "default_dtype": "fp32",
            "files": component_entries(staging, ["fp32"], COMPONENTS, lambda d, n: None,
                                       {"fp32": validation}),
            "support_files": support_entries(staging, support),
            "validation": {"inputs": f"{len(CAPTIONS)} captions, 3 generated images",
                           "tolerance": FP32_RELATIVE_TOLERANCE} if validation else None,
        }
        install(staging, out)
        path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def load_towers(path: Path) -> dict[str, Any]:
    """The two projected towers of a CLIPModel checkpoint as torch modules (eager attention: traceable), each
    returning (embeds, last_hidden_state): embeds is CLIPModel.get_text_features / get_image_features."""
    import torch
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(str(path), attn_implementation="eager").eval()

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            out = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask)
            return self.clip.text_projection(out.pooler_output), out.last_hidden_state

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values: Any) -> tuple[Any, Any]:
            out = self.clip.vision_model(pixel_values=pixel_values)
            return self.clip.visual_projection(out.pooler_output), out.last_hidden_state

    return {"text": Text().eval(), "vision": Vision().eval(), "clip": clip}


def sample_inputs(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Tokenized captions (padded, of different lengths) and three generated images, processed by the checkpoint's
    own tokenizer and image processor."""
    from PIL import Image
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    text = tokenizer(list(CAPTIONS), padding=True, return_tensors="np")
    processor = load_image_processor(path)
    images = [Image.fromarray(generated_image(40 + 8 * i, 48, 100 + i)) for i in range(3)]
    pixels = processor(images=images, return_tensors="np")["pixel_values"]
    return {"text": {k: np.asarray(text[k], dtype=np.int64) for k in INPUTS["text"]},
            "vision": {"pixel_values": np.asarray(pixels, dtype=np.float32)}}


def trace(tower: Any, role: str, inputs: dict[str, np.ndarray], path: Path) -> None:
    """torch.onnx (TorchScript tracing) of one tower, named and with dynamic batch / sequence / picture axes."""
    import torch

    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "sequence_length"},
            "pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"},
            "text_embeds": {0: "batch_size"}, "image_embeds": {0: "batch_size"},
            "last_hidden_state": {0: "batch_size", 1: "sequence_length"}}
    names = [*INPUTS[role], *OUTPUTS[role]]
    with torch.no_grad():
        torch.onnx.export(
            tower, tuple(torch.from_numpy(inputs[name]) for name in INPUTS[role]), str(path),
            input_names=list(INPUTS[role]), output_names=list(OUTPUTS[role]),
            dynamic_axes={name: axes[name] for name in names}, opset_version=OPSET, dynamo=False,
        )


def compare(towers: dict[str, Any], samples: dict[str, dict[str, np.ndarray]], staging: Path) -> dict[str, float]:
    """max |onnx - torch| / max |torch| of each tower's embeddings (vs CLIPModel.get_*_features) on the samples."""
    import onnxruntime
    import torch

    features = {"text": towers["clip"].get_text_features, "vision": towers["clip"].get_image_features}
    figures = {}
    for role, reference in features.items():
        session = onnxruntime.InferenceSession(str(staging / variant_filename("fp32", COMPONENTS[role])),
                                               providers=["CPUExecutionProvider"])
        got = session.run([OUTPUTS[role][0]], samples[role])[0]
        with torch.no_grad():
            want = reference(**{k: torch.from_numpy(v) for k, v in samples[role].items()}).numpy()
        figures[role] = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
    return {"relative_diff": max(figures.values()), **{f"{role}_relative_diff": v for role, v in figures.items()}}
