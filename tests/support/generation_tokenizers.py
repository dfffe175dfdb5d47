"""The tiny tokenizers of generation_checkpoints.py, trained offline on tiny_tokenizers.CORPUS (deterministic).

GPT-2 and BART: byte-level BPE; Llama: byte-level BPE with ChatML specials and a chat template (as SmolLM2);
T5: SentencePiece unigram (pad 0, eos 1, unk 2); Marian: a slow MarianTokenizer over one SentencePiece model
(source.spm = target.spm) and a shared vocab.json with `</s>` = 0, `<unk>` = 1 and `<pad>` last.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
from pathlib import Path
from typing import Dict

from support.tiny_tokenizers import CORPUS

MAXLEN = 128  # tokenizer model_max_length and position table size
BPE_VOCAB_SIZE = 500
SPM_VOCAB_SIZE = 300
ARCHS = ("gpt2", "llama", "t5", "bart", "marian")

#: ChatML, as SmolLM2 ships it (transformers renders it with jinja2)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@functools.cache
def _byte_bpe(specials: tuple) -> Dict[str, bytes]:
    """vocab.json + merges.txt of a byte-level BPE trained on CORPUS (deterministic)."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(
        list(CORPUS), vocab_size=BPE_VOCAB_SIZE, min_frequency=1, special_tokens=list(specials), show_progress=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        return {Path(f).name: Path(f).read_bytes() for f in tok.save_model(tmp)}


@functools.cache
def _spm(vocab_size: int, **ids: int) -> bytes:
    """A SentencePiece unigram model trained on CORPUS in memory (single thread: deterministic)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, num_threads=1, minloglevel=2, **{f"{k}": v for k, v in ids.items()},
    )
    return model.getvalue()


def build_tokenizer(arch: str, folder: Path):
    """Build the tiny tokenizer of `arch` and save_pretrained it into `folder`; return it."""
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        if arch == "gpt2":
            files = _byte_bpe(("<|endoftext|>",))
            for name, data in files.items():
                (t / name).write_bytes(data)
            tok = transformers.GPT2TokenizerFast(
                vocab_file=str(t / "vocab.json"), merges_file=str(t / "merges.txt"), model_max_length=MAXLEN
            )
        elif arch == "llama":
            from tokenizers import Tokenizer

            files = _byte_bpe(("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
            for name, data in files.items():
                (t / name).write_bytes(data)
            from tokenizers import ByteLevelBPETokenizer

            inner = ByteLevelBPETokenizer(str(t / "vocab.json"), str(t / "merges.txt"), add_prefix_space=False)
            inner.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
            raw = Tokenizer.from_str(inner._tokenizer.to_str())
            tok = transformers.PreTrainedTokenizerFast(
                tokenizer_object=raw,
                bos_token="<|im_start|>",
                eos_token="<|im_end|>",
                unk_token="<|endoftext|>",
                pad_token="<|im_end|>",
                model_max_length=MAXLEN,
                chat_template=CHAT_TEMPLATE,
                model_input_names=["input_ids", "attention_mask"],  # EXPORT_NOTES gotcha 5
                clean_up_tokenization_spaces=False,
            )
        elif arch == "bart":
            files = _byte_bpe(("<s>", "<pad>", "</s>", "<unk>", "<mask>"))
            for name, data in files.items():
                (t / name).write_bytes(data)
            tok = transformers.BartTokenizerFast(
                vocab_file=str(t / "vocab.json"), merges_file=str(t / "merges.txt"), model_max_length=MAXLEN
            )
        elif arch == "t5":
            (t / "spiece.model").write_bytes(_spm(SPM_VOCAB_SIZE, pad_id=0, eos_id=1, unk_id=2, bos_id=-1))
            tok = transformers.T5TokenizerFast(vocab_file=str(t / "spiece.model"), extra_ids=0, model_max_length=MAXLEN)
        elif arch == "marian":
            tok = _marian_tokenizer(t)
        else:
            raise ValueError(f"unknown generation arch {arch!r}; expected one of {ARCHS}")
    tok.save_pretrained(str(folder))
    return tok


def _marian_tokenizer(tmp: Path):
    """MarianTokenizer (slow only): source.spm = target.spm, a shared vocab.json with `</s>`=0, `<unk>`=1, `<pad>` last."""
    import sentencepiece as spm
    import transformers

    model = _spm(SPM_VOCAB_SIZE, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    sp = spm.SentencePieceProcessor(model_proto=model)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in pieces:
        if piece not in ("<unk>", "<s>", "</s>"):
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (tmp / "source.spm").write_bytes(model)
    (tmp / "target.spm").write_bytes(model)
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=2), encoding="utf-8")
    return transformers.MarianTokenizer(
        source_spm=str(tmp / "source.spm"), target_spm=str(tmp / "target.spm"), vocab=str(tmp / "vocab.json"),
        source_lang="en", target_lang="de", model_max_length=MAXLEN,
    )
