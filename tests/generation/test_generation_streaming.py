"""Streamers: the pieces concatenate to the decoded text, multi-byte characters split across byte-level BPE
tokens included; skip_prompt; the iterator streamer with a timeout; streaming through generate()."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
from support.tiny_tokenizers import CORPUS

from onnxpipe.generation import TextIteratorStreamer, TextStreamer, generate, resolve_generation_config

TEXT = "We met at a café in Zürich.\n東京は日本の首都です。 I love this 😀 so much 👍 naïve façade\nend"


@pytest.fixture(scope="module")
def tokenizer():
    """A small byte-level BPE (as GPT-2's) trained on the test corpus: rare characters stay split in bytes."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(list(CORPUS), vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return tok


def collect(streamer_class, decode, **kwargs):
    pieces: list = []
    streamer = streamer_class(decode, on_text=lambda text, end: pieces.append((text, end)), **kwargs)
    return streamer, pieces


def test_pieces_concatenate_to_the_text_with_split_multibyte_characters(tokenizer):
    ids = tokenizer.encode(TEXT).ids
    decode = tokenizer.decode
    assert decode(ids) == TEXT
    # the test is only meaningful if some token boundary splits a character's bytes
    assert any(decode(ids[:i]).endswith("\ufffd") for i in range(1, len(ids)))
    streamer, pieces = collect(TextStreamer, decode)
    streamer.put(np.array([ids[:3]]))  # the "prompt"
    for token in ids[3:]:
        streamer.put(np.array([token]))
    streamer.end()
    texts = [text for text, _ in pieces]
    assert "".join(texts) == TEXT
    assert not any("\ufffd" in text for text in texts)  # never a half character
    assert [end for _, end in pieces].count(True) == 1 and pieces[-1][1]
    assert any(text.endswith("\n") for text in texts)  # flushed at the newline
    assert any(text and "\u4e00" <= text[-1] <= "\u9fff" for text in texts[:-1])  # CJK released at once
    assert all(not text or text.endswith((" ", "\n")) or "\u4e00" <= text[-1] <= "\u9fff" or "\u3000" <= text[-1] <= "\u30ff"
               for text in texts[:-1])  # otherwise only whole words


def test_skip_prompt(tokenizer):
    ids = tokenizer.encode(TEXT).ids
    streamer, pieces = collect(TextStreamer, tokenizer.decode, skip_prompt=True)
    streamer.put(np.array([ids[:5]]))
    for token in ids[5:]:
        streamer.put(np.array([[token]]))
    streamer.end()
    assert "".join(text for text, _ in pieces) == tokenizer.decode(ids[5:])
    with pytest.raises(ValueError, match="batch size 1"):
        streamer.put(np.array([[1, 2], [3, 4]]))


def test_default_streamer_prints(tokenizer, capsys):
    streamer = TextStreamer(tokenizer.decode)
    for token in tokenizer.encode("hello world").ids:
        streamer.put(np.array([token]))
    streamer.end()
    assert capsys.readouterr().out == "hello world\n"


def test_iterator_streamer_in_a_thread_and_its_timeout(tokenizer):
    ids = tokenizer.encode(TEXT).ids
    streamer = TextIteratorStreamer(tokenizer.decode, timeout=10)

    def produce():
        for token in ids:
            streamer.put(np.array([token]))
        streamer.end()

    worker = threading.Thread(target=produce)
    worker.start()
    assert "".join(streamer) == TEXT
    worker.join()
    idle = TextIteratorStreamer(tokenizer.decode, timeout=0.05)
    with pytest.raises(queue.Empty):
        next(idle)


class ScriptedDecoder:
    """A decoder-only 'model' that emits a fixed token script (one-hot logits), for generate() + streamers."""

    is_encoder_decoder = False

    def __init__(self, script: list, vocab: int):
        self.script = script
        self.vocab = vocab

    def prepare(self, input_ids, attention_mask):
        return 0

    def step(self, state, tokens, attention_mask):
        logits = np.zeros((tokens.shape[0], self.vocab), dtype=np.float32)
        logits[:, self.script[min(state, len(self.script) - 1)]] = 10.0
        return logits, state + 1

    def select(self, state, rows):
        return state


def test_streaming_through_generate(tokenizer):
    ids = tokenizer.encode(TEXT).ids
    prompt, script = ids[:4], ids[4:]
    config = resolve_generation_config({}, {}, {}, {"max_new_tokens": len(script)})
    streamer, pieces = collect(TextStreamer, tokenizer.decode, skip_prompt=True)
    out = generate(ScriptedDecoder(script, tokenizer.get_vocab_size()), np.array([prompt]), np.ones((1, 4), np.int64),
                   config, streamer=streamer)
    assert out[0, 4:].tolist() == script
    assert "".join(text for text, _ in pieces) == tokenizer.decode(script)
    assert len(pieces) > 3 and pieces[-1][1]
