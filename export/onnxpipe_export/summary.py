"""The closing summary of an export: files, sizes, size ratio, parity and generation quality figures, warnings."""

from __future__ import annotations

from typing import Any, Sequence

MB = 1024 * 1024


def _figures(validation: Any) -> str:
    if not validation:
        return "not validated"
    parts = [f"max_abs_diff {validation['max_abs_diff']:.2e}"]
    if validation.get("tolerance") is not None:
        parts[0] += f" (tolerance {validation['tolerance']:.1e})"
    if "top1_agreement" in validation:
        parts.append(f"top-1 agreement {validation['top1_agreement']:.0%}")
    if "order_agreement" in validation:
        parts.append(f"score order agreement {validation['order_agreement']:.0%}")
    if "min_cosine" in validation:
        parts.append(f"cosine min {validation['min_cosine']:.4f} mean {validation['mean_cosine']:.4f}")
    return ", ".join(parts)


def _quality(figures: Any) -> str:
    """A generation variant's teacher-forced figures (generative_quality.py), in words."""
    return (
        f"quality: top-1 agreement {figures['top1_agreement']:.1%}, NLL {figures['nll']:.3f} vs torch "
        f"{figures['nll_torch']:.3f} ({figures['nll_increase']:+.2%}) on {figures['tokens']} tokens"
    )


def _speech(figures: Any) -> str:
    """A Whisper variant's word error rates on the export's speech clips (whisper_speech.py), in words."""
    return (
        f"speech WER: {figures['wer_vs_text']:.1%} vs reference texts, {figures['wer_vs_torch']:.1%} vs torch, "
        f"{figures['wer_vs_fp32']:.1%} vs fp32 transcripts"
    )


def _total_size(entry: dict[str, Any]) -> int:
    return entry["size"] + sum(d["size"] for d in entry.get("external_data", {}).values())


def format_summary(output: str, manifest: dict[str, Any], warnings: Sequence[str], seconds: float) -> str:
    """A few lines for the terminal describing what an export wrote and how well it matches torch."""
    files = manifest["files"]
    source = manifest["source"]
    lines = [f"Exported {source['model']} ({manifest['task']}, {source['model_type']}) to {output} in {seconds:.1f} s"]
    width = max(len(name) for name in files)
    for name, entry in files.items():
        size = _total_size(entry) / MB
        lines.append(f"  {name:<{width}}  {entry['dtype']:<4}  {size:8.2f} MB  {_figures(entry['validation'])}")
        if entry.get("quality"):
            lines.append(f"  {'':<{width}}  {'':<4}  {'':>11}  {_quality(entry['quality'])}")
        if (entry.get("validation") or {}).get("speech") and entry.get("component") == "decoder":
            lines.append(f"  {'':<{width}}  {'':<4}  {'':>11}  {_speech(entry['validation']['speech'])}")
    sizes = {e["dtype"]: _total_size(e) for e in files.values()}
    if "int8" in sizes and sizes.get("fp32"):
        lines.append(f"  int8 / fp32 size: {sizes['int8'] / sizes['fp32']:.2f}")
    optimization = manifest["optimization"]
    if optimization["fusion"]:
        fused = ", ".join(f"{op} {n}" for op, n in optimization["fused_operators"].items())
        lines.append(f"  fusion ({optimization['ort_model_type']}): {fused}")
    else:
        lines.append(f"  fusion: none, {optimization['reason']}")
    validation = manifest["validation"]
    if validation:
        lines.append(f"  validated on: {validation['inputs']}")
        if validation.get("measured_on"):
            cpu = validation["measured_on"]
            lines.append(
                f"  measured on CPU class {cpu['class']} ({' '.join(cpu['flags']) or 'no int8 flags'}); "
                f"re-check on the deployment machine: onnxpipe check {output}"
            )
    quality = manifest.get("quality")
    if quality:
        cpu = quality["measured_on"]
        lines.append(f"  quality teacher-forced on: {quality['inputs']} (CPU class {cpu['class']}; onnxpipe check {output})")
    lines.extend(f"  WARNING: {w}" for w in warnings)
    return "\n".join(lines)
