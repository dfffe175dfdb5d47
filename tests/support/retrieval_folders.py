"""Tiny retrieval models for the sparse-embedding, multi-vector-embedding and hybrid-embedding tests, built offline
and exported by onnxpipe once per test process:

- "splade": the tiny BERT masked LM of :mod:`support.checkpoints` as a sentence-transformers SparseEncoder folder
  (Transformer fill-mask + SpladePooling max / relu, with query and document prompts), built with
  sentence-transformers' own classes; "splade-sum" is the same with sum pooling and log1p_relu.
- "colbert": a tiny BERT with PyLate's layout (added "[Q] " / "[D] " marker tokens, a bias-free 1_Dense projection,
  PyLate's keys in config_sentence_transformers.json). PyLate itself is not installed (it would replace torch and
  sentence-transformers), so the tests compare with a torch reference of ColBERT (:mod:`support.retrieval_torch`).
- "bge-m3": a tiny XLM-R encoder with BGE-M3's head files `colbert_linear.pt` (hidden -> hidden) and
  `sparse_linear.pt` (hidden -> 1), saved with torch under the names and state-dict keys of BAAI/bge-m3.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

from support import checkpoints

HIDDEN = 32
SPLADE_PROMPTS = {"query": "query: ", "document": ""}
COLBERT_DIM = 16
# PyLate's keys of config_sentence_transformers.json, as lightonai's ColBERT models carry them
COLBERT_CONFIG = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 12,
    "document_length": 20,
    "attend_to_expansion_tokens": False,
    "do_query_expansion": True,
    "skiplist_words": [".", ",", "!", "?", ";", ":"],
    "similarity_fn_name": "MaxSim",
    "prompts": {},
    "default_prompt_name": None,
}
SPLADE_POOLINGS = {"splade": ("max", "relu"), "splade-sum": ("sum", "log1p_relu")}


class RetrievalFolders:
    """Builds and exports each retrieval model once per process."""

    def __init__(self, root: Path):
        self.root = root
        self._checkpoints: dict[str, Path] = {}
        self._exports: dict[str, Path] = {}

    def checkpoint(self, name: str) -> Path:
        """The checkpoint folder of `name` ("splade", "splade-sum", "colbert", "bge-m3", "base"), built once."""
        if name not in self._checkpoints:
            folder = self.root / "ckpt" / name
            if name in SPLADE_POOLINGS:
                mlm = self._checkpoints.get("mlm") or checkpoints.build_checkpoint("bert", "masked-lm", self.root / "ckpt" / "mlm")
                self._checkpoints["mlm"] = mlm
                build_splade_folder(mlm, folder, *SPLADE_POOLINGS[name])
            elif name == "colbert":
                build_colbert_folder(folder)
            elif name == "bge-m3":
                build_bge_m3_folder(folder)
            elif name == "base":
                checkpoints.build_checkpoint("bert", "base", folder)
            else:
                raise KeyError(name)
            self._checkpoints[name] = folder
        return self._checkpoints[name]

    def onnx(self, name: str, task: Optional[str] = None) -> Path:
        """`name` exported by onnxpipe (fp32) for its task (or `task`), once."""
        task = task or {"colbert": "multi-vector-embedding", "bge-m3": "hybrid-embedding", "base": "feature-extraction"}.get(
            name, "sparse-embedding")
        key = f"{name}-{task}"
        if key not in self._exports:
            from onnxpipe_export import export

            out = self.root / "onnx" / key
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export(str(self.checkpoint(name)), task=task, output=str(out), dtype="fp32", quiet=True)
            self._exports[key] = out
        return self._exports[key]


_STORE: list[RetrievalFolders] = []


def retrieval_folders(tmp_path_factory) -> RetrievalFolders:
    """The process's one RetrievalFolders (test modules share builds and exports)."""
    if not _STORE:
        _STORE.append(RetrievalFolders(tmp_path_factory.mktemp("retrieval")))
    return _STORE[0]


def build_splade_folder(mlm: Path, folder: Path, strategy: str, activation: str) -> Path:
    """A SparseEncoder folder (Transformer fill-mask + SpladePooling) on the masked LM in `mlm`, saved by
    sentence-transformers."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modules = [Transformer(str(mlm), transformer_task="fill-mask"), SpladePooling(strategy, activation_function=activation)]
        model = SparseEncoder(modules=modules, prompts=SPLADE_PROMPTS, device="cpu")
        model.save(str(folder))
    return folder


def build_colbert_folder(folder: Path) -> Path:
    """A tiny BERT in PyLate's ColBERT layout: marker tokens added to the tokenizer (embeddings resized), a
    bias-free Dense projection to COLBERT_DIM in 1_Dense, PyLate's configuration keys."""
    import torch
    import transformers
    from safetensors.torch import save_file

    checkpoints.build_checkpoint("bert", "base", folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([COLBERT_CONFIG["query_prefix"], COLBERT_CONFIG["document_prefix"]])
    tokenizer.save_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model.embeddings.word_embeddings.weight.data[-2:].normal_(0, checkpoints.INITIALIZER_RANGE)
        weight = torch.randn(COLBERT_DIM, HIDDEN) / HIDDEN**0.5
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "1_Dense").mkdir(exist_ok=True)
    save_file({"linear.weight": weight.contiguous()}, str(folder / "1_Dense" / "model.safetensors"))
    _write_json(folder / "1_Dense" / "config.json", {
        "in_features": HIDDEN, "out_features": COLBERT_DIM, "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False})
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": COLBERT_CONFIG["document_length"] - 1, "do_lower_case": False})
    _write_json(folder / "config_sentence_transformers.json", COLBERT_CONFIG)
    return folder


def build_bge_m3_folder(folder: Path) -> Path:
    """A tiny XLM-R encoder with BGE-M3's head files beside it: colbert_linear.pt ({weight (H, H), bias (H,)}) and
    sparse_linear.pt ({weight (1, H), bias (1,)}), state dicts saved with torch.save as FlagEmbedding saves them."""
    import torch

    checkpoints.build_checkpoint("xlmr", "base", folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        colbert = torch.nn.Linear(HIDDEN, HIDDEN)
        sparse = torch.nn.Linear(HIDDEN, 1)
        torch.nn.init.normal_(sparse.weight, std=1.0 / HIDDEN**0.5)
        torch.nn.init.constant_(sparse.bias, 0.1)  # about half the tokens get a weight above zero
    torch.save(colbert.state_dict(), folder / "colbert_linear.pt")
    torch.save(sparse.state_dict(), folder / "sparse_linear.pt")
    return folder


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def copy_folder(source: Path, target: Path) -> Path:
    """A copy of an export folder, to change one file of it in a test."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target
