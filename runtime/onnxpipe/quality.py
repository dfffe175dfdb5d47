"""Generation quality under teacher forcing: a variant's figures against torch fp32, the references an export stores
for them (quality.npz), the bounds `onnxpipe check` holds each variant to, and that check.

The export runs torch fp32 over fixed texts (token ids) once and keeps, per position, the negative log-likelihood of
the token that follows and torch's top choice. Each exported variant (fp32, int8, q4, fp16) runs the same ids through
its decoder (generation/teacher_forced.py) and is judged by its mean NLL against torch's and by top-1 agreement: the
share of positions whose top choice is torch's, which is what greedy decoding follows. The export and `onnxpipe
check` compute the figures with the same functions here, so a figure measured on another CPU is the same figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.check_report import FileCheck, FolderCheck, verified_file
from onnxpipe.cpu import this_cpu
from onnxpipe.errors import CorruptModelError, MissingModelFileError
from onnxpipe.generation.onnx_decoder import graph_layout
from onnxpipe.generation.teacher_forced import NextTokenScores, teacher_forced
from onnxpipe.manifest import MANIFEST_NAME, variant_filename
from onnxpipe.model_folder import ModelFolder
from onnxpipe.session import OnnxSession
from onnxpipe.validation import AGREEMENT_MARGIN, load_references, save_references

QUALITY_NAME = "quality.npz"
# how far a variant's figures measured elsewhere may move from the export's before `check` fails: top-1 agreement
# may drop by AGREEMENT_MARGIN (0.02), the relative NLL increase may grow by 0.01 (1% of torch's NLL)
NLL_MARGIN = 0.01
# top-1 ids go into the float32 references exactly below 2**24 (any real vocabulary)
_EXACT_IN_FLOAT32 = 1 << 24


@dataclass(frozen=True)
class QualityText:
    """One teacher-forced text: decoder ids (1, T), the encoder's ids for encoder-decoders, and torch fp32's scores
    of positions 0..T-2 (NLL of the following token, top-1 id)."""

    name: str
    input_ids: np.ndarray
    source_ids: Optional[np.ndarray]
    nll: np.ndarray
    top1: np.ndarray

    @property
    def tokens(self) -> int:
        """Positions scored: every decoder position but the last."""
        return int(self.input_ids.shape[1]) - 1


def save_quality_references(path: Path, texts: Sequence[QualityText]) -> Path:
    """Write the texts' ids and torch's scores to one .npz file (validation.save_references' layout: `batch{i}/...`
    holds the ids, `reference{i}` the (T-1, 2) array of NLL and top-1 id)."""
    batches, reference = [], []
    for text in texts:
        if text.top1.size and int(text.top1.max()) >= _EXACT_IN_FLOAT32:
            raise ValueError(f"top-1 id {int(text.top1.max())} does not fit float32 exactly; vocabulary too large.")
        feeds = {"input_ids": np.asarray(text.input_ids, dtype=np.int64)}
        if text.source_ids is not None:
            feeds["source_ids"] = np.asarray(text.source_ids, dtype=np.int64)
        batches.append(feeds)
        reference.append(np.stack([text.nll, text.top1], axis=-1).astype(np.float32))
    return save_references(path, batches, reference)


def load_quality_references(path: Path, names: Sequence[str]) -> list[QualityText]:
    """The texts `save_quality_references` wrote, named in the manifest's order; CorruptModelError when they differ."""
    batches, reference = load_references(path)
    if len(batches) != len(names):
        raise CorruptModelError(f"{path} holds {len(batches)} texts but {MANIFEST_NAME} names {len(names)} ({', '.join(names)}); re-export the model.")
    texts = []
    for name, feeds, scores in zip(names, batches, reference):
        ids = feeds.get("input_ids")
        if ids is None or scores.shape != (ids.shape[1] - 1, 2):
            raise CorruptModelError(f"{path}: text {name!r} has ids {None if ids is None else ids.shape} and scores {scores.shape}; re-export the model.")
        texts.append(QualityText(name, ids, feeds.get("source_ids"), scores[:, 0].astype(np.float64), scores[:, 1].astype(np.int64)))
    return texts


def text_figures(scores: NextTokenScores, text: QualityText) -> dict[str, Any]:
    """One text's figures: positions scored, mean NLL here and torch's, relative NLL increase, top-1 agreement."""
    nll, torch_nll = float(np.mean(scores.nll)), float(np.mean(text.nll))
    return {
        "tokens": text.tokens,
        "nll": nll,
        "nll_torch": torch_nll,
        "nll_increase": (nll - torch_nll) / torch_nll,
        "top1_agreement": float(np.mean(scores.top1 == text.top1)),
    }


def variant_figures(per_text: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A variant's manifest figures: each text's, then all positions of all texts pooled."""
    tokens = sum(f["tokens"] for f in per_text.values())
    nll = sum(f["nll"] * f["tokens"] for f in per_text.values()) / tokens
    torch_nll = sum(f["nll_torch"] * f["tokens"] for f in per_text.values()) / tokens
    agreement = sum(f["top1_agreement"] * f["tokens"] for f in per_text.values()) / tokens
    return {
        **{name: dict(f) for name, f in per_text.items()},
        "tokens": tokens,
        "nll": nll,
        "nll_torch": torch_nll,
        "nll_increase": (nll - torch_nll) / torch_nll,
        "top1_agreement": agreement,
    }


def quality_acceptance(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The bounds a variant's figures must meet when measured again elsewhere (see NLL_MARGIN)."""
    return [
        {"figure": "top1_agreement", "at_least": round(float(figures["top1_agreement"]) - AGREEMENT_MARGIN, 6)},
        {"figure": "nll_increase", "at_most": round(float(figures["nll_increase"]) + NLL_MARGIN, 6)},
    ]


def measure_variant(
    decoder: Path, encoder: Optional[Path], texts: Sequence[QualityText], config: Mapping[str, Any]
) -> dict[str, Any]:
    """Teacher-force every text through one variant's decoder (its encoder first for encoder-decoders) on this CPU,
    with the runtime's session settings; returns variant_figures."""
    decoder_session = OnnxSession(decoder)
    encoder_session = OnnxSession(encoder) if encoder is not None else None
    layout = graph_layout(decoder_session, config)
    per_text = {}
    for text in texts:
        extra: dict[str, np.ndarray] = {}
        if text.source_ids is not None:
            if encoder_session is None:
                raise CorruptModelError(f"Quality text {text.name!r} has encoder ids but no encoder file was given for {decoder.name}.")
            mask = np.ones_like(text.source_ids)
            name = encoder_session.output_named("last_hidden_state")
            hidden = encoder_session.run({"input_ids": text.source_ids, "attention_mask": mask}, [name])[name]
            extra = {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}
        per_text[text.name] = text_figures(teacher_forced(decoder_session, layout, text.input_ids, extra), text)
    return variant_figures(per_text)


def _block(folder: ModelFolder) -> dict[str, Any]:
    """The manifest's quality block, or an error that says why this folder has none and how to get one."""
    manifest = folder.manifest or {}
    block = manifest.get("quality")
    if not block or not block.get("references"):
        model = manifest.get("source", {}).get("model", "CHECKPOINT")
        raise MissingModelFileError(
            f"{folder.path} holds no stored generation quality references ({QUALITY_NAME}): it was exported without "
            f"validation or by an older onnxpipe. Re-export it with `onnxpipe export {model} --task "
            f"{manifest.get('task')} --output {folder.path}` (with the same --dtype options) to check it on this machine."
        )
    return block


def check_generation_folder(folder: ModelFolder) -> FolderCheck:
    """Re-measure every variant of a generation folder teacher-forced on its stored references, on this CPU: one
    row for top-1 agreement and one for the NLL increase per variant."""
    block = _block(folder)
    path = verified_file(folder.path, block["references"], "generation quality references")
    texts = load_quality_references(path, list(block["texts"]))
    manifest = folder.manifest or {}
    components = manifest.get("components") or {"decoder": "model"}
    config = folder.read_json("config.json")
    rows = []
    for rel, entry in manifest.get("files", {}).items():
        exported = entry.get("quality")
        if not exported:
            continue
        dtype = str(entry.get("dtype"))
        encoder = variant_filename(dtype, components["encoder"]) if "encoder" in components else None
        paths = {}
        for name in (rel, encoder):
            if name is None:
                continue
            paths[name] = folder.path / name
            if not paths[name].is_file():
                raise MissingModelFileError(f"{paths[name]} is listed in {MANIFEST_NAME} but missing; restore it or re-export.")
            folder.verify(name, paths[name])
        here = measure_variant(paths[rel], paths.get(encoder) if encoder else None, texts, config)
        for bound in exported.get("acceptance") or quality_acceptance(exported):
            rows.append(FileCheck(rel, dtype, dict(exported), here, bound))
    return FolderCheck(folder.path, this_cpu(), block.get("measured_on"), tuple(rows), kind="generation")
