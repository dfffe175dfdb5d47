"""Whisper base on real weights (issue 16): word error rate, real-time factor, teacher-forced agreement and word
timestamps of the fp32 / int8 / q4 exports, against torch fp32 and the spoken texts.

    python -m benchmarks.whisper_quality [--clips 28] [--work out/whisper_quality]

Real openai/whisper-base (benchmarks/real_weights/whisper_base.py) and the 28 espeak-ng sentences
(benchmarks/real_weights/speech.py) are built by `python -m benchmarks.real_weights`. Every engine decodes greedily
with English transcription forced and at most MAX_NEW_TOKENS new tokens; WER is corpus WER after
onnxpipe.text.wer.normalize (lower case, no punctuation, numbers not spelled out). Writes
benchmarks/results/whisper_quality.md (and .json) with the date and CPU class.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.real_weights import duration, load_wav, speech_clips, whisper_base_folder
from onnxpipe import pipeline
from onnxpipe.cpu import this_cpu
from onnxpipe.session import session_options
from onnxpipe.text.wer import wer

TASK = "automatic-speech-recognition"
DTYPES = ("fp32", "int8", "q4")
MAX_NEW_TOKENS = 160
OPTIONS = {"language": "en", "task": "transcribe", "num_beams": 1, "max_new_tokens": MAX_NEW_TOKENS}
WORD_CLIPS = 8  # clips of the word-timestamp parity (transformers' DTW is a slow Python loop)
RESULTS = Path(__file__).resolve().parent / "results"


def exported(source: Path, out: Path) -> Path:
    """The onnxpipe export (fp32, int8, q4) of `source` in `out`, written once."""
    from onnxpipe_export import export

    if not (out / "onnxpipe.json").is_file():
        export(str(source), task=TASK, output=str(out), dtype=list(DTYPES), quiet=False)
    return out


def q4_encoder_folder(folder: Path, work: Path) -> Path:
    """A copy of the export (no manifest) whose q4 encoder is 4-bit too: the alternative the export does not pick."""
    from onnxpipe_export.generative_variants import write_generation_variant

    target = work / "q4-encoder-4bit"
    if not (target / "encoder_model_q4.onnx").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("onnxpipe.json", "*_quantized.onnx", "*_fp16.onnx"))
        (target / "encoder_model_q4.onnx").unlink()
        write_generation_variant("q4", folder / "encoder_model.onnx", target / "encoder_model_q4.onnx")
    return target


def timed(run, audios: Sequence[np.ndarray]) -> tuple[list[str], float]:
    texts, started = [], time.perf_counter()
    for audio in audios:
        texts.append(run(audio.copy())["text"])
    return texts, time.perf_counter() - started


def torch_run(source: Path, audios: Sequence[np.ndarray]) -> tuple[list[str], float, list[list[int]]]:
    """transformers' pipeline transcripts, seconds, and the greedy token ids (prompt included) of each clip."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    asr = transformers.pipeline(TASK, model=str(source), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        asr(audios[0].copy(), generate_kwargs=dict(OPTIONS))  # warm-up
        texts, seconds = timed(lambda a: asr(a, generate_kwargs=dict(OPTIONS)), audios)
        config = asr.model.generation_config  # generate() returns the new tokens without prompt and EOS
        prompt = [config.decoder_start_token_id, config.lang_to_id["<|en|>"], config.task_to_id["transcribe"],
                  config.no_timestamps_token_id]
        tokens = []
        for audio in audios:
            features = asr.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")["input_features"]
            with torch.no_grad():
                ids = asr.model.generate(features, **OPTIONS)[0].tolist()
            tokens.append(prompt + [i for i in ids if i not in prompt])
    return texts, seconds, tokens


def onnx_run(folder: Path, dtype: str, audios: Sequence[np.ndarray]) -> tuple[list[str], float]:
    asr = pipeline(TASK, model=str(folder), dtype=dtype)
    asr(audios[0].copy(), **OPTIONS)  # warm-up (session start, huge pages)
    return timed(lambda a: asr(a, **OPTIONS), audios)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def teacher_forced(source: Path, folder: Path, audios: Sequence[np.ndarray], tokens: Sequence[list[int]],
                   pairs: dict[str, tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Top-1 next-token agreement with torch fp32 and mean NLL, teacher-forced on torch's greedy transcripts (from
    the last prompt token on), for each (encoder file, decoder file) pair."""
    import torch
    import transformers

    extractor = transformers.AutoFeatureExtractor.from_pretrained(str(source))
    model = transformers.WhisperForConditionalGeneration.from_pretrained(str(source)).eval()
    prompt = 4  # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>
    references = []
    for audio, ids in zip(audios, tokens):
        features = extractor(audio, sampling_rate=16000, return_tensors="np")["input_features"]
        with torch.no_grad():
            logits = model(input_features=torch.from_numpy(features), decoder_input_ids=torch.tensor([ids[:-1]])).logits[0].numpy()
        references.append((features, np.asarray(ids), logits))
    results = {}
    for name, (encoder_file, decoder_file) in pairs.items():
        encoder, decoder = _session(folder / encoder_file), _session(folder / decoder_file)
        empty = {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32) for i in decoder.get_inputs()
                 if i.name.startswith("past_key_values.")}
        agree = total = 0
        nll, nll_torch = [], []
        for features, ids, want in references:
            hidden = encoder.run(None, {"input_features": features})[0]
            feeds = {"input_ids": ids[None, :-1], "encoder_hidden_states": hidden, "use_cache_branch": np.array([False]), **empty}
            got = decoder.run(["logits"], feeds)[0][0]
            rows, targets = slice(prompt - 1, None), ids[prompt:]
            agree += int((got[rows].argmax(-1) == want[rows].argmax(-1)).sum())
            total += len(targets)
            nll.extend(-_log_softmax(got[rows])[np.arange(len(targets)), targets])
            nll_torch.extend(-_log_softmax(want[rows])[np.arange(len(targets)), targets])
        results[name] = {"top1_agreement": agree / total, "nll": float(np.mean(nll)), "nll_torch": float(np.mean(nll_torch)),
                         "tokens": total}
    return results


def word_parity(source: Path, folder: Path, audios: Sequence[np.ndarray]) -> dict[str, Any]:
    """onnxpipe fp32 against transformers' pipeline with return_timestamps="word" (greedy, English)."""
    import transformers

    reference = transformers.pipeline(TASK, model=str(source), device="cpu")
    ours = pipeline(TASK, model=str(folder), dtype="fp32")
    options = {**OPTIONS, "return_timestamps": "word"}
    same_words = clips_same = 0
    diffs: list[float] = []
    ours_s = theirs_s = 0.0
    for audio in audios:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = reference(audio.copy(), return_timestamps="word", generate_kwargs=dict(OPTIONS))
        theirs_s += time.perf_counter() - started
        started = time.perf_counter()
        got = ours(audio.copy(), **options)
        ours_s += time.perf_counter() - started
        words_got, words_want = [c["text"] for c in got["chunks"]], [c["text"] for c in want["chunks"]]
        if words_got == words_want:
            clips_same += 1
            same_words += len(words_got)
            diffs.extend(abs(a - b) for g, w in zip(got["chunks"], want["chunks"]) for a, b in zip(g["timestamp"], w["timestamp"]))
    within = float(np.mean(np.asarray(diffs) <= 0.02 + 1e-6)) if diffs else None
    return {"clips": len(audios), "clips_same_words": clips_same, "words_compared": same_words,
            "max_abs_diff_s": max(diffs) if diffs else None, "share_within_one_frame": within,
            "onnxpipe_seconds": ours_s, "transformers_seconds": theirs_s}


def attention_cost(folder: Path, work: Path, audios: Sequence[np.ndarray]) -> dict[str, Any]:
    """What the cross-attention outputs cost: a cached decoding step of the fp32 decoder with the outputs in the
    graph (not requested) against a copy without them, and a pipeline call with segment vs word timestamps."""
    import onnx

    stripped = work / "decoder_no_attentions.onnx"
    if not stripped.is_file():
        model = onnx.load(str(folder / "decoder_model_merged.onnx"))
        node = model.graph.node[0]
        for graph in [model.graph, *(a.g for a in node.attribute if a.name.endswith("branch"))]:
            kept = [o for o in graph.output if not o.name.startswith("cross_attentions.")]
            del graph.output[:]
            graph.output.extend(kept)
        names = [o for o in node.output if not o.startswith("cross_attentions.")]
        del node.output[:]
        node.output.extend(names)
        onnx.save(model, str(stripped))
    hidden = _session(folder / "encoder_model.onnx").run(None, {"input_features": np.zeros((1, 80, 3000), np.float32)})[0]
    step_ms = {}
    for name, path in (("with outputs", folder / "decoder_model_merged.onnx"), ("without outputs", stripped)):
        session = _session(path)
        wanted = [o.name for o in session.get_outputs() if not o.name.startswith("cross_attentions.")]
        empty = {i.name: np.zeros((1, 8, 0, 64), np.float32) for i in session.get_inputs() if i.name.startswith("past_key_values.")}
        first = dict(zip(wanted, session.run(wanted, {"input_ids": np.array([[50258, 50259, 50359, 50363]]),
                                                        "encoder_hidden_states": hidden, "use_cache_branch": np.array([False]), **empty})))
        past = {"past_key_values." + k[len("present."):]: v for k, v in first.items() if k.startswith("present.")}
        times = []
        for _ in range(5):
            state = dict(past)
            started = time.perf_counter()
            for _ in range(32):
                out = dict(zip(wanted, session.run(wanted, {"input_ids": np.array([[220]]), "encoder_hidden_states": hidden,
                                                            "use_cache_branch": np.array([True]), **state})))
                state.update({"past_key_values." + k[len("present."):]: v for k, v in out.items()
                              if k.startswith("present.") and ".decoder." in k})
            times.append((time.perf_counter() - started) / 32 * 1000)
        step_ms[name] = float(np.median(times))
    asr = pipeline(TASK, model=str(folder), dtype="fp32")
    call_s = {}
    for stamps in (True, "word"):
        asr(audios[0].copy(), **OPTIONS, return_timestamps=stamps)
        started = time.perf_counter()
        for audio in audios:
            asr(audio.copy(), **OPTIONS, return_timestamps=stamps)
        call_s["segments" if stamps is True else "words"] = time.perf_counter() - started
    return {"decoder_step_ms": step_ms, "pipeline_seconds": call_s, "clips": len(audios)}


def write_results(results: dict[str, Any]) -> Path:
    """benchmarks/results/whisper_quality.md (and .json)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "whisper_quality.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    r = results
    lines = [
        "# Whisper base: quality of the exported variants on real weights",
        "",
        f"Measured {r['date']} on CPU class **{r['cpu']['class']}** ({r['cpu']['model']}, "
        f"{' '.join(r['cpu']['flags'])}), {r['threads']} cores, by `python -m benchmarks.whisper_quality`.",
        f"{r['clips']} English sentences spoken by espeak-ng ({r['audio_seconds']:.0f} s of audio, "
        f"{r['shortest']:.1f} to {r['longest']:.1f} s); real openai/whisper-base weights (CTranslate2 fp16 values widened "
        "to fp32, not from a 4-bit format). Every engine greedy, English transcription forced, at most "
        f"{MAX_NEW_TOKENS} new tokens. WER: corpus word error rate after `onnxpipe.text.wer.normalize` (lower case, "
        "punctuation removed, numbers not spelled out: espeak reads \"twelve\" and Whisper may write \"12\", which "
        "counts as an error against the text for every engine alike).",
        "",
        "| engine | files | WER vs text | WER vs torch | added WER vs fp32 | identical to torch | RTF |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = r["engines"]["onnxpipe fp32"]["wer_vs_text"]
    for name, e in r["engines"].items():
        added = "" if name == "torch fp32" else f"{(e['wer_vs_text'] - base) * 100:+.1f} pts"
        lines.append(f"| {name} | {e['files']} | {e['wer_vs_text']:.1%} | {e['wer_vs_torch']:.1%} | {added} | "
                     f"{e['identical_to_torch']}/{r['clips']} | {e['rtf']:.3f} |")
    lines += ["", "RTF: seconds of processing per second of audio (one clip at a time, after a warm-up call); timings on "
              "a shared machine are noisy, compare engines within one run.", "",
              "## Teacher-forced next-token agreement with torch fp32", "",
              "On torch's greedy transcripts of the same clips (from the last prompt token on), features from "
              "transformers' extractor. `decoder only` runs the variant's decoder on the fp32 encoder's output.", "",
              "| files | top-1 agreement | NLL | NLL torch | tokens |", "|---|---:|---:|---:|---:|"]
    for name, t in r["teacher_forced"].items():
        lines.append(f"| {name} | {t['top1_agreement']:.3f} | {t['nll']:.4f} | {t['nll_torch']:.4f} | {t['tokens']} |")
    w = r["word_timestamps"]
    lines += ["", "## Word timestamps (fp32) against transformers' pipeline", "",
              f"`return_timestamps=\"word\"` on the first {w['clips']} clips: same words on {w['clips_same_words']} of "
              f"{w['clips']} clips ({w['words_compared']} words); largest start/end difference "
              f"{w['max_abs_diff_s']} s, share within one frame (0.02 s): {w['share_within_one_frame']}. "
              f"Time for those clips: onnxpipe {w['onnxpipe_seconds']:.1f} s, transformers {w['transformers_seconds']:.1f} s.",
              ""]
    c = r["attention_cost"]
    lines += ["## What the cross-attention outputs cost", "",
              f"fp32 merged decoder, one cached step (median of 5 x 32 steps): {c['decoder_step_ms']['with outputs']:.2f} ms "
              f"with the `cross_attentions.*` outputs in the graph (not requested), {c['decoder_step_ms']['without outputs']:.2f} ms "
              f"without them. Pipeline on {c['clips']} clips: segment timestamps {c['pipeline_seconds']['segments']:.1f} s, "
              f"word timestamps {c['pipeline_seconds']['words']:.1f} s (one extra decoder pass per window plus DTW).", ""]
    lines += ["## Which q4 components", "", r["q4_choice"], ""]
    path = RESULTS / "whisper_quality.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=28)
    parser.add_argument("--work", type=Path, default=Path("out/whisper_quality"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = whisper_base_folder()
    clips = speech_clips()[: args.clips]
    texts = [t for t, _ in clips]
    audios = [load_wav(p) for _, p in clips]
    seconds = [duration(p) for _, p in clips]
    audio_s = float(sum(seconds))
    folder = exported(source, args.work / "onnx")
    alternative = q4_encoder_folder(folder, args.work)

    engines: dict[str, dict[str, Any]] = {}
    torch_texts, torch_s, torch_tokens = torch_run(source, audios)
    runs = {"torch fp32": (torch_texts, torch_s, "transformers pipeline")}
    for dtype in DTYPES:
        runs[f"onnxpipe {dtype}"] = (*onnx_run(folder, dtype, audios),
                                     {"fp32": "fp32 + fp32", "int8": "8-bit + 8-bit", "q4": "8-bit encoder + 4-bit decoder"}[dtype])
    runs["onnxpipe q4, 4-bit encoder"] = (*onnx_run(alternative, "q4", audios), "4-bit encoder + 4-bit decoder")
    for name, (hyp, spent, files) in runs.items():
        engines[name] = {"files": files, "wer_vs_text": wer(texts, hyp), "wer_vs_torch": wer(torch_texts, hyp),
                         "identical_to_torch": sum(a.strip() == b.strip() for a, b in zip(hyp, torch_texts)),
                         "rtf": spent / audio_s, "transcripts": hyp}

    pairs = {
        "fp32": ("encoder_model.onnx", "decoder_model_merged.onnx"),
        "int8 (8-bit encoder + decoder)": ("encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx"),
        "q4 (8-bit encoder + 4-bit decoder)": ("encoder_model_q4.onnx", "decoder_model_merged_q4.onnx"),
        "q4 decoder only": ("encoder_model.onnx", "decoder_model_merged_q4.onnx"),
        "int8 decoder only": ("encoder_model.onnx", "decoder_model_merged_quantized.onnx"),
    }
    forced = teacher_forced(source, folder, audios, torch_tokens, pairs)
    forced.update({"q4 with 4-bit encoder": teacher_forced(
        source, alternative, audios, torch_tokens, {"x": ("encoder_model_q4.onnx", "decoder_model_merged_q4.onnx")})["x"]})
    q4, q4_4bit = engines["onnxpipe q4"], engines["onnxpipe q4, 4-bit encoder"]
    choice = (
        f"The export's q4 keeps an 8-bit encoder (`Q4_COMPONENTS` in whisper_export.py): with a 4-bit encoder too, WER vs "
        f"text {q4_4bit['wer_vs_text']:.1%} (vs torch {q4_4bit['wer_vs_torch']:.1%}, RTF {q4_4bit['rtf']:.3f}) against "
        f"{q4['wer_vs_text']:.1%} (vs torch {q4['wer_vs_torch']:.1%}, RTF {q4['rtf']:.3f}) with the 8-bit encoder."
    )
    cpu = this_cpu().manifest_entry()
    model_name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name")), "unknown")
    results = {
        "date": datetime.date.today().isoformat(), "cpu": {**cpu, "model": model_name}, "threads": os.cpu_count(),
        "clips": len(clips), "audio_seconds": audio_s, "shortest": min(seconds), "longest": max(seconds),
        "reference_texts": texts, "engines": engines, "teacher_forced": forced,
        "word_timestamps": word_parity(source, folder, audios[:WORD_CLIPS]),
        "attention_cost": attention_cost(folder, args.work, audios[:WORD_CLIPS]),
        "q4_choice": choice,
        "export_manifest_speech": {d: json.loads((folder / "onnxpipe.json").read_text())["files"][
            "decoder_model_merged" + {"fp32": "", "int8": "_quantized", "q4": "_q4"}[d] + ".onnx"]["validation"].get("speech")
            for d in DTYPES},
    }
    print(write_results(results).read_text())


if __name__ == "__main__":
    main()
