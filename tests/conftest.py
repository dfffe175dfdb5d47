"""Session-wide fixtures: tiny checkpoints built offline and exported once, plus their transformers pipelines."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import checkpoints  # noqa: E402  (tests/ is on sys.path under pytest's default import mode)

HEAD_OF_TASK = {
    "text-classification": "sequence-classification",
    "feature-extraction": "base",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "fill-mask": "masked-lm",
    "zero-shot-classification": "sequence-classification",  # pass labels=checkpoints.NLI_LABELS
}
ARCHS = ["bert", "distilbert", "roberta", "xlmr"]  # WordPiece (with and without token_type_ids), byte-level BPE, SentencePiece unigram


@dataclass(frozen=True)
class Exported:
    """A tiny checkpoint folder and the onnxpipe export of it (fp32 + int8)."""

    checkpoint: Path
    onnx: Path
    task: str


class ModelStore:
    """Builds and exports each tiny model once per test session; hands out transformers pipelines too."""

    def __init__(self, root: Path):
        self.root = root
        self._exported: dict[tuple, Exported] = {}
        self._references: dict[tuple, Any] = {}

    def get(self, arch: str, task: str, **config: Any) -> Exported:
        key = (arch, task, tuple(sorted(config.items())))
        if key not in self._exported:
            from onnxpipe_export import export

            name = "-".join([arch, task] + [f"{k}{v}" for k, v in sorted(config.items())])
            checkpoint = checkpoints.build_checkpoint(arch, HEAD_OF_TASK[task], self.root / "ckpt" / name, **config)
            onnx = self.root / "onnx" / name
            with warnings.catch_warnings():  # int8 on hidden-size-32 models loses top-1 on some rows: expected
                warnings.simplefilter("ignore")
                export(str(checkpoint), task=task, output=str(onnx), dtype=["fp32", "int8"], quiet=True)
            self._exported[key] = Exported(checkpoint, onnx, task)
        return self._exported[key]

    def reference(self, arch: str, task: str, **config: Any):
        """transformers.pipeline on the same checkpoint: the parity reference."""
        key = (arch, task, tuple(sorted(config.items())))
        if key not in self._references:
            import transformers

            exported = self.get(arch, task, **config)
            self._references[key] = transformers.pipeline(task, model=str(exported.checkpoint), device="cpu")
        return self._references[key]


    def pair(self, arch: str, task: str, dtype: str = "fp32"):
        """(onnxpipe pipeline on the export, transformers pipeline on the checkpoint) for one tiny model."""
        from onnxpipe import pipeline

        ours = pipeline(task, model=str(self.get(arch, task).onnx), dtype=dtype)
        return ours, self.reference(arch, task)


@pytest.fixture(scope="module", params=ARCHS)
def arch(request) -> str:
    """Each tiny architecture in turn."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The transformers references run tiny models: one torch thread is faster than two, many times so
    when the cores are shared with onnxruntime or other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> ModelStore:
    return ModelStore(tmp_path_factory.mktemp("models"))


class VisionStore:
    """Builds and exports each tiny vision model (vision_checkpoints.py) once per session, with its references."""

    def __init__(self, root: Path):
        self.root = root
        self._exported: dict[str, Exported] = {}
        self._references: dict[str, Any] = {}

    def get(self, arch: str) -> Exported:
        if arch not in self._exported:
            import vision_checkpoints
            from onnxpipe_export import export

            task = vision_checkpoints.BUILDERS[arch][0]
            checkpoint = vision_checkpoints.build_vision_checkpoint(arch, self.root / "ckpt" / arch)
            onnx = self.root / "onnx" / arch
            with warnings.catch_warnings():  # int8 on tiny random models loses top-1 on some rows: expected
                warnings.simplefilter("ignore")
                export(str(checkpoint), task=task, output=str(onnx), dtype=["fp32", "int8"], quiet=True)
            self._exported[arch] = Exported(checkpoint, onnx, task)
        return self._exported[arch]

    def reference(self, arch: str):
        """transformers.pipeline on the same checkpoint: the parity reference."""
        if arch not in self._references:
            import transformers

            exported = self.get(arch)
            self._references[arch] = transformers.pipeline(exported.task, model=str(exported.checkpoint), device="cpu")
        return self._references[arch]

    def pair(self, arch: str, dtype: str = "fp32"):
        """(onnxpipe pipeline on the export, transformers pipeline on the checkpoint)."""
        from onnxpipe import pipeline

        exported = self.get(arch)
        return pipeline(exported.task, model=str(exported.onnx), dtype=dtype), self.reference(arch)


@pytest.fixture(scope="session")
def vision_models(tmp_path_factory) -> VisionStore:
    return VisionStore(tmp_path_factory.mktemp("vision_models"))
