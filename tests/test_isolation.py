"""The runtime never needs torch, transformers or optimum: run both tasks with them made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, sys
for name in ("torch", "transformers", "optimum", "onnxpipe_export"):
    sys.modules[name] = None  # any import of them now raises ImportError
from onnxpipe import pipeline
classify = pipeline("text-classification", model=sys.argv[1])
embed = pipeline("feature-extraction", model=sys.argv[2], pooling="mean")
result = {"labels": classify(["great", "awful"]), "dims": len(embed("hello"))}
result["loaded"] = sorted(n for n in ("torch", "transformers", "optimum", "onnxpipe_export")
                          if sys.modules.get(n) is not None)
print(json.dumps(result))
"""


def test_runtime_runs_without_torch_or_transformers(models):
    classifier = models.get("bert", "text-classification").onnx
    embedder = models.get("roberta", "feature-extraction").onnx
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(classifier), str(embedder)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert len(result["labels"]) == 2 and all("label" in r for r in result["labels"])
    assert result["dims"] == 32


def test_runtime_sources_do_not_import_the_heavy_stack():
    """A static check beside the dynamic one: no runtime module names torch/transformers/optimum in an import."""
    import pathlib
    import re

    import onnxpipe

    pattern = re.compile(r"^\s*(import|from)\s+(torch|transformers|optimum|onnxpipe_export)\b", re.M)
    root = pathlib.Path(onnxpipe.__file__).parent
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
