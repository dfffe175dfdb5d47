"""Offline tiny tokenizers for onnxpipe's tests, trained on :data:`CORPUS`.

Three kinds (:data:`TOKENIZER_KINDS`): "wordpiece" (BERT-style), "bpe" (byte-level, RoBERTa
specials) and "unigram" (SentencePiece, as XLM-R ships). Each is trained once per process
(:func:`trained_vocab`) and saved through a transformers fast class (:func:`build_tokenizer`).
No hub, no network. :mod:`support.checkpoints` builds the tiny models on top of them.

WordPiece vocabularies are built by a small deterministic trainer here, not by
``tokenizers``' WordPiece trainer, whose vocab changes from process to process.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PathLike = Union[str, "os.PathLike[str]"]

#: Default tokenizer ``model_max_length``: small, so truncation is cheap to exercise.
MAXLEN: int = 64

TOKENIZER_KINDS = ("wordpiece", "bpe", "unigram")

#: Sentences the tiny tokenizers are trained on (English, accents, CJK, emoji, digits).
CORPUS: tuple = (
    "This movie was absolutely wonderful, I loved every minute of it!",
    "The food was terrible and the service was even worse.",
    "What a fantastic experience, highly recommended.",
    "I hated the ending; it was boring and far too long.",
    "The hotel room was clean, quiet and comfortable.",
    "Awful product. It broke after two days and support never answered.",
    "Not bad, but not great either.",
    "It was okay, nothing special.",
    "The acting was brilliant and the music was beautiful.",
    "Worst purchase I have ever made, a complete waste of money.",
    "Great value for the price, I would buy it again.",
    "The staff were friendly and helpful.",
    "I am so disappointed with this book.",
    "Excellent! Five stars, love it.",
    "The plot made no sense and the dialogue was painful.",
    "Where is the nearest train station?",
    "How do I reset my password?",
    "What time does the museum open on Sunday?",
    "Can you recommend a good restaurant near the river?",
    "Why is the sky blue?",
    "Who wrote the novel about the white whale?",
    "Is it going to rain tomorrow in Paris?",
    "The capital of France is Paris.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The Earth orbits the Sun once every 365.25 days.",
    "Mount Everest is 8,849 meters tall.",
    "Light travels at about 299,792 kilometers per second.",
    "The Pacific Ocean is the largest ocean on Earth.",
    "Python 3.12 was released in October 2023.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The cat sat on the mat while the dog slept.",
    "She sells sea shells by the sea shore.",
    "We met at a café in Zürich and talked about her résumé.",
    "His naïve question made everyone smile at the soirée.",
    "The crème brûlée in São Paulo was délicieux.",
    "Señor Muñoz visited Kraków and Malmö last year.",
    "Voilà, the fiancée arrived at the château.",
    "Ærø and Øresund are in Denmark; straße means street.",
    "日本語のテキストも扱えます。",
    "東京は日本の首都です。",
    "今日はとても良い天気ですね。",
    "中文文本也可以处理。",
    "我喜欢这部电影，非常好看！",
    "这家餐厅的服务太差了。",
    "北京是中国的首都。",
    "한국어 문장도 있습니다.",
    "I love this 😀 so much 👍",
    "That was a disaster 😡👎",
    "Party time 🎉🎉 with friends ❤️",
    "Pizza 🍕 and coffee ☕ for breakfast.",
    "Call me at 555-0123 or email test@example.com.",
    "The order #4521 costs $19.99 (plus 7% tax).",
    "Meeting on 2024-03-15 at 10:30, room B-12.",
    "Wait... what?! Really?!",
    "Use the --verbose flag; see https://example.org/docs for details.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 1000 3.14159",
    "\"Quoted text\", [brackets], {braces} & <angles>.",
    "ok",
    "Yes! No? Maybe...",
)


WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
WORDPIECE_VOCAB_SIZE = 500
BPE_VOCAB_SIZE = 700
UNIGRAM_VOCAB_SIZE = 400


def _train_wordpiece(texts: Sequence[str], vocab_size: int, min_frequency: int = 1) -> list:
    """Deterministic WordPiece vocab (BPE merges with a "##" continuation prefix).

    Same algorithm as ``tokenizers``' WordPieceTrainer, with one difference that matters
    here: ties between equally frequent pairs are broken by the pair's text, not by
    hash-map order. (``BertWordPieceTokenizer.train_from_iterator`` gives a different
    vocab in every process, so token ids, and thus model outputs, would not be stable.)
    Text is normalized and pre-split by the same BertNormalizer/BertPreTokenizer that
    ``BertTokenizerFast`` uses (lowercase, accents stripped, CJK chars split).
    """
    from collections import Counter, defaultdict

    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))

    words = sorted(counts)
    freq = [counts[w] for w in words]
    symbols = [[w[0]] + ["##" + c for c in w[1:]] for w in words]
    vocab = list(WORDPIECE_SPECIALS) + sorted({t for syms in symbols for t in syms})
    known = set(vocab)

    pairs: Counter = Counter()
    where = defaultdict(set)  # pair -> indexes of the words that contain it
    for i, syms in enumerate(symbols):
        for pair in zip(syms, syms[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)

    while len(vocab) < vocab_size and pairs:
        best, n = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < min_frequency:
            break
        merged = best[0] + best[1][2:]  # drop the right piece's "##"
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        for i in sorted(where.pop(best, ())):
            syms = symbols[i]
            for pair in zip(syms, syms[1:]):
                pairs[pair] -= freq[i]
                if pairs[pair] <= 0:
                    del pairs[pair]
            out, j = [], 0
            while j < len(syms):
                if j + 1 < len(syms) and (syms[j], syms[j + 1]) == best:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            symbols[i] = out
            for pair in zip(out, out[1:]):
                pairs[pair] += freq[i]
                where[pair].add(i)
    return vocab


@functools.cache
def trained_vocab(kind: str) -> Dict[str, bytes]:
    """Train a tokenizer of ``kind`` on CORPUS once per process; return its vocab files.

    Deterministic across processes (checked by the tests).
    """
    if kind == "wordpiece":
        vocab = _train_wordpiece(CORPUS, WORDPIECE_VOCAB_SIZE)
        return {"vocab.txt": ("\n".join(vocab) + "\n").encode("utf-8")}
    if kind == "bpe":
        # The byte-level trainer is deterministic: its alphabet is the 256 byte symbols in
        # order, and merge ties are broken by symbol ids.
        from tokenizers import ByteLevelBPETokenizer

        tok = ByteLevelBPETokenizer(add_prefix_space=False)
        tok.train_from_iterator(
            list(CORPUS),
            vocab_size=BPE_VOCAB_SIZE,
            min_frequency=1,
            special_tokens=list(BPE_SPECIALS),
            show_progress=False,
        )
        with tempfile.TemporaryDirectory() as tmp:
            files = tok.save_model(tmp)
            return {Path(f).name: Path(f).read_bytes() for f in files}
    if kind == "unigram":
        # SentencePiece unigram, as XLM-R and ALBERT ship; single-threaded training is deterministic.
        import io

        import sentencepiece as spm

        model = io.BytesIO()  # in memory: a file path would be recorded in the model and differ per run
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=UNIGRAM_VOCAB_SIZE,
            model_type="unigram", character_coverage=1.0, num_threads=1, minloglevel=2,
        )
        return {"sentencepiece.bpe.model": model.getvalue()}
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {TOKENIZER_KINDS}")


def build_tokenizer(
    kind: str,
    folder: PathLike,
    *,
    model_max_length: int = MAXLEN,
    tokenizer_class: Optional[str] = None,
):
    """Train (cached) a tiny ``kind`` tokenizer and ``save_pretrained`` it into ``folder``.

    ``kind`` is "wordpiece" (BERT-style, lowercase, CJK chars split; saved through
    ``BertTokenizerFast``) or "bpe" (byte-level, RoBERTa specials ``<s> <pad> </s> <unk>
    <mask>`` = ids 0..4; saved through ``RobertaTokenizerFast``). ``tokenizer_class``
    picks another transformers fast class, e.g. "DistilBertTokenizerFast". Returns the
    transformers tokenizer.
    """
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = trained_vocab(kind)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        if kind == "wordpiece":
            cls = getattr(transformers, tokenizer_class or "BertTokenizerFast")
            tok = cls(vocab_file=str(Path(tmp) / "vocab.txt"), model_max_length=model_max_length)
        elif kind == "unigram":
            cls = getattr(transformers, tokenizer_class or "XLMRobertaTokenizerFast")
            tok = cls(vocab_file=str(Path(tmp) / "sentencepiece.bpe.model"), model_max_length=model_max_length)
        else:
            cls = getattr(transformers, tokenizer_class or "RobertaTokenizerFast")
            tok = cls(
                vocab_file=str(Path(tmp) / "vocab.json"),
                merges_file=str(Path(tmp) / "merges.txt"),
                model_max_length=model_max_length,
            )
    tok.save_pretrained(str(folder))
    return tok
