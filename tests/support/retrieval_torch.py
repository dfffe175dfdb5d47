"""Torch references of ColBERT (PyLate's token layout) and BGE-M3 (FlagEmbedding's three outputs), written from
those libraries' definitions because neither installs here beside transformers 4.57 and torch 2.13 (PyLate 1.6
replaces torch and sentence-transformers; FlagEmbedding pulls datasets, peft and ir_datasets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def colbert_reference(folder: Path, texts: list[str], is_query: bool) -> list[np.ndarray]:
    """PyLate's ColBERT.encode(texts, is_query=...) on a PyLate folder: marker after [CLS], text cut to length - 1
    tokens, queries padded with [MASK] to query_length (all kept), documents without padding and skiplist tokens;
    tokens through the Dense projection, L2-normalized."""
    import torch
    import transformers
    from safetensors.torch import load_file

    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    weight = load_file(str(folder / "1_Dense" / "model.safetensors"))["linear.weight"]
    length = config["query_length"] if is_query else config["document_length"]
    expand = is_query and config["do_query_expansion"]
    if expand:
        tokenizer.pad_token = tokenizer.mask_token
    encoded = tokenizer(texts, padding="max_length" if expand else "longest", truncation=True, max_length=length - 1,
                        return_tensors="pt")
    prefix = tokenizer.convert_tokens_to_ids(config["query_prefix" if is_query else "document_prefix"])

    def insert(tensor: Any, value: int) -> Any:
        return torch.cat([tensor[:, :1], torch.full_like(tensor[:, :1], value), tensor[:, 1:]], dim=1)

    ids, mask = insert(encoded["input_ids"], prefix), insert(encoded["attention_mask"], 1)
    types = insert(encoded["token_type_ids"], 0)
    if expand and config["attend_to_expansion_tokens"]:
        mask = torch.ones_like(mask)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        vectors = torch.nn.functional.normalize(hidden @ weight.T, p=2, dim=-1)
    if is_query:
        return [v.numpy() for v in vectors]
    skip = torch.tensor([tokenizer.convert_tokens_to_ids(w) for w in config["skiplist_words"]])
    keep = mask.bool() & ~torch.isin(ids, skip)
    return [v[k].numpy() for v, k in zip(vectors, keep)]


def colbert_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """PyLate's colbert_scores: sum over query tokens of the best dot product with a document token."""
    import torch

    return np.array([[float(torch.einsum("qd,nd->qn", torch.tensor(q), torch.tensor(d)).max(dim=1).values.sum())
                      for d in documents] for q in queries])


def bge_m3_reference(folder: Path, texts: list[str]) -> dict[str, Any]:
    """FlagEmbedding's BGEM3FlagModel.encode(texts, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    on a folder with sparse_linear.pt and colbert_linear.pt: dense = normalized [CLS]; lexical weights = relu of the
    sparse head per token, max per token id, cls/eos/pad/unk and zero weights dropped, keys as strings; ColBERT =
    colbert head on tokens after the first, masked, normalized, cut to the real tokens less one."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    hidden_size = model.config.hidden_size
    sparse_linear, colbert_linear = torch.nn.Linear(hidden_size, 1), torch.nn.Linear(hidden_size, hidden_size)
    sparse_linear.load_state_dict(torch.load(folder / "sparse_linear.pt", map_location="cpu"))
    colbert_linear.load_state_dict(torch.load(folder / "colbert_linear.pt", map_location="cpu"))
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
        dense = torch.nn.functional.normalize(hidden[:, 0], dim=-1)
        token_weights = torch.relu(sparse_linear(hidden)).squeeze(-1)
        colbert = colbert_linear(hidden[:, 1:]) * encoded["attention_mask"][:, 1:][:, :, None].float()
        colbert = torch.nn.functional.normalize(colbert, dim=-1)
    unused = {tokenizer.convert_tokens_to_ids(tokenizer.special_tokens_map[name])
              for name in ("cls_token", "eos_token", "pad_token", "unk_token") if name in tokenizer.special_tokens_map}
    lexical = []
    for weights, ids in zip(token_weights.numpy(), encoded["input_ids"].tolist()):
        result: dict[str, float] = {}
        for weight, token in zip(weights, ids):
            if token not in unused and weight > 0 and weight > result.get(str(token), 0):
                result[str(token)] = float(weight)
        lexical.append(result)
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    return {"dense_vecs": dense.numpy(), "lexical_weights": lexical,
            "colbert_vecs": [vectors[: n - 1].numpy() for vectors, n in zip(colbert, lengths)]}
