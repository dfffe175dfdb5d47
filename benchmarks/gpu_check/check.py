"""The GPU check, run on a machine with an NVIDIA GPU and no network (see README.md beside this file).

It builds a bert-base-size text classifier with random weights (transformers there, whatever its version),
exports it with plain `torch.onnx.export` (fp32) and onnxruntime's own tools (fused fp16), then:
1. parity: onnxpipe on device="cuda" (fp32 and fp16) against the transformers pipeline on the same GPU;
2. the bench: `onnxpipe_bench` batch 1 and 32 x 128 tokens, fp32 and fp16, against transformers torch CUDA.
Everything lands in --out as JSON and markdown. `--device cpu --tiny` runs the same steps on a small model
here, so the script is exercised by the test suite on machines without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TEXTS = [
    "The river runs past the old mill and under the stone bridge.",
    "Customers complained that the delivery was late and the package was damaged.",
    "She wrote three books about the history of music.",
    "Nobody expected the game to be cancelled, but the field was flooded.",
]


def build_checkpoint(folder: Path, tokenizer_json: Path, tiny: bool) -> Path:
    """A random-weight BertForSequenceClassification (bert-base shape unless tiny) saved with a fast tokenizer."""
    import torch
    import transformers

    torch.manual_seed(0)
    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128) if tiny else {}
    config = transformers.BertConfig(num_labels=2, **size)
    model = transformers.BertForSequenceClassification(config).eval()
    tokenizer = transformers.BertTokenizerFast(tokenizer_file=str(tokenizer_json), model_max_length=512)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def export_onnx(checkpoint: Path, out: Path) -> dict[str, float]:
    """model.onnx (torch.onnx.export, fp32) and model_fp16.onnx (bert fusion + fp16 with float32 IO); seconds each."""
    import torch
    import transformers
    from onnxruntime.transformers import optimizer

    model = transformers.BertForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (checkpoint / name).is_file():
            (out / name).write_bytes((checkpoint / name).read_bytes())
    ids = torch.ones(1, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    started = time.perf_counter()
    torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), str(out / "model.onnx"), input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    seconds = {"export_fp32_s": time.perf_counter() - started}
    started = time.perf_counter()
    config = model.config
    fused = optimizer.optimize_model(str(out / "model.onnx"), model_type="bert", num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size)
    fused.convert_float_to_float16(keep_io_types=True)
    fused.save_model_to_file(str(out / "model_fp16.onnx"))
    seconds["fp16_s"] = time.perf_counter() - started
    return seconds


def parity(checkpoint: Path, folder: Path, device: str) -> dict[str, Any]:
    """onnxpipe fp32 / fp16 on `device` against the transformers pipeline on the same device: labels and scores."""
    import transformers

    from onnxpipe import pipeline

    reference = transformers.pipeline("text-classification", model=str(checkpoint), device=device, top_k=None)
    want = reference(TEXTS)
    figures: dict[str, Any] = {}
    for dtype, tolerance in (("fp32", 2e-3), ("fp16", 2e-2)):
        ours = pipeline("text-classification", model=str(folder), device=device, dtype=dtype, top_k=None)
        got = ours(TEXTS)
        worst = max(abs(a["score"] - b["score"]) for ga, wa in zip(got, want)
                    for a, b in zip(sorted(ga, key=lambda x: x["label"]), sorted(wa, key=lambda x: x["label"])))
        figures[dtype] = {
            "providers": ours.session.providers,
            "max_score_diff": worst,
            "tolerance": tolerance,
            "top_labels_equal": [g[0]["label"] for g in got] == [w[0]["label"] for w in want],
            "ok": worst <= tolerance,
        }
    return figures


def bench(checkpoint: Path, folder: Path, device: str, out: Path, tiny: bool) -> int:
    """The harness: batch 1 and 32 (2 and 4 when tiny) x 128 tokens, fp32 and fp16, against transformers torch."""
    argv = [sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--task", "text-classification",
            "--dtype", "fp32,fp16", "--device", device, "--compare", "torch", "--checkpoint", str(checkpoint),
            "--batch-size", "2,4" if tiny else "1,32", "--seq-len", "16" if tiny else "128",
            "--runs", "2" if tiny else "20", "--warmup", "1" if tiny else "3", "--cold-runs", "1" if tiny else "2",
            "--time-limit", "60", "--json", str(out / "gpu_bench.json"), "--markdown", str(out / "gpu_bench.md"), "--quiet"]
    return subprocess.run(argv, timeout=420).returncode


def main() -> int:
    """Build, export, check parity, bench; write check.json (and the bench's files) to --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/onnxpipe-gpu-check"))
    parser.add_argument("--tokenizer", type=Path, required=True, help="a bert-base-uncased tokenizer.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small model (for the test suite, on the CPU)")
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"device": args.device, "tiny": args.tiny}
    import onnxruntime
    import torch

    record["versions"] = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    record["ort_providers"] = onnxruntime.get_available_providers()
    if args.device.startswith("cuda"):
        record["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    checkpoint = build_checkpoint(args.work / "checkpoint", args.tokenizer, args.tiny)
    folder = args.work / "onnx"
    record["export"] = export_onnx(checkpoint, folder)
    record["parity"] = parity(checkpoint, folder, args.device)
    (args.out / "check.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1), flush=True)
    status = 0 if all(p["ok"] for p in record["parity"].values()) else 1
    if not args.no_bench:
        status |= bench(checkpoint, folder, args.device, args.out, args.tiny)
    return status


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
