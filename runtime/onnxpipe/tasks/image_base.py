"""What the image tasks share: loading the image processor, turning inputs into pixel_values, batching them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from onnxpipe.options import check_timeout
from onnxpipe.tasks.pipeline_base import Pipeline
from onnxpipe.vision.images import ImageProcessor, load_image, pad_batch

# options every image task takes: the URL fetch timeout in seconds (transformers' `timeout`)
IMAGE_OPTIONS = {"timeout": None}


@dataclass(frozen=True)
class ImagePiece:
    """One preprocessed image: pixel_values (C, H, W) and the original (height, width)."""

    pixel_values: np.ndarray
    original_size: tuple[int, int]

    def __len__(self) -> int:  # batches group images of the same processed size
        return int(self.pixel_values.shape[1] * self.pixel_values.shape[2])


@dataclass(frozen=True)
class ImageBatch:
    """A stacked (padded, for DETR-style processors) batch and the graph inputs it feeds."""

    pixel_values: np.ndarray
    pixel_mask: np.ndarray
    original_sizes: tuple[tuple[int, int], ...]
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)  # e.g. CLIP's tokenized candidate labels

    def feeds(self) -> dict[str, np.ndarray]:
        """The arrays; the session drops the ones its graph does not declare."""
        return {"pixel_values": self.pixel_values, "pixel_mask": self.pixel_mask, **self.extra}


class ImagePipeline(Pipeline):
    """A pipeline whose inputs are images, preprocessed as the folder's preprocessor_config.json says."""

    def setup(self) -> None:
        super().setup()
        self.folder.require("preprocessor_config.json", "holds the image preprocessing settings")
        self.processor = self.load_processor()
        self.id2label = {int(k): v for k, v in (self.folder.config.get("id2label") or {}).items()}

    def load_processor(self) -> Any:
        """The folder's image processor (a task whose models need another processor overrides this)."""
        return ImageProcessor.from_config(
            self.folder.read_json("preprocessor_config.json"), str(self.folder.path / "preprocessor_config.json")
        )

    def validate_image_options(self, options: dict[str, Any]) -> None:
        """Check `timeout`."""
        check_timeout(options)

    def label(self, index: int) -> str:
        """The id2label name of a class index, as transformers reads config.id2label."""
        return self.id2label.get(index, f"LABEL_{index}")

    def batch_groups(self, pieces: Sequence[Any]) -> list[list[int]]:
        """Batch only images of the same processed size: DETR and YOLOS graphs take no pixel_mask, so padding
        would change their outputs (transformers runs them one image at a time)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, piece in enumerate(pieces):
            groups.setdefault(piece.pixel_values.shape, []).append(index)
        return list(groups.values())

    def prepare(self, items: Sequence[Any], options: dict[str, Any]) -> list[ImagePiece]:
        pieces = []
        for item in items:
            image = load_image(item, options["timeout"], self.media_sources, self.limits)
            pieces.append(ImagePiece(self.processor.preprocess(image), (image.height, image.width)))
        return pieces

    def collate(self, pieces: Sequence[ImagePiece], options: dict[str, Any]) -> ImageBatch:
        values, mask = pad_batch([p.pixel_values for p in pieces])
        return ImageBatch(values, mask, tuple(p.original_size for p in pieces))
