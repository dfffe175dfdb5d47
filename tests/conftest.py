"""Session-wide fixtures: tiny checkpoints built offline and exported once, plus their transformers pipelines."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# sha256 stamps of verified model files (onnxpipe.verified) go to a per-run folder, not the user's ~/.cache
if "ONNXPIPE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ONNXPIPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="onnxpipe-verified-")

from support import checkpoints  # noqa: E402  (tests/ is on sys.path: pyproject.toml sets pytest's pythonpath)

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
        self._exported: dict[str, Exported] = {}
        self._references: dict[Path, Any] = {}

    def get(self, arch: str, task: str, **config: Any) -> Exported:
        """The tiny text checkpoint `arch` with the head `task` needs, built and exported once."""
        name = "-".join([arch, task] + [f"{k}{v}" for k, v in sorted(config.items())])
        return self._once(name, task, lambda folder: checkpoints.build_checkpoint(arch, HEAD_OF_TASK[task], folder, **config))

    def _once(self, name: str, task: str, build: Callable[[Path], Path]) -> Exported:
        """Build a checkpoint with `build(folder)` and export it (fp32 + int8), once per session and name."""
        if name not in self._exported:
            from onnxpipe_export import export

            checkpoint = build(self.root / "ckpt" / name)
            onnx = self.root / "onnx" / name
            with warnings.catch_warnings():  # int8 on hidden-size-32 models loses top-1 on some rows: expected
                warnings.simplefilter("ignore")
                export(str(checkpoint), task=task, output=str(onnx), dtype=["fp32", "int8"], quiet=True)
            self._exported[name] = Exported(checkpoint, onnx, task)
        return self._exported[name]

    def reference(self, arch: str, task: str, **config: Any):
        """transformers.pipeline on the same checkpoint: the parity reference."""
        return self.reference_of(self.get(arch, task, **config))

    def reference_of(self, exported: Exported):
        """transformers.pipeline on an exported model's checkpoint, built once."""
        if exported.checkpoint not in self._references:
            import transformers

            self._references[exported.checkpoint] = transformers.pipeline(
                exported.task, model=str(exported.checkpoint), device="cpu"
            )
        return self._references[exported.checkpoint]

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
    """The tiny vision models of vision_checkpoints.py, kept in the session's ModelStore."""

    def __init__(self, store: ModelStore):
        self.store = store

    def get(self, arch: str) -> Exported:
        from support import vision_checkpoints

        task = vision_checkpoints.BUILDERS[arch][0]
        return self.store._once(f"vision-{arch}", task, lambda folder: vision_checkpoints.build_vision_checkpoint(arch, folder))

    def reference(self, arch: str):
        """transformers.pipeline on the same checkpoint: the parity reference."""
        return self.store.reference_of(self.get(arch))

    def pair(self, arch: str, dtype: str = "fp32"):
        """(onnxpipe pipeline on the export, transformers pipeline on the checkpoint)."""
        from onnxpipe import pipeline

        exported = self.get(arch)
        return pipeline(exported.task, model=str(exported.onnx), dtype=dtype), self.reference(arch)


@pytest.fixture(scope="session")
def vision_models(models) -> VisionStore:
    return VisionStore(models)


class GenerationStore:
    """The tiny generation models of generation_checkpoints.py: built once, exported (fp32 + int8) once."""

    def __init__(self, store: ModelStore):
        self.store = store
        self._checkpoints: dict[str, Path] = {}
        self._references: dict[tuple[str, str], Any] = {}
        self._folders: dict[tuple[str, ...], Path] = {}

    def checkpoint(self, arch: str) -> Path:
        """The checkpoint folder of `arch` (one of generation_checkpoints.GENERATION_ARCHS), built once."""
        from support import generation_checkpoints

        if arch not in self._checkpoints:
            folder = self.store.root / "ckpt" / f"generation-{arch}"
            self._checkpoints[arch] = generation_checkpoints.build_generation_checkpoint(arch, folder)
        return self._checkpoints[arch]

    def get(self, arch: str) -> Exported:
        """`arch` exported for its default task (generation_checkpoints.ARCH_TASK) as fp32 + int8, once."""
        from support import generation_checkpoints

        task = generation_checkpoints.ARCH_TASK[arch]
        return self.store._once(f"generation-{arch}", task, lambda folder: self.checkpoint(arch))

    def with_dtypes(self, arch: str, dtypes: tuple[str, ...], **options: Any) -> Path:
        """`arch` exported quietly for its default task with `dtypes` (fp32 is always written) and export `options`
        (e.g. q4_method), once per session."""
        from support import generation_checkpoints

        key = (arch, *dtypes, *(f"{k}-{v}" for k, v in sorted(options.items())))
        if key not in self._folders:
            from onnxpipe_export import export

            folder = self.store.root / "onnx" / "-".join(["generation", *key])
            with warnings.catch_warnings():  # reduced precision on tiny random models warns about its quality
                warnings.simplefilter("ignore")
                export(self.checkpoint(arch), generation_checkpoints.ARCH_TASK[arch], folder, list(dtypes), quiet=True,
                       **options)
            self._folders[key] = folder
        return self._folders[key]

    def reference(self, arch: str, task: Optional[str] = None):
        """transformers.pipeline(task) on the same checkpoint (default task: the arch's), built once."""
        from support import generation_checkpoints

        task = task or generation_checkpoints.ARCH_TASK[arch]
        if (arch, task) not in self._references:
            import transformers

            self._references[arch, task] = transformers.pipeline(task, model=str(self.checkpoint(arch)), device="cpu")
        return self._references[arch, task]


@pytest.fixture(scope="session")
def generation_models(models) -> GenerationStore:
    return GenerationStore(models)
