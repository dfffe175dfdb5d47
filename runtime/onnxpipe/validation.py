"""Parity figures of an ONNX file against reference outputs, and the references an export stores in its folder.

The export stage measures every file against torch; it also writes the inputs and torch's outputs to
`validation.npz`, so `onnxpipe check` can measure the same figures again on the machine where the folder is
deployed, without torch (int8 numerics depend on the CPU class: see cpu.py). Both use the functions here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.session import session_options

REFERENCES_NAME = "validation.npz"
FP32_RELATIVE_TOLERANCE = 1e-4
# how far a reduced-precision figure measured elsewhere may fall below the export's own before `check` fails
COSINE_MARGIN = 0.005
AGREEMENT_MARGIN = 0.02
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Comparison:
    """How a task's outputs are compared: which outputs, per token or not, and the figure that judges them.

    metric "top1": rows whose argmax over `class_axis` agrees; "span": rows whose argmax over the real tokens agrees
    (QA start/end); "cosine": min and mean cosine of mean-pooled rows; "order": one score per row (a reranker),
    judged by the share of row pairs of a batch that the file and the reference put in the same order.
    """

    outputs: tuple[str, ...]
    token_level: bool
    metric: str
    class_axis: int = -1

    def manifest_entry(self) -> dict[str, Any]:
        """The manifest's record of this comparison (validation.comparison)."""
        return {**asdict(self), "outputs": list(self.outputs)}

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Comparison:
        """The comparison a manifest recorded."""
        return cls(tuple(entry["outputs"]), bool(entry["token_level"]), str(entry["metric"]), int(entry.get("class_axis", -1)))


def batch_mask(feeds: Feeds) -> np.ndarray:
    """The attention mask; all ones without one (one column per item for image and audio batches)."""
    if "attention_mask" in feeds:
        return np.asarray(feeds["attention_mask"])
    if "input_ids" not in feeds:
        return np.ones((len(next(iter(feeds.values()))), 1), dtype=np.int64)
    return np.ones_like(feeds["input_ids"])


def stacked(values: list[np.ndarray]) -> np.ndarray:
    """One output as it is; several stacked on a new last axis (start and end logits), or joined on the last
    axis when their last sizes differ (detection logits and boxes), per query when their ranks differ (DETR
    panoptic class logits (B, Q, C) and mask logits (B, Q, H, W))."""
    if len(values) == 1:
        return values[0]
    if len({v.shape for v in values}) == 1:
        return np.stack(values, axis=-1)
    if len({v.ndim for v in values}) > 1:
        values = [v.reshape(*v.shape[:2], -1) for v in values]
    return np.concatenate(values, axis=-1)


def run_file(path: Path, comparison: Comparison, batches: Sequence[Feeds]) -> list[np.ndarray]:
    """Run an ONNX file on the CPU with the runtime's session settings; one stacked float32 output per batch."""
    import onnxruntime as ort

    options = session_options()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    missing = [name for name in comparison.outputs if name not in names]
    if missing:
        raise InvalidInputError(f"{Path(path).name} has outputs {names}, not {missing} as the comparison needs.")
    results = []
    for batch in batches:
        feeds = {}
        for spec in session.get_inputs():
            if spec.name in batch:
                value = np.asarray(batch[spec.name])
            elif spec.name == "token_type_ids" and "input_ids" in batch:
                value = np.zeros_like(batch["input_ids"])
            else:
                raise InvalidInputError(f"{Path(path).name} needs input {spec.name!r}, which the batch does not hold.")
            feeds[spec.name] = value.astype(_ORT_INT_TYPES.get(spec.type, value.dtype), copy=False)
        values = session.run(list(comparison.outputs), feeds)
        results.append(stacked([v.astype(np.float32, copy=False) for v in values]))
    return results


def _compared(values: np.ndarray, mask: np.ndarray, token_level: bool) -> np.ndarray:
    return values[mask.astype(bool)] if token_level else values


def fp32_tolerance(reference: Sequence[np.ndarray], masks: Sequence[np.ndarray], token_level: bool) -> float:
    """1e-4 times the reference's largest magnitude (at least 1): fp32 differences scale with it."""
    peak = max(float(np.abs(_compared(r, m, token_level)).max()) for r, m in zip(reference, masks))
    return FP32_RELATIVE_TOLERANCE * max(1.0, peak)


def _mean_pool(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float64)
    return (values * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def compare(
    outputs: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    comparison: Comparison,
    tolerance: Optional[float] = None,
) -> dict[str, Optional[float]]:
    """Figures of one file against the reference: max_abs_diff, tolerance, and top1_agreement or min/mean cosine."""
    diffs, agree, rows, cosines = [], 0, 0, []
    for out, ref, mask in zip(outputs, reference, masks):
        ours, theirs = _compared(out, mask, comparison.token_level), _compared(ref, mask, comparison.token_level)
        diffs.append(float(np.abs(ours - theirs).max()))
        if comparison.metric == "top1":  # argmax over the class axis, per row (per real token / query / pixel)
            ours, theirs = np.moveaxis(ours, comparison.class_axis, -1), np.moveaxis(theirs, comparison.class_axis, -1)
            agree += int((ours.argmax(axis=-1) == theirs.argmax(axis=-1)).sum())
            rows += int(np.prod(ours.shape[:-1]))
        elif comparison.metric == "span":  # argmax over the real tokens of each row, per stacked output
            masked = np.where(mask.astype(bool)[..., None], 1.0, -np.inf)
            agree += int(((out * masked).argmax(axis=1) == (ref * masked).argmax(axis=1)).sum())
            rows += out.shape[0] * out.shape[-1]
        elif comparison.metric == "order":
            a, b = ours.reshape(len(ours), -1)[:, 0], theirs.reshape(len(theirs), -1)[:, 0]
            upper = np.triu_indices(len(a), 1)
            agree += int((np.sign(a[:, None] - a)[upper] == np.sign(b[:, None] - b)[upper]).sum())
            rows += len(upper[0])
        else:
            if out.ndim > 3:  # image outputs (B, C, H, W): one vector per image
                out, ref = out.reshape(len(out), 1, -1), ref.reshape(len(ref), 1, -1)
            a, b = _mean_pool(out, mask), _mean_pool(ref, mask)
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            cosines.extend(((a * b).sum(axis=1) / np.maximum(norms, 1e-12)).tolist())
    figures: dict[str, Optional[float]] = {"max_abs_diff": max(diffs), "tolerance": tolerance}
    if comparison.metric in ("top1", "span"):
        figures["top1_agreement"] = agree / rows
    elif comparison.metric == "order":
        figures["order_agreement"] = agree / max(1, rows)
    else:
        figures["min_cosine"] = float(min(cosines))
        figures["mean_cosine"] = float(np.mean(cosines))
    return figures


def acceptance(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The bound a file must meet when its figures are measured again elsewhere: fp32 (a tolerance is set) stays
    within it; reduced precision keeps its export figure up to a small margin (so a CPU class whose int8
    kernels lose accuracy is caught)."""
    if figures.get("tolerance") is not None:
        return {"figure": "max_abs_diff", "at_most": float(figures["tolerance"])}
    if figures.get("min_cosine") is not None:
        return {"figure": "min_cosine", "at_least": round(float(figures["min_cosine"]) - COSINE_MARGIN, 6)}
    if figures.get("order_agreement") is not None:
        return {"figure": "order_agreement", "at_least": round(float(figures["order_agreement"]) - AGREEMENT_MARGIN, 6)}
    return {"figure": "top1_agreement", "at_least": round(float(figures["top1_agreement"]) - AGREEMENT_MARGIN, 6)}


def meets(figures: Mapping[str, Any], bound: Mapping[str, Any]) -> bool:
    """Whether figures measured now meet a file's acceptance bound."""
    value = float(figures[bound["figure"]])
    return value <= bound["at_most"] if "at_most" in bound else value >= bound["at_least"]


def save_references(path: Path, batches: Sequence[Feeds], reference: Sequence[np.ndarray]) -> Path:
    """Write the validation batches and torch's outputs for them to one compressed .npz file."""
    arrays: dict[str, np.ndarray] = {}
    for index, (feeds, ref) in enumerate(zip(batches, reference)):
        for name, value in feeds.items():
            arrays[f"batch{index}/{name}"] = np.asarray(value)
        arrays[f"reference{index}"] = np.asarray(ref, dtype=np.float32)
    np.savez_compressed(path, **arrays)
    return Path(path)


def load_references(path: Path) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray]]:
    """The batches and reference outputs `save_references` wrote."""
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        count = sum(1 for key in keys if key.startswith("reference"))
        batches: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
        reference = [data[f"reference{i}"] for i in range(count)]
        for key in keys:
            head, sep, name = key.partition("/")
            if sep and head.startswith("batch"):
                batches[int(head[len("batch"):])][name] = data[key]
    return batches, reference
