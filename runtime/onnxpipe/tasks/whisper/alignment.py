"""Token timestamps of Whisper from cross-attention, as transformers 4.57 computes them for word timestamps
(`WhisperForConditionalGeneration._extract_token_timestamps`), written here in numpy.

The decoder's cross-attention probabilities of the alignment heads (generation_config.json `alignment_heads`,
pairs of decoder layer and head) over the decoded tokens, cropped to the audio's encoder positions, are
normalized per encoder position across the tokens, smoothed along time by a median filter
(config.json `median_filter_width`, 7 by default) and averaged over the heads. Dynamic time warping finds the
cheapest monotonic path through minus that matrix; each token's time is where the path first reaches its row,
in steps of 0.02 s. The prompt's rows are left out and the last token (EOS) repeats the previous time.

The attention rows come from one extra decoder pass over the decoded sequence (no cache: the decoder is causal,
so each row equals the one the decoding step computed), which the exported merged decoder serves when it has
`cross_attentions.<layer>` outputs (onnxpipe_export.whisper_attentions).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

TIME_PRECISION = 0.02
OUTPUT_PREFIX = "cross_attentions."


def median_filter(values: np.ndarray, width: int) -> np.ndarray:
    """Median over a window of odd `width` along the last axis, the edges padded by reflection (torch's 'reflect',
    which does not repeat the edge value); unchanged when the last axis is no longer than half the window."""
    if width <= 0 or width % 2 != 1:
        raise ValueError(f"median_filter_width must be a positive odd number, got {width}")
    pad = width // 2
    if values.shape[-1] <= pad:
        return values
    padded = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.sort(windows, axis=-1)[..., pad]


def dynamic_time_warping(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token indices, time indices) of the cheapest monotonic path through `matrix` (tokens x times), with the
    steps diagonal, down and right tried in that order on ties as transformers does. The cost table fills one
    anti-diagonal at a time (every cell of one depends only on the two before), in float32 like transformers'."""
    rows, cols = matrix.shape
    cost = np.full((rows + 1, cols + 1), np.inf, dtype=np.float32)
    trace = np.full((rows + 1, cols + 1), -1, dtype=np.int8)
    cost[0, 0] = 0
    values = np.asarray(matrix, dtype=np.float64)
    for diagonal in range(2, rows + cols + 1):
        i = np.arange(max(1, diagonal - cols), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        step = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        best = np.choose(step, [c0, c1, c2])
        cost[i, j] = (values[i - 1, j - 1] + best).astype(np.float32)
        trace[i, j] = step
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = rows, cols
    token_path, time_path = [], []
    while i > 0 or j > 0:
        token_path.append(i - 1)
        time_path.append(j - 1)
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.asarray(token_path[::-1]), np.asarray(time_path[::-1])


def token_times(weights: np.ndarray, prompt_length: int, num_frames: Optional[int], median_width: int,
                crops: int = 1) -> np.ndarray:
    """The time in seconds of each generated token of one sequence (float32, as transformers keeps them).

    `weights`: (alignment heads, positions fed to the decoder, encoder positions) cross-attention of the prompt and
    every generated token but the last; `num_frames`: the audio's mel frames left from this window's start (None:
    all). transformers crops to num_frames // 2 positions twice when every row of the batch has the same count
    (`crops` 2) and once otherwise: the same unless the window starts past the audio's end, where the count is
    negative and each crop is a slice from the end."""
    if num_frames is not None:
        for _ in range(crops):
            weights = weights[..., : int(num_frames) // 2]
    weights = weights[:, prompt_length:, :].astype(np.float32)
    generated = weights.shape[1] + 1
    if weights.shape[1] == 0:
        return np.zeros(generated, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = weights.std(axis=-2, keepdims=True)
        normalized = (weights - weights.mean(axis=-2, keepdims=True)) / std
    matrix = median_filter(normalized, median_width).mean(axis=0)
    tokens, times = dynamic_time_warping(-matrix.astype(np.float64))
    jumps = np.diff(tokens, prepend=tokens[0] - 1).astype(bool)
    jump_times = (times[jumps] * TIME_PRECISION).astype(np.float32)
    return np.concatenate([jump_times, jump_times[-1:]])


def head_weights(attentions: dict[int, np.ndarray], heads: Sequence[Sequence[int]], row: int) -> np.ndarray:
    """(heads, positions, encoder positions) of one batch row from `cross_attentions.<layer>` outputs."""
    return np.stack([attentions[int(layer)][row, int(head)] for layer, head in heads])
