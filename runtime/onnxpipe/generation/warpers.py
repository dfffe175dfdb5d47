"""Sampling warpers in numpy (temperature, top-k, top-p, min-p, typical, epsilon, eta), each equal to its transformers 4.57 namesake,
transformers applies them only when sampling; softmax and log-softmax come from onnxpipe.maths."""

from __future__ import annotations

import numpy as np

from onnxpipe.maths import log_softmax, softmax

NEG_INF = np.float32(-np.inf)


class Temperature:
    """Divide the scores by the temperature."""

    def __init__(self, temperature: float):
        if not temperature > 0:
            raise ValueError(f"temperature must be strictly positive, got {temperature}")
        self.temperature = float(temperature)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return scores / np.float32(self.temperature)


class TopK:
    """Keep the `top_k` highest scores (ties with the k-th kept too); the rest become -inf."""

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1):
        self.top_k = max(int(top_k), min_tokens_to_keep)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        vocab = scores.shape[-1]
        k = min(self.top_k, vocab)
        kth = np.partition(scores, vocab - k, axis=-1)[..., vocab - k : vocab - k + 1]
        return np.where(scores < kth, NEG_INF, scores)


class TopP:
    """Nucleus filtering: drop the least likely tokens whose cumulative probability stays <= 1 - top_p."""

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1):
        self.top_p = float(top_p)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        live = scores > NEG_INF
        if live.sum(axis=-1).max() * 4 < scores.shape[-1]:
            return self._sparse(scores, live)
        return self._dense(scores)

    def _sparse(self, scores: np.ndarray, live: np.ndarray) -> np.ndarray:
        """The same result on the live (> -inf) entries only (after top_k most are -inf): -inf entries sort
        first with probability 0, so they add nothing to the cumulative sums."""
        out = np.full_like(scores, NEG_INF)
        for row in range(scores.shape[0]):
            idx = np.flatnonzero(live[row])
            if idx.size:
                out[row, idx] = self._dense(scores[row, idx][None, :])[0]
        return out

    def _dense(self, scores: np.ndarray) -> np.ndarray:
        order = np.argsort(scores, axis=-1, kind="stable")  # ascending, as transformers sorts
        sorted_scores = np.take_along_axis(scores, order, axis=-1)
        cumulative = np.cumsum(softmax(sorted_scores), axis=-1, dtype=np.float32)
        remove_sorted = cumulative <= np.float32(1 - self.top_p)
        remove_sorted[..., -self.min_tokens_to_keep :] = False
        remove = np.empty_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        return np.where(remove, NEG_INF, scores)


class MinP:
    """Drop tokens whose probability is below min_p times the top token's probability."""

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1):
        self.min_p = float(min_p)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        probs = softmax(scores)
        remove = probs < np.float32(self.min_p) * probs.max(axis=-1, keepdims=True)
        if self.min_tokens_to_keep > 1:
            top = np.argsort(-scores, axis=-1, kind="stable")[..., : self.min_tokens_to_keep]
            np.put_along_axis(remove, top, False, axis=-1)
        else:
            np.put_along_axis(remove, scores.argmax(axis=-1)[:, None], False, axis=-1)
        return np.where(remove, NEG_INF, scores)


def _kth_largest(scores: np.ndarray, k: int) -> np.ndarray:
    vocab = scores.shape[-1]
    k = min(k, vocab)
    return np.partition(scores, vocab - k, axis=-1)[..., vocab - k : vocab - k + 1]


class Typical:
    """Locally typical sampling: keep the tokens whose surprisal is closest to the entropy, up to `mass`."""

    def __init__(self, mass: float, min_tokens_to_keep: int = 1):
        self.mass = float(mass)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        normalized = log_softmax(scores)
        p = np.exp(normalized)
        with np.errstate(invalid="ignore"):
            ent = -np.nansum(normalized * p, axis=-1, keepdims=True)
        shifted = np.abs(-normalized - ent)
        order = np.argsort(shifted, axis=-1, kind="stable")
        sorted_shifted = np.take_along_axis(shifted, order, axis=-1)
        cumulative = np.cumsum(softmax(np.take_along_axis(scores, order, axis=-1)), axis=-1, dtype=np.float32)
        last = np.minimum((cumulative < np.float32(self.mass)).sum(axis=-1), scores.shape[-1] - 1)
        remove_sorted = sorted_shifted > np.take_along_axis(sorted_shifted, last[:, None], axis=-1)
        remove_sorted[..., : self.min_tokens_to_keep] = False
        remove = np.empty_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        return np.where(remove, NEG_INF, scores)


class EpsilonCutoff:
    """Drop tokens whose probability is below `epsilon` (keeping the min_tokens_to_keep most likely)."""

    def __init__(self, epsilon: float, min_tokens_to_keep: int = 1):
        self.epsilon = np.float32(epsilon)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        remove = (softmax(scores) < self.epsilon) & (scores < _kth_largest(scores, self.min_tokens_to_keep))
        return np.where(remove, NEG_INF, scores)


class EtaCutoff:
    """Drop tokens below min(eta, sqrt(eta) * exp(-entropy)) (keeping the min_tokens_to_keep most likely)."""

    def __init__(self, epsilon: float, min_tokens_to_keep: int = 1):
        self.epsilon = np.float32(epsilon)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        probs = softmax(scores)
        logits = np.maximum(log_softmax(scores), np.finfo(np.float32).min)  # torch Categorical clamps -inf
        entropy = -(logits * probs).sum(axis=-1, keepdims=True)
        eta = np.minimum(self.epsilon, np.sqrt(self.epsilon) * np.exp(-entropy))
        remove = (probs < eta) & (scores < _kth_largest(scores, self.min_tokens_to_keep))
        return np.where(remove, NEG_INF, scores)
