"""softmax, log-softmax, sigmoid and logsumexp, written once for every task and the generation loops.

Parity with transformers depends on the exact arithmetic, so each function states its dtype behaviour:
none of them casts unless it says so. Pass float32 arrays (the graphs' logits, cast with `.astype(np.float32)`
where a graph may give float16): float32 in gives float32 out, as torch computes these on float32 tensors.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in x's dtype, shifted by the row max as torch and transformers do.

    Rows of all -inf give NaN, as torch does (the generation loops rely on it to spot dead rows).
    """
    shifted = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis in x's dtype: (x - max) - log(sum(exp(x - max)))."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def logsumexp(values: np.ndarray) -> np.float32:
    """log(sum(exp(values))) over every element, in float32 (the exponentials and their sum included), shifted by
    the max; a non-finite max (all -inf, or an inf) is returned as is, as torch.logsumexp does."""
    top = values.max()
    if not np.isfinite(top):
        return top
    return np.float32(top + np.log(np.exp(values - top, dtype=np.float32).sum(dtype=np.float32)))


def sigmoid(x: np.ndarray, *, float64: bool = False) -> np.ndarray:
    """Element-wise logistic function, without overflow warnings for large negative x.

    Default: 1 / (1 + exp(-x)) in x's dtype (float32 in, float32 out), as torch.sigmoid on float32 logits.
    float64=True: 0.5 * (1 + tanh(x / 2)) computed in float64 and rounded to float32 once at the end; the
    visual-question-answering scores use it (their parity figures were measured with it).
    """
    if float64:
        return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(x).astype(np.float64)))).astype(np.float32)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def identity(x: np.ndarray) -> np.ndarray:
    """The scores as they are (transformers' function_to_apply="none")."""
    return x


#: transformers' ClassificationFunction, by lower-case name (the values function_to_apply takes)
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": sigmoid, "softmax": softmax, "none": identity}

