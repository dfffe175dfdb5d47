"""One pipeline shared by many threads gives each caller its own, correct results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS

from onnxpipe import pipeline


@pytest.mark.filterwarnings("ignore:.*truncated:UserWarning")
def test_shared_pipeline_across_threads(models):
    classify = pipeline("text-classification", model=str(models.get("roberta", "text-classification").onnx))
    calls = [
        ([VARIED_TEXTS[i % len(VARIED_TEXTS)], LONG_TEXT], {"top_k": None, "truncation": True, "max_length": 16 + i % 3})
        for i in range(24)
    ]
    expected = [classify(texts, **options) for texts, options in calls]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda call: classify(call[0], **call[1]), calls))
    assert got == expected
    # different truncation limits really gave different results
    assert expected[0][1] != expected[1][1]
