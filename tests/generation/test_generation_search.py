"""onnxpipe.generation.generate vs transformers' `model.generate`: identical token ids.

The numpy search loops drive a torch model through tests/torch_decoder.TorchDecoder, so this checks the
decoding algorithms alone (no ONNX). Tiny random checkpoints come from tests/generation_checkpoints.py
(GPT-2, Llama with grouped-query attention, T5, BART). Prompts are batched with left padding for
decoder-only models. To exercise EOS bookkeeping (padding of finished rows, finished beams, length
penalty, early stopping), a token the model generates often is made the EOS id for those cases.
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support.torch_decoder import TorchDecoder

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation import TextIteratorStreamer, generate, resolve_generation_config

torch.set_num_threads(1)

ARCHS = ["gpt2", "llama", "t5", "bart"]
PROMPTS = ["Hello, my dog is cute", "The capital of France is", "Why is the sky blue? Tell me about light"]


@dataclass
class Tiny:
    arch: str
    folder: Path
    tokenizer: Any
    model: Any
    gen: dict  # generation_config.json
    cfg: dict  # config.json
    input_ids: np.ndarray
    attention_mask: np.ndarray
    eos: int  # a token the model generates often: the EOS id of the EOS cases
    eos2: int  # another one
    greedy: np.ndarray  # transformers' greedy output, 12 new tokens

    @property
    def decoder(self) -> TorchDecoder:
        return TorchDecoder(self.model)

    def reference(self, **options: Any) -> np.ndarray:
        with torch.no_grad():
            return self.model.generate(
                input_ids=torch.from_numpy(self.input_ids), attention_mask=torch.from_numpy(self.attention_mask),
                **options,
            ).numpy()

    def ours(self, decoder: Any = None, **options: Any) -> np.ndarray:
        config = resolve_generation_config(self.gen, self.cfg, {}, options)
        return generate(decoder or self.decoder, self.input_ids, self.attention_mask, config,
                        decode=self.tokenizer.decode)


_CACHE: dict = {}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    def get(arch: str) -> Tiny:
        if arch not in _CACHE:
            import transformers
            from support.generation_checkpoints import build_generation_checkpoint

            folder = build_generation_checkpoint(arch, tmp_path_factory.mktemp(f"gen-{arch}"))
            tok = transformers.AutoTokenizer.from_pretrained(str(folder))
            cfg = json.loads((folder / "config.json").read_text())
            gen = json.loads((folder / "generation_config.json").read_text())
            cls = transformers.AutoModelForSeq2SeqLM if cfg.get("is_encoder_decoder") else transformers.AutoModelForCausalLM
            model = cls.from_pretrained(str(folder)).eval()
            if not cfg.get("is_encoder_decoder"):
                tok.padding_side = "left"
                tok.pad_token = tok.pad_token or tok.eos_token
            enc = tok(PROMPTS, return_tensors="np", padding=True)
            ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            with torch.no_grad():
                greedy = model.generate(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                        max_new_tokens=12, num_beams=1, do_sample=False).numpy()
            start = ids.shape[1] if not cfg.get("is_encoder_decoder") else 1
            new = greedy[:, start:]
            # decisive weights: outputs depend on the prompt, do not start with EOS, are not one repeated token
            assert len({tuple(row) for row in new.tolist()}) == len(PROMPTS), new
            assert not np.isin(new[:, 0], np.atleast_1d(cfg["eos_token_id"])).any(), new
            assert all(len(set(row)) > 2 for row in new.tolist()), new
            common = [t for t, _ in collections.Counter(new[:, 2:].ravel().tolist()).most_common()]
            _CACHE[arch] = Tiny(arch, folder, tok, model, gen, cfg, ids, mask, common[0], common[1], greedy)
        return _CACHE[arch]

    return get


def same(t: Tiny, **options: Any) -> np.ndarray:
    ref = t.reference(**options)
    ours = t.ours(**options)
    assert ours.shape == ref.shape, f"{t.arch} {options}: shape {ours.shape} vs {ref.shape}\n{ours}\n{ref}"
    np.testing.assert_array_equal(ours, ref, err_msg=f"{t.arch} {options}")
    return ours


def ended_early(t: Tiny, sequences: np.ndarray, eos: int) -> bool:
    """Whether some row hit `eos` before its last position (so padding / finished-beam logic ran)."""
    return any(eos in row[:-1] for row in sequences[:, t.input_ids.shape[1] if not t.model.config.is_encoder_decoder else 1:].tolist())


# -- greedy --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_batched(tiny, arch):
    t = tiny(arch)
    np.testing.assert_array_equal(t.ours(max_new_tokens=12), t.greedy)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_eos_pads_finished_rows_and_stops_feeding_them(tiny, arch):
    t = tiny(arch)
    decoder = t.decoder
    ours = t.ours(decoder=decoder, max_new_tokens=16, eos_token_id=t.eos)
    np.testing.assert_array_equal(ours, t.reference(max_new_tokens=16, eos_token_id=t.eos))
    assert ended_early(t, ours, t.eos)
    assert min(decoder.rows_fed) < len(PROMPTS)  # finished rows left the decoder batch
    same(t, max_new_tokens=16, eos_token_id=[t.eos2, t.eos])


@pytest.mark.parametrize("arch", ARCHS)
def test_use_cache_off_is_identical(tiny, arch):
    t = tiny(arch)
    ours = same(t, max_new_tokens=8, use_cache=False, eos_token_id=t.eos)
    np.testing.assert_array_equal(ours, t.ours(max_new_tokens=8, eos_token_id=t.eos))
    same(t, max_new_tokens=8, use_cache=False, num_beams=3, num_return_sequences=2, eos_token_id=t.eos)


# -- beam search ----------------------------------------------------------------------------------------
BEAM_CASES = [
    dict(num_beams=2, max_new_tokens=10),
    dict(num_beams=2, max_new_tokens=10, eos=True),
    dict(num_beams=4, num_return_sequences=4, length_penalty=0.5, early_stopping=True, max_new_tokens=12, eos=True),
    dict(num_beams=4, num_return_sequences=2, length_penalty=2.0, early_stopping=False, max_new_tokens=12, eos=True),
    dict(num_beams=4, num_return_sequences=3, early_stopping="never", max_new_tokens=12, eos=True),
    dict(num_beams=4, early_stopping="never", length_penalty=-1.0, max_new_tokens=10, eos=True),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=12, eos="two"),
]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", range(len(BEAM_CASES)))
def test_beam_search(tiny, arch, case):
    t = tiny(arch)
    options = dict(BEAM_CASES[case])
    eos = options.pop("eos", None)
    if eos == "two":
        options["eos_token_id"] = [t.eos, t.eos2]
    elif eos:
        options["eos_token_id"] = t.eos
    ours = same(t, **options)
    assert ours.shape[0] == len(PROMPTS) * options.get("num_return_sequences", 1)


def test_beam_search_exercises_finished_hypotheses(tiny):
    t = tiny("gpt2")
    ours = same(t, num_beams=4, num_return_sequences=4, max_new_tokens=12, eos_token_id=t.eos)
    assert ended_early(t, ours, t.eos) or ours.shape[1] < t.input_ids.shape[1] + 12


# -- logits processors inside the loop --------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_penalties_and_ngram_blocking(tiny, arch):
    t = tiny(arch)
    penalized = same(t, max_new_tokens=12, repetition_penalty=1.8)
    blocked = same(t, max_new_tokens=12, num_beams=2, no_repeat_ngram_size=2)
    assert penalized.shape == blocked.shape
    same(t, max_new_tokens=12, no_repeat_ngram_size=1)


@pytest.mark.parametrize("arch", ARCHS)
def test_min_new_tokens_and_bad_words(tiny, arch):
    t = tiny(arch)
    ours = same(t, max_new_tokens=10, min_new_tokens=6, eos_token_id=t.eos)
    start = 1 if t.model.config.is_encoder_decoder else t.input_ids.shape[1]
    assert not (ours[:, start : start + 6] == t.eos).any()
    same(t, max_new_tokens=10, min_length=start + 4, eos_token_id=t.eos, num_beams=2)
    first = int(t.greedy[0, start + 1])  # (BART forces its first token: bos)
    pair = [int(t.greedy[1, start + 2]), int(t.greedy[1, start + 3])]
    banned = same(t, max_new_tokens=12, bad_words_ids=[[first], pair])
    assert not (banned[:, start:] == first).any()
    assert not np.array_equal(banned, t.greedy)


@pytest.mark.parametrize("arch", ARCHS)
def test_forced_and_suppressed_tokens(tiny, arch):
    t = tiny(arch)
    ours = same(t, max_new_tokens=8, forced_bos_token_id=5, forced_eos_token_id=[t.eos, 7], num_beams=2)
    assert set(ours[:, -1].tolist()) <= {t.eos, 7}
    start = 1 if t.model.config.is_encoder_decoder else t.input_ids.shape[1]
    # with a forced BOS (BART) the begin-suppressed position is the one after it, as in transformers
    begin = start + 1 if (t.gen.get("forced_bos_token_id") is not None and start == 1) else start
    first = sorted(set(t.greedy[:, begin].tolist()))
    suppressed = same(t, max_new_tokens=8, begin_suppress_tokens=first, suppress_tokens=[int(t.greedy[0, begin + 1])])
    assert not np.isin(suppressed[:, begin], first).any()
    assert not (suppressed[:, start:] == int(t.greedy[0, begin + 1])).any()


def test_decoder_prompt_of_encoder_decoder_models(tiny):
    t = tiny("t5")
    prompt = np.array([[0, int(t.greedy[0, 3])]] * len(PROMPTS), dtype=np.int64)
    config = resolve_generation_config(t.gen, t.cfg, {}, {"max_new_tokens": 6, "num_beams": 2})
    ours = generate(t.decoder, t.input_ids, t.attention_mask, config, decoder_input_ids=prompt)
    ref = t.reference(max_new_tokens=6, num_beams=2, decoder_input_ids=torch.from_numpy(prompt))
    np.testing.assert_array_equal(ours, ref)
    assert (ours[:, :2] == prompt).all()


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_exponential_decay_length_penalty_and_sequence_bias(tiny, arch):
    t = tiny(arch)
    same(t, max_new_tokens=12, exponential_decay_length_penalty=(3, 1.6), eos_token_id=t.eos2)
    same(t, max_new_tokens=12, num_beams=2, exponential_decay_length_penalty=(2, 1.3), eos_token_id=t.eos2)
    start = 1 if t.model.config.is_encoder_decoder else t.input_ids.shape[1]
    first = int(t.greedy[0, start])
    biased = same(t, max_new_tokens=12, sequence_bias=[[[first], -1000.0], [[t.eos, t.eos2], 3.0]])
    assert biased[0, start] != first


def test_max_length_is_the_total_length(tiny):
    t = tiny("llama")
    ours = same(t, max_length=t.input_ids.shape[1] + 5)
    assert ours.shape[1] == t.input_ids.shape[1] + 5


# -- sampling ----------------------------------------------------------------------------------------------
def test_seeded_sampling_is_reproducible_and_seeds_differ(tiny):
    t = tiny("gpt2")
    options = dict(do_sample=True, max_new_tokens=12, temperature=1.5, top_k=0, num_return_sequences=2)
    a, b = t.ours(seed=1, **options), t.ours(seed=1, **options)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2 * len(PROMPTS), t.input_ids.shape[1] + 12)
    assert not np.array_equal(a, t.ours(seed=2, **options))
    # top_k=1 leaves one token: sampling is greedy
    np.testing.assert_array_equal(t.ours(do_sample=True, top_k=1, max_new_tokens=12, seed=3), t.greedy)
    # finished rows are padded while the others keep sampling
    with_eos = t.ours(seed=5, do_sample=True, max_new_tokens=16, top_k=3, eos_token_id=t.eos, num_return_sequences=4)
    assert ended_early(t, with_eos, t.eos)
    beams = dict(do_sample=True, num_beams=3, max_new_tokens=8, eos_token_id=t.eos)
    np.testing.assert_array_equal(t.ours(seed=4, **beams), t.ours(seed=4, **beams))


def test_sampling_follows_the_distribution():
    from onnxpipe.generation.search import sample_next

    probs = np.array([0.5, 0.3, 0.2, 0.0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        scores = np.log(np.tile(probs, (20000, 1)))
    draws = sample_next(np.random.default_rng(0), scores)
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert freq[3] == 0


# -- stop strings, streaming, bad input ------------------------------------------------------------------
def test_stop_strings_match_transformers(tiny):
    t = tiny("gpt2")
    start = t.input_ids.shape[1]
    text = t.tokenizer.decode(t.greedy[0, start:].tolist())
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), text
    ref = t.reference(max_new_tokens=12, stop_strings=stop, tokenizer=t.tokenizer)
    ours = t.ours(max_new_tokens=12, stop_strings=stop)
    np.testing.assert_array_equal(ours, ref)
    assert ours.shape[1] < t.greedy.shape[1] or (ours[:, -1] == t.tokenizer.eos_token_id).any()


def test_streaming_through_generate(tiny):
    t = tiny("llama")
    enc = t.tokenizer([PROMPTS[0]], return_tensors="np")
    config = resolve_generation_config(t.gen, t.cfg, {}, {"max_new_tokens": 12})
    streamer = TextIteratorStreamer(t.tokenizer.decode, skip_prompt=True, timeout=30)
    result = {}
    worker = threading.Thread(target=lambda: result.update(ids=generate(
        t.decoder, enc["input_ids"], enc["attention_mask"], config, streamer=streamer)))
    worker.start()
    pieces = list(streamer)
    worker.join()
    new = result["ids"][0, enc["input_ids"].shape[1]:].tolist()
    assert "".join(pieces) == t.tokenizer.decode(new)
    with pytest.raises(InvalidOptionError, match="beam search"):
        generate(t.decoder, enc["input_ids"], enc["attention_mask"], config.replace(num_beams=2), streamer=streamer)


def test_bad_input(tiny):
    t = tiny("gpt2")
    config = resolve_generation_config(t.gen, t.cfg, {}, {"max_length": 4})
    with pytest.raises(InvalidInputError, match="Input length of input_ids is .* max_length is set to 4"):
        generate(t.decoder, t.input_ids, t.attention_mask, config)
    config = resolve_generation_config(t.gen, t.cfg, {}, {"max_new_tokens": 3})
    with pytest.raises(InvalidInputError, match="2-D integer"):
        generate(t.decoder, t.input_ids[0], t.attention_mask[0], config)
    with pytest.raises(InvalidInputError, match="attention_mask has shape"):
        generate(t.decoder, t.input_ids, t.attention_mask[:, 1:], config)
    # an empty prompt starts from bos_token_id, as transformers does
    empty = np.zeros((1, 0), dtype=np.int64)
    ours = generate(t.decoder, empty, empty, config)
    with torch.no_grad():
        ref = t.model.generate(max_new_tokens=3).numpy()
    np.testing.assert_array_equal(ours, ref)


# -- the pipeline's generation config -----------------------------------------------------------------------
@pytest.mark.parametrize("arch, task, defaults", [
    ("t5", "text2text-generation", {"max_new_tokens": 256, "num_beams": 4}),
    ("bart", "summarization", {"max_new_tokens": 256, "num_beams": 4}),
    ("gpt2", "text-generation", {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}),
])
def test_pipeline_generation_config_and_tokens_match_transformers(tiny, arch, task, defaults):
    import transformers

    t = tiny(arch)
    pipe = transformers.pipeline(task, model=t.model, tokenizer=t.tokenizer, device="cpu")
    ref_config = pipe.generation_config
    ours = resolve_generation_config(t.gen, t.cfg, defaults, {}, tokenizer_pad_token_id=t.tokenizer.pad_token_id)
    for key in ("num_beams", "max_new_tokens", "max_length", "do_sample", "temperature", "early_stopping",
                "length_penalty", "no_repeat_ngram_size", "forced_bos_token_id", "pad_token_id",
                "decoder_start_token_id", "min_length", "top_k", "top_p"):
        assert getattr(ours, key) == getattr(ref_config, key), key
    ref_eos = ref_config.eos_token_id
    assert ours.eos_token_id == (tuple(ref_eos) if isinstance(ref_eos, list) else (ref_eos,))
    call = {"max_new_tokens": 6} if arch != "gpt2" else {"max_new_tokens": 6, "do_sample": False}
    ref = pipe(PROMPTS[2], return_tensors=True, **call)[0]
    ref_ids = next(v for k, v in ref.items() if k.endswith("_token_ids"))
    config = resolve_generation_config(t.gen, t.cfg, defaults, call, tokenizer_pad_token_id=t.tokenizer.pad_token_id)
    enc = t.tokenizer([PROMPTS[2]], return_tensors="np")
    ids = generate(t.decoder, enc["input_ids"], enc["attention_mask"], config)
    assert ids[0].tolist() == list(ref_ids)
