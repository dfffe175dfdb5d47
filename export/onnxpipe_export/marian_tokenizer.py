"""A `tokenizer.json` for Marian checkpoints, whose MarianTokenizer is slow-only (SentencePiece + vocab.json).

The runtime reads only tokenizer.json (Rust tokenizers). The one written here is a Unigram model over
vocab.json's ids, scored by source.spm's piece scores, with SentencePiece's default normalization
(precompiled nmt_nfkc charsmap, outer whitespace stripped, inner runs collapsed), a Metaspace
pre-tokenizer and `</s>` appended. It is checked against MarianTokenizer on sample texts (ids) and
id sequences (decoded text) before it is written: when they differ, the export stops with a clear
error rather than writing a tokenizer that would silently tokenize differently.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

from .errors import ConversionError

SPECIALS = ("</s>", "<unk>", "<pad>")
# texts the converted tokenizer must encode exactly as MarianTokenizer does
CHECK_TEXTS: tuple[str, ...] = (
    "Hello world.",
    "  Leading and trailing spaces   and   inner runs  ",
    "Café crème, naïve façade, Ærøskøbing, São Paulo.",
    "東京は日本の首都です。我喜欢这部电影！",
    "Emoji 😀👍 and unknown symbols 🚀🚀 ⌘ ∑",
    "Numbers 3.14, 2026, #@%&! and https://example.com/a?b=c",
    "Full-width ＡＢＣ１２３ and ligature ﬁ (NFKC)",
    "ok",
    "",
    "text with </s> inside and <unk> too",
)


def is_marian(source: Path) -> bool:
    """Whether a checkpoint carries a Marian-style slow tokenizer (source.spm + vocab.json) and no tokenizer.json."""
    return (source / "source.spm").is_file() and (source / "vocab.json").is_file() and not (source / "tokenizer.json").is_file()


def build_marian_tokenizer(source: Path) -> Any:
    """The Rust `tokenizers.Tokenizer` equivalent of the checkpoint's MarianTokenizer (source side)."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    config = _tokenizer_config(source)
    if config.get("separate_vocabs"):
        raise ConversionError(
            "This Marian checkpoint has separate source and target vocabularies (separate_vocabs=true); "
            "onnxpipe cannot express that in one tokenizer.json yet."
        )
    vocab: dict[str, int] = json.loads((source / "vocab.json").read_text(encoding="utf-8"))
    proto = model_pb2.ModelProto()
    proto.ParseFromString((source / "source.spm").read_bytes())
    if proto.trainer_spec.model_type != 1:
        raise ConversionError("Marian source.spm is not a SentencePiece unigram model; cannot convert it.")
    scores = {p.piece: p.score for p in proto.pieces if p.type == 1}  # normal pieces only
    missing = [piece for piece in scores if piece not in vocab]
    if missing:
        raise ConversionError(
            f"Marian source.spm has {len(missing)} pieces that vocab.json lacks (e.g. {missing[:3]}); "
            "MarianTokenizer maps them to <unk>, which a Unigram tokenizer.json cannot reproduce."
        )
    unk, eos, pad = (config.get(k) or d for k, d in (("unk_token", "<unk>"), ("eos_token", "</s>"), ("pad_token", "<pad>")))
    for token in (unk, eos, pad):
        if token not in vocab:
            raise ConversionError(f"Marian vocab.json has no {token!r}; cannot build tokenizer.json.")
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ConversionError("Marian vocab.json ids are not 0..N-1; cannot build tokenizer.json.")
    floor = min(scores.values()) - 1000.0  # pieces the source spm lacks are never chosen (they are <unk> there)
    pieces = [(piece, scores.get(piece, floor)) for piece, _ in by_id]
    tok = Tokenizer(Unigram(pieces, unk_id=vocab[unk], byte_fallback=False))
    steps = [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    charsmap = proto.normalizer_spec.precompiled_charsmap
    tok.normalizer = normalizers.Sequence(([normalizers.Precompiled(charsmap)] if charsmap else []) + steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in (eos, unk, pad)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 $B:0 {eos}:0", special_tokens=[(eos, vocab[eos])]
    )
    return tok


def check_marian_tokenizer(source: Path, tok: Any, texts: Sequence[str] = CHECK_TEXTS) -> dict[str, Any]:
    """Compare `tok` with MarianTokenizer: ids on `texts`, decoded text on random id sequences.

    Returns the figures for the manifest; raises ConversionError naming the first text that differs.
    """
    import warnings

    from transformers import MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Recommended: pip install sacremoses"
        slow = MarianTokenizer.from_pretrained(str(source))
    for text in texts:
        expected = slow(text)["input_ids"]
        got = tok.encode(text).ids
        if got != expected:
            raise ConversionError(
                f"The tokenizer.json built for Marian gives ids {got} for {text!r}, MarianTokenizer {expected}; "
                "onnxpipe cannot export this Marian tokenizer exactly."
            )
    rng = random.Random(0)
    size = len(slow.get_vocab())
    sequences = [[rng.randrange(size) for _ in range(rng.randint(1, 24))] for _ in range(200)]
    sequences += [slow(text)["input_ids"] for text in texts]
    mismatched = 0
    for ids in sequences:
        if tok.decode(ids, skip_special_tokens=True).strip() != slow.decode(ids, skip_special_tokens=True):
            mismatched += 1
    if mismatched:
        raise ConversionError(
            f"The tokenizer.json built for Marian decodes {mismatched} of {len(sequences)} id sequences differently "
            "from MarianTokenizer; onnxpipe cannot export this Marian tokenizer exactly."
        )
    return {
        "converted_from": "MarianTokenizer (source.spm + vocab.json)",
        "encode_checked_texts": len(texts),
        "decode_checked_sequences": len(sequences),
        # MarianTokenizer.decode ends with str.strip(); a Metaspace decoder keeps a space a lone "▁" first piece
        # makes (3 of 1000 random id sequences on the tiny test model): the runtime strips when this is true
        "decode_strip": True,
    }


def write_marian_tokenizer(source: Path, destination: Path) -> dict[str, Any]:
    """Build, check and write destination/tokenizer.json for a Marian checkpoint; return the check figures."""
    tok = build_marian_tokenizer(source)
    figures = check_marian_tokenizer(source, tok)
    tok.save(str(destination / "tokenizer.json"))
    return figures


def _tokenizer_config(source: Path) -> dict[str, Any]:
    path = source / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
