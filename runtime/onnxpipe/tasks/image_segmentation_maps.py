"""Segmentation post-processing in numpy, as transformers' image processors compute it with torch: bilinear
upsampling (align_corners=False), semantic argmax maps, and DETR's panoptic / instance segments
(`post_process_panoptic_segmentation` / `post_process_instance_segmentation` and their `compute_segments`).

Every map is built one plane at a time, so memory stays O(height x width) however many classes or queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from onnxpipe.maths import sigmoid, softmax

_ONE = np.float32(1)


def _source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (align_corners=False) source rows: lower index, upper index, weight of the upper one, as torch."""
    scale = np.float32(in_size / out_size)
    src = np.maximum(scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    low = np.minimum(src.astype(np.int64), in_size - 1)
    return low, np.minimum(low + 1, in_size - 1), (src - low).astype(np.float32)


def upsampled_planes(planes: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    """Each (h, w) plane of `planes` (N, h, w) resized bilinearly to (height, width) in float32, in torch's
    order of operations (torch.nn.functional.interpolate, mode="bilinear", align_corners=False)."""
    y0, y1, wy = _source_index(height, planes.shape[1])
    x0, x1, wx = _source_index(width, planes.shape[2])
    wy, wx = wy[:, None], wx[None, :]
    for plane in planes.astype(np.float32, copy=False):
        top, bottom = plane[y0], plane[y1]
        yield (_ONE - wy) * ((_ONE - wx) * top[:, x0] + wx * top[:, x1]) + wy * (
            (_ONE - wx) * bottom[:, x0] + wx * bottom[:, x1]
        )


def upsampled_argmax(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """argmax over classes of logits (C, h, w) resized bilinearly to (height, width): torch's interpolate + argmax,
    as transformers' post_process_semantic_segmentation."""
    best = np.full((height, width), -np.inf, dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.int64)
    for index, value in enumerate(upsampled_planes(logits, height, width)):
        better = value > best  # strict: the first class wins ties, as torch.argmax
        best[better], labels[better] = value[better], index
    return labels


def detr_semantic_map(class_logits: np.ndarray, mask_logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """DETR's post_process_semantic_segmentation for one image: class probabilities (null class dropped) times
    mask probabilities, summed over queries, upsampled, argmax. class_logits (Q, C+1), mask_logits (Q, h, w)."""
    classes = softmax(class_logits.astype(np.float32))[:, :-1]
    scores = np.einsum("qc,qhw->chw", classes, sigmoid(mask_logits.astype(np.float32))).astype(np.float32)
    return upsampled_argmax(scores, height, width)


@dataclass(frozen=True)
class Segment:
    """One panoptic / instance segment: its class, score (rounded to 6 digits, as transformers) and pixel mask."""

    label_id: int
    score: float
    mask: np.ndarray  # bool (height, width)


def detr_segments(
    class_logits: np.ndarray,
    mask_logits: np.ndarray,
    height: int,
    width: int,
    threshold: float,
    mask_threshold: float,
    overlap_mask_area_threshold: float,
) -> list[Segment]:
    """DETR's panoptic / instance segments of one image (the pipeline fuses no labels, so both are the same).

    Queries whose best class is not "no object" and scores above `threshold` are kept; each kept mask probability
    is upsampled to (height, width) and weighted by its score; every pixel goes to the query with the highest
    weighted probability; a query becomes a segment when it wins pixels and they cover more than
    `overlap_mask_area_threshold` of the pixels where its weighted probability reaches `mask_threshold`.
    """
    probabilities = softmax(class_logits.astype(np.float32))
    scores, labels = probabilities.max(axis=-1), probabilities.argmax(axis=-1)
    keep = (labels != class_logits.shape[-1] - 1) & (scores > threshold)
    if not keep.any():
        return []
    scores, labels = scores[keep], labels[keep]
    best = np.full((height, width), -np.inf, dtype=np.float32)
    owner = np.zeros((height, width), dtype=np.int64)
    areas = []
    for k, value in enumerate(upsampled_planes(sigmoid(mask_logits[keep].astype(np.float32)), height, width)):
        value = value * scores[k]
        areas.append(int((value >= np.float32(mask_threshold)).sum()))
        better = value > best  # strict: the first query wins ties, as torch.argmax
        best[better], owner[better] = value[better], k
    segments = []
    for k in range(len(scores)):
        mask = owner == k
        area = int(mask.sum())
        if area > 0 and areas[k] > 0 and area / areas[k] > overlap_mask_area_threshold:
            segments.append(Segment(int(labels[k]), round(float(scores[k]), 6), mask))
    return segments
