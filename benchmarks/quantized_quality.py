"""Weight-only recipes on real weights: teacher-forced quality against torch fp32, file size and greedy speed.

    .venv/bin/python benchmarks/quantized_quality.py [--model smollm2|whisper|both] [--recipes NAME,...] [--out FILE]

The checkpoint is exported once in fp32 (onnxpipe_export.export); each recipe then quantizes that fp32 graph
with the export's own quantize_weight_only (what `--dtype q4 --q4-method M --block-size N` writes), and is
measured with the export's teacher-forced quality (generative_quality: mean next-token NLL and top-1 agreement
against torch fp32 on a fixed English text and a chat) and, for SmolLM2, with the runtime's text-generation
pipeline: greedy, batch 1, 64 new tokens (min_new_tokens=64), tokens/s as the median of 3 runs.
Whisper base: the decoder only (decoder_model_merged from the halves), teacher-forced on its quality texts.

CAVEAT (SmolLM2): the weights come from GGUF Q4_1 (asymmetric, blocks of 32), so an asymmetric block-32
quantizer aligned with GGUF's blocks reproduces them almost exactly and flatters 4-bit; judge recipes on the
symmetric and other-block rows too, and on Whisper base, whose weights never went through a 4-bit format.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real_weights import DEFAULT_WORK, smollm2_folder, whisper_base_folder  # noqa: E402
from onnxpipe.cpu import this_cpu  # noqa: E402
from onnxpipe_export import export  # noqa: E402
from onnxpipe_export import generative_quality as quality  # noqa: E402
from onnxpipe_export import generative_validate as check  # noqa: E402
from onnxpipe_export.generative_variants import merged_decoder_variant  # noqa: E402
from onnxpipe_export.weight_only import quantize_weight_only  # noqa: E402
from onnxpipe_export.weight_only_calibration import calibration_windows  # noqa: E402
from onnxpipe_export.weight_only_recipes import WeightOnlyOptions, WeightOnlyRecipe  # noqa: E402

# rtn-mixed's 8-bit roles until 2026-12-08 (the value projections, not every attention projection)
MIXED_V = ("lm_head", "v_proj", "down_proj", "edge_layers")
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
NEW_TOKENS = 64


def _recipe(bits: int, method: str, block: int = 32, **extra: Any) -> WeightOnlyRecipe:
    return WeightOnlyRecipe(bits=bits, method=method, block_size=block, **extra)


#: name -> recipe. "today" is the recipe before this benchmark: symmetric RTN, block 32, fp32 embedding.
RECIPES: dict[str, WeightOnlyRecipe] = {
    "q4 today (rtn b32 fp32-embedding)": _recipe(4, "rtn", quantize_embedding=False),
    "q4 rtn b32": _recipe(4, "rtn"),
    "q4 rtn b16": _recipe(4, "rtn", 16),
    "q4 rtn b64": _recipe(4, "rtn", 64),
    "q4 rtn b128": _recipe(4, "rtn", 128),
    "q4 rtn-asym b32": _recipe(4, "rtn-asym"),
    "q4 rtn-asym b16": _recipe(4, "rtn-asym", 16),
    "q4 rtn-asym b64": _recipe(4, "rtn-asym", 64),
    "q4 kquant b32": _recipe(4, "kquant"),
    "q4 kquant b16": _recipe(4, "kquant", 16),
    "q4 kquant b64": _recipe(4, "kquant", 64),
    "q4 rtn-mixed b32 (default)": _recipe(4, "rtn-mixed"),
    "q4 rtn b32 level 0 (fp32 compute)": _recipe(4, "rtn", accuracy_level=0),
    "q4 rtn b32 head8": _recipe(4, "rtn", keep_8bit=("lm_head",)),
    "q4 rtn b32 head8 down8": _recipe(4, "rtn", keep_8bit=("lm_head", "down_proj")),
    "q4 rtn b32 head8 edge8": _recipe(4, "rtn", keep_8bit=("lm_head", "edge_layers")),
    "q4 rtn b32 head8 down8 edge8": _recipe(4, "rtn", keep_8bit=("lm_head", "down_proj", "edge_layers")),
    "q4 rtn b32 edge8": _recipe(4, "rtn", keep_8bit=("edge_layers",)),
    "q4 rtn b32 head8 down8 edge8 v8": _recipe(4, "rtn", keep_8bit=("lm_head", "down_proj", "edge_layers", "v_proj")),
    "q4 rtn-asym b32 head8 down8 edge8": _recipe(4, "rtn-asym", keep_8bit=("lm_head", "down_proj", "edge_layers")),
    "q4 rtn b16 head8 down8 edge8": _recipe(4, "rtn", 16, keep_8bit=("lm_head", "down_proj", "edge_layers")),
    "q4 hqq b32 head8 down8 edge8": _recipe(4, "hqq", keep_8bit=("lm_head", "down_proj", "edge_layers")),
    "q4 gptq b32 head8 down8 edge8": _recipe(4, "gptq", calibration="builtin", keep_8bit=("lm_head", "down_proj", "edge_layers")),
    "q4 rtn b32 head8 level 0": _recipe(4, "rtn", accuracy_level=0, keep_8bit=("lm_head",)),
    "q4 rtn b16 head8": _recipe(4, "rtn", 16, keep_8bit=("lm_head",)),
    "q4 rtn-asym b16 head8": _recipe(4, "rtn-asym", 16, keep_8bit=("lm_head",)),
    "q4 hqq b32 head8": _recipe(4, "hqq", keep_8bit=("lm_head",)),
    "q4 gptq b32 head8": _recipe(4, "gptq", calibration="builtin", keep_8bit=("lm_head",)),
    "q4 hqq b32": _recipe(4, "hqq"),
    "q4 hqq b64": _recipe(4, "hqq", 64),
    "q4 gptq b32": _recipe(4, "gptq", calibration="builtin"),
    "q4 gptq b64": _recipe(4, "gptq", 64, calibration="builtin"),
    "int8 today (rtn b32 fp32-embedding)": _recipe(8, "rtn", quantize_embedding=False),
    "int8 rtn b32": _recipe(8, "rtn"),
    "int8 rtn-asym b32": _recipe(8, "rtn-asym"),
    "int8 rtn b32 level 0 (fp32 compute)": _recipe(8, "rtn", accuracy_level=0),
    "int8 rtn b128": _recipe(8, "rtn", 128),
    "int8 rtn b16": _recipe(8, "rtn", 16, quantize_embedding=False),
    "int8 rtn b32 fp32-embedding level 0": _recipe(8, "rtn", quantize_embedding=False, accuracy_level=0),
    "int8 fp32-head": _recipe(8, "rtn", quantize_embedding=False, keep_fp32=("lm_head",)),
    "int8 fp32-down": _recipe(8, "rtn", quantize_embedding=False, keep_fp32=("down_proj",)),
    "int8 fp32-edge": _recipe(8, "rtn", quantize_embedding=False, keep_fp32=("edge_layers",)),
    "int8 fp32-v": _recipe(8, "rtn", quantize_embedding=False, keep_fp32=("v_proj",)),
    "int8 fp32-edge-v": _recipe(8, "rtn", quantize_embedding=False, keep_fp32=("edge_layers", "v_proj")),
    "q4 rtn-mixed-v b32 (default until 2026-12-08)": _recipe(4, "rtn", keep_8bit=MIXED_V),
    "q4 rtn-mixed-v b16": _recipe(4, "rtn", 16, keep_8bit=MIXED_V),
    "q4 rtn-asym b16 mixed-v": _recipe(4, "rtn-asym", 16, keep_8bit=MIXED_V),
    "q4 kquant b16 mixed-v": _recipe(4, "kquant", 16, keep_8bit=MIXED_V),
    "q4 hqq b64 mixed-v": _recipe(4, "hqq", 64, keep_8bit=MIXED_V),
    "q4 rtn-mixed b16": _recipe(4, "rtn-mixed", 16),
}


def _figures(measured: dict[str, Any]) -> dict[str, Any]:
    """The pooled top-1 and NLL increase over the quality texts."""
    parts = {k: v["top1_agreement"] for k, v in measured.items() if k in ("text", "chat")}
    return {"top1": measured["top1_agreement"], "nll_increase": measured["nll_increase"], **parts}


def _tokens_per_second(folder: Path, dtype: str) -> float:
    import onnxpipe

    pipe = onnxpipe.pipeline("text-generation", model=str(folder), dtype=dtype)
    pipe(PROMPT, max_new_tokens=4, do_sample=False)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        pipe(PROMPT, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        times.append(time.perf_counter() - start)
    return NEW_TOKENS / statistics.median(times)


def smollm2(names: list[str], work: Path, speed: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """Quality, size and speed of each recipe on SmolLM2-135M-Instruct (fp32 exported once)."""
    source = smollm2_folder()
    config = json.loads((source / "config.json").read_text())
    folder = work / "smollm2-fp32"
    if not (folder / "model.onnx").is_file():
        export(source, "text-generation", folder, ["fp32"], quiet=True, validate=False)
    loaded = check.load_torch(source, config)
    reference = quality.torch_quality(*loaded, config)
    del loaded
    fp32 = folder / "model.onnx"
    rows = [{"recipe": "fp32", "size_mb": fp32.stat().st_size / 1e6, **_figures(quality.measure(fp32, None, reference, config)),
             "tokens_per_s": _tokens_per_second(folder, "fp32") if speed is None or "fp32" in speed else None}]
    print(rows[-1], flush=True)
    windows = calibration_windows(source, "builtin")
    for name in names:
        recipe = RECIPES[name]
        suffix = "q4" if recipe.bits == 4 else "quantized"
        target = folder / f"model_{suffix}.onnx"
        start = time.perf_counter()
        entry = quantize_weight_only(fp32, target, recipe, windows if recipe.algorithm == "gptq" else None)
        seconds = time.perf_counter() - start
        row = {"recipe": name, "size_mb": target.stat().st_size / 1e6, "quantize_s": seconds,
               "embedding": entry["embedding"], **_figures(quality.measure(target, None, reference, config)),
               "tokens_per_s": _tokens_per_second(folder, "q4" if recipe.bits == 4 else "int8")
               if speed is None or name in speed else None}
        rows.append(row)
        print(row, flush=True)
    return rows


def whisper(names: list[str], work: Path) -> list[dict[str, Any]]:
    """Teacher-forced quality of each recipe on Whisper base's decoder (the encoder stays fp32)."""
    source = whisper_base_folder()
    config = json.loads((source / "config.json").read_text())
    folder = work / "whisper-fp32"
    if not (folder / "decoder_model_merged.onnx").is_file():
        export(source, "automatic-speech-recognition", folder, ["fp32"], quiet=True, validate=False)
    optimum = next(p for p in [folder / "optimum", *folder.glob("**/")] if (p / "decoder_with_past_model.onnx").is_file()) \
        if any(folder.glob("**/decoder_with_past_model.onnx")) else None
    loaded = check.load_torch(source, config)
    reference = quality.torch_quality(*loaded, config)
    del loaded
    encoder, decoder = folder / "encoder_model.onnx", folder / "decoder_model_merged.onnx"
    rows = [{"recipe": "fp32", **_figures(quality.measure(decoder, encoder, reference, config))}]
    print(rows[-1], flush=True)
    if optimum is None:
        print("whisper: optimum's unmerged decoders are not in the export folder; recipes skipped", flush=True)
        return rows
    for name in names:
        recipe = RECIPES[name]
        target = work / "whisper-decoder-q.onnx"
        options = _FixedOptions(recipe)
        merged_decoder_variant("q4" if recipe.bits == 4 else "int8", optimum, target, options)  # type: ignore[arg-type]
        row = {"recipe": name, **_figures(quality.measure(target, encoder, reference, config))}
        rows.append(row)
        print(row, flush=True)
    return rows


class _FixedOptions(WeightOnlyOptions):
    """WeightOnlyOptions that hand out one fixed recipe (the benchmark's rows include non-CLI recipes)."""

    def __init__(self, recipe: WeightOnlyRecipe):
        super().__init__()
        object.__setattr__(self, "fixed", recipe)

    def recipe(self, bits: int) -> WeightOnlyRecipe:
        return replace(self.fixed, bits=bits)  # type: ignore[attr-defined]


def _table(rows: list[dict[str, Any]], speed: bool) -> str:
    head = "| recipe | top-1 | text / chat | NLL change | size MB | tokens/s | embedding |" if speed else \
        "| recipe | top-1 | text / chat | NLL change |"
    lines = [head, "|" + "---|" * head.count("|")[:-1] if False else "|" + "|".join("---" for _ in head.split("|")[1:-1]) + "|"]
    for r in rows:
        cells = [r["recipe"], f"{r['top1']:.3f}", f"{r.get('text', 0):.3f} / {r.get('chat', 0):.3f}", f"{r['nll_increase']:+.2%}"]
        if speed:
            tps = r.get("tokens_per_s")
            cells += [f"{r['size_mb']:.0f}", "-" if tps is None else f"{tps:.1f}", r.get("embedding", "fp32")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "whisper", "both"), default="smollm2")
    parser.add_argument("--recipes", help="comma-separated recipe names (default: all)")
    parser.add_argument("--speed", help="comma-separated recipes (and fp32) whose tokens/s to measure (default: all)")
    parser.add_argument("--whisper-recipes", help="comma-separated recipe names for Whisper (default: a few)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK / "quantized_quality")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    names = args.recipes.split(",") if args.recipes else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"date": date.today().isoformat(), "cpu_class": this_cpu().cpu_class, "machine": platform.processor()}
    if args.model in ("smollm2", "both"):
        result["smollm2"] = smollm2(names, args.work, args.speed.split(",") if args.speed is not None else None)
        print(_table(result["smollm2"], speed=True))
    if args.model in ("whisper", "both"):
        wnames = args.whisper_recipes.split(",") if args.whisper_recipes else ["q4 rtn b32", "q4 rtn-asym b32", "q4 kquant b32", "q4 hqq b32", "int8 rtn b32"]
        result["whisper"] = whisper(wnames, args.work)
        print(_table(result["whisper"], speed=False))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    shutil.rmtree(args.work / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
