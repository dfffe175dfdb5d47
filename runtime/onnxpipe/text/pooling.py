"""Token vectors -> one sentence vector, as sentence-transformers' Pooling module computes it, in numpy.

Works on one input's real tokens (padding already dropped), so the result never depends on what else shared the
batch: it equals sentence-transformers' answer for right padding, and its answer for an input run alone under left
padding (where sentence-transformers' weightedmean counts positions from the padded start).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from onnxpipe.text.sentence_transformers_config import SentenceTransformersConfig


def pool(tokens: np.ndarray, modes: Sequence[str], first_position: int = 0) -> np.ndarray:
    """The pooled vector of `tokens` (n, hidden), one block per mode concatenated in order (cls, max, mean,
    mean_sqrt_len_tokens, weightedmean, lasttoken). `first_position` is the index of tokens[0] in the input
    (prompt tokens dropped before it), which weightedmean's weights count from."""
    tokens = np.asarray(tokens, dtype=np.float32)
    count, hidden = tokens.shape
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(tokens[0] if count else np.zeros(hidden, np.float32))
        elif mode == "lasttoken":
            vectors.append(tokens[-1] if count else np.zeros(hidden, np.float32))
        elif mode == "max":
            vectors.append(tokens.max(axis=0) if count else np.full(hidden, -np.inf, np.float32))
        elif mode == "mean":
            vectors.append(tokens.sum(axis=0) / max(count, 1e-9))
        elif mode == "mean_sqrt_len_tokens":
            vectors.append(tokens.sum(axis=0) / np.float32(np.sqrt(max(count, 1e-9))))
        elif mode == "weightedmean":
            weights = np.arange(first_position + 1, first_position + count + 1, dtype=np.float32)
            vectors.append((tokens * weights[:, None]).sum(axis=0) / max(float(weights.sum()), 1e-9))
        else:
            raise ValueError(f"unknown pooling mode {mode!r}")
    return np.concatenate(vectors).astype(np.float32, copy=False) if len(vectors) > 1 else vectors[0].astype(np.float32, copy=False)


def sentence_embedding(tokens: np.ndarray, config: SentenceTransformersConfig, prompt_tokens: int = 0) -> np.ndarray:
    """The folder's sentence embedding of one input's real token vectors: its Pooling (without the first
    `prompt_tokens` tokens when the folder's pooling excludes the prompt), then its Dense and Normalize modules."""
    skip = 0 if config.include_prompt else min(prompt_tokens, len(tokens))
    vector = pool(tokens[skip:], config.pooling_modes, first_position=skip)
    for step in config.steps:
        vector = step.apply(vector)
    return vector
