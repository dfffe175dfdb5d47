"""Weight-only quantization recipes: which onnxruntime algorithm, zero points, block size and compute level a
4-bit (`--dtype q4`) or 8-bit (generation `--dtype int8`) MatMulNBits file is written with.

The user picks the 4-bit recipe with `--q4-method` (Q4_METHODS), the block size of both with `--block-size`,
and GPTQ's calibration text with `--calibration FILE|builtin`. Every recipe stores its weights as MatMulNBits
blocks along the input axis and computes with `accuracy_level` 4 (activations quantized to int8 per block at
run time), so all recipes run at about the same speed; they differ in how the 4-bit values are chosen, and in
which MatMuls stay at 8 bits:

- rtn-mixed (the default): rtn below, except the MatMuls that cost 4-bit files most quality, kept at 8 bits
  (weight_only_mixed.py): the LM head (and with it a tied token embedding), every attention projection (query,
  key, value, output), every MLP's down projection, and the first and last layers; the MLP's gate / up
  projections (most of a decoder's weights) stay 4-bit. On SmolLM2-135M (benchmarks/results/quantized_quality.md)
  it moved top-1 agreement with torch fp32 from 0.658 (all 4-bit) to 0.872 and the NLL change from +5.9% to
  -0.2%, for 131 MB against 89 (an 8-bit file: 266);
- rtn: symmetric round-to-nearest (onnxruntime's DefaultWeightOnlyQuantConfig, no zero points);
- rtn-asym: round-to-nearest with a 4-bit zero point per block (min/max range);
- kquant: llama.cpp's k-quant search (KQuantWeightOnlyQuantConfig): per block, the scale and minimum that
  minimize a magnitude-weighted squared error; always with zero points;
- hqq: half-quadratic quantization (HQQWeightOnlyQuantConfig, needs torch): fp32 zero points fitted by a
  proximal solver; always asymmetric;
- gptq: GPTQ (GPTQWeightOnlyQuantConfig) with zero points: each layer's rounding error is compensated on the
  weights not yet quantized, from the Hessian of its inputs on a calibration text (decoder-only models).

Options a recipe does not use are refused, never ignored: a calibration text for anything but gptq, a
q4 method or calibration without a q4 file, any of these flags for tasks that write no weight-only files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import ExportOptionError

ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations quantized per block (VNNI / AMX / NEON dot)
BLOCK_SIZES: tuple[int, ...] = (16, 32, 64, 128)
DEFAULT_BLOCK_SIZE = 32
#: the MatMuls a "-mixed" q4 method keeps at 8 bits (weight_only_mixed.ROLES)
MIXED_ROLES: tuple[str, ...] = ("lm_head", "attention", "down_proj", "edge_layers")
#: --q4-method -> (onnxruntime algorithm, symmetric, roles kept at 8 bits)
Q4_METHODS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "rtn-mixed": ("rtn", True, MIXED_ROLES),
    "rtn": ("rtn", True, ()),
    "rtn-asym": ("rtn", False, ()),
    "kquant": ("kquant", False, ()),
    "hqq": ("hqq", False, ()),
    "gptq": ("gptq", False, ()),
}
DEFAULT_Q4_METHOD = "rtn-mixed"
CALIBRATED = tuple(name for name, (algorithm, _, _) in Q4_METHODS.items() if algorithm == "gptq")
ALGORITHMS = {
    "rtn": "round-to-nearest (DefaultWeightOnlyQuantConfig)",
    "kquant": "k-quant scale/min search (KQuantWeightOnlyQuantConfig)",
    "hqq": "half-quadratic quantization (HQQWeightOnlyQuantConfig)",
    "gptq": "GPTQ (GPTQWeightOnlyQuantConfig)",
}
BUILTIN_CALIBRATION = "builtin"


@dataclass(frozen=True)
class WeightOnlyRecipe:
    """How one weight-only file is quantized; `settings()` is its manifest entry."""

    bits: int = 4
    method: str = DEFAULT_Q4_METHOD  # a key of Q4_METHODS (8-bit: rtn or rtn-asym)
    block_size: int = DEFAULT_BLOCK_SIZE
    accuracy_level: int = ACCURACY_LEVEL
    quantize_embedding: bool = True  # the token embedding as GatherBlockQuantized (weight_only_embedding.py)
    calibration: Optional[str] = None  # gptq: a text file, or BUILTIN_CALIBRATION
    keep_8bit: Optional[tuple[str, ...]] = None  # q4: roles kept at 8 bits (weight_only_mixed.ROLES); None: the method's
    keep_fp32: tuple[str, ...] = ()  # roles left as fp32 MatMuls (weight_only_mixed.ROLES; benchmark recipes only)

    @property
    def algorithm(self) -> str:
        return Q4_METHODS[self.method][0]

    @property
    def symmetric(self) -> bool:
        return Q4_METHODS[self.method][1]

    @property
    def eight_bit_roles(self) -> tuple[str, ...]:
        """What a 4-bit file keeps at 8 bits (nothing for 8-bit files)."""
        if self.bits != 4:
            return ()
        return Q4_METHODS[self.method][2] if self.keep_8bit is None else self.keep_8bit

    def settings(self) -> dict[str, Any]:
        """The manifest's `quantization` entry for this recipe (before per-file counts)."""
        entry: dict[str, Any] = {
            "method": "MatMulNBits", "algorithm": self.method, "algorithm_detail": ALGORITHMS[self.algorithm],
            "bits": self.bits, "block_size": self.block_size, "symmetric": self.symmetric,
            "zero_points": "none" if self.symmetric else ("fp32" if self.algorithm == "hqq" else f"uint{self.bits}"),
            "op_types": ["MatMul", "Gather"] if self.quantize_embedding else ["MatMul"],
            "accuracy_level": self.accuracy_level,
            "activations": "int8 per block, at run time" if self.accuracy_level == 4 else "fp32",
        }
        if self.eight_bit_roles:
            entry["eight_bit"] = list(self.eight_bit_roles)
        if self.keep_fp32:
            entry["fp32"] = list(self.keep_fp32)
        if self.algorithm in CALIBRATED:
            entry["calibration"] = self.calibration or BUILTIN_CALIBRATION
        return entry


@dataclass(frozen=True)
class WeightOnlyOptions:
    """The user's weight-only flags, checked once: `--q4-method`, `--block-size`, `--calibration`."""

    q4_method: Optional[str] = None
    block_size: Optional[int] = None
    calibration: Optional[str] = None

    def recipe(self, bits: int) -> WeightOnlyRecipe:
        """The recipe of the `bits`-bit file (4: q4, 8: a generation task's int8)."""
        block = DEFAULT_BLOCK_SIZE if self.block_size is None else self.block_size
        if bits == 8:  # the quality file keeps the fp32 token table: an 8-bit one cost a tiny BART's greedy int8
            # agreement with fp32 27/70 -> 16/70 new tokens (tests/tasks/test_text2text_generation.py)
            return WeightOnlyRecipe(bits=8, method="rtn", block_size=block, quantize_embedding=False)
        method = self.q4_method or DEFAULT_Q4_METHOD
        calibration = self.calibration
        if method in CALIBRATED and calibration is None:
            calibration = BUILTIN_CALIBRATION
        return WeightOnlyRecipe(bits=4, method=method, block_size=block, calibration=calibration)


def weight_only_options(
    q4_method: Optional[str] = None, block_size: Optional[int] = None, calibration: Optional[str] = None,
    *, dtypes: tuple[str, ...] = ("q4",), encoder_decoder: bool = False,
) -> WeightOnlyOptions:
    """Check the weight-only flags against each other and the dtypes asked for; a clear error names the fix."""
    if q4_method is not None:
        q4_method = str(q4_method).strip().lower().replace("_", "-")
        if q4_method not in Q4_METHODS:
            raise ExportOptionError(
                f"Unknown q4 method {q4_method!r}; choose one of {', '.join(Q4_METHODS)} (--q4-method)."
            )
        if "q4" not in dtypes:
            raise ExportOptionError(
                f"--q4-method {q4_method} picks how the q4 file is quantized, but no q4 file is asked for; "
                "add q4 to --dtype or drop --q4-method."
            )
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size not in BLOCK_SIZES:
            raise ExportOptionError(
                f"Block size {block_size!r} is not supported; choose one of {', '.join(map(str, BLOCK_SIZES))} "
                "(--block-size; MatMulNBits wants a power of two of at least 16)."
            )
        if not {"q4", "int8"} & set(dtypes):
            raise ExportOptionError(
                "--block-size sets the blocks of the weight-only q4 and int8 files, but neither is asked for; "
                "add q4 or int8 to --dtype or drop --block-size."
            )
    method = q4_method or DEFAULT_Q4_METHOD
    if calibration is not None:
        if method not in CALIBRATED:
            raise ExportOptionError(
                f"--calibration is read by the calibrated q4 methods ({', '.join(CALIBRATED)}) only; q4 method "
                f"{method!r} uses no calibration data. Pass --q4-method gptq or drop --calibration."
            )
        if "q4" not in dtypes:
            raise ExportOptionError("--calibration calibrates the q4 file, but no q4 file is asked for; add q4 to --dtype.")
        if calibration != BUILTIN_CALIBRATION and not Path(calibration).is_file():
            raise ExportOptionError(
                f"Calibration file {calibration!r} does not exist; pass a UTF-8 text file or {BUILTIN_CALIBRATION!r}."
            )
    if method in CALIBRATED and "q4" in dtypes and encoder_decoder:
        raise ExportOptionError(
            f"q4 method {method!r} calibrates decoder-only models; for encoder-decoder models choose one of "
            f"{', '.join(m for m in Q4_METHODS if m not in CALIBRATED)}."
        )
    return WeightOnlyOptions(q4_method, block_size, calibration)


def refuse_for_task(task: str, q4_method: Any = None, block_size: Any = None, calibration: Any = None) -> None:
    """Tasks whose files the weight-only recipes do not write (encoder tasks, speech) refuse the flags."""
    if any(value is not None for value in (q4_method, block_size, calibration)):
        raise ExportOptionError(
            f"--q4-method, --block-size and --calibration set the weight-only q4/int8 files of generation tasks; "
            f"{task} does not take them (its int8 has its own recipe). Drop these flags."
        )

