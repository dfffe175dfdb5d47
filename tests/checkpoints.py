"""Offline factory of tiny random Hugging Face checkpoints for onnxpipe's tests.

Everything is built from code: tokenizers are trained on :data:`CORPUS`, models are
drawn from tiny configurations with a fixed seed. No hub, no network.

Tiny random models are usually degenerate (every input gets the same label, every
sentence the same [CLS] vector), which makes parity tests prove little. The weights
here are drawn with a large ``initializer_range`` (:data:`INITIALIZER_RANGE`, 25x the
default), so [CLS] states depend on the input, and a classification head is then centered
on :data:`CORPUS` (:func:`_calibrate_head`), so labels spread over inputs while scores stay
finite and unsaturated. ONNX-vs-torch differences on these models are about 1e-5
(sharper attention than at the default init): compare with atol ~1e-4.

WordPiece vocabularies are built by a small deterministic trainer here, not by
``tokenizers``' WordPiece trainer, whose vocab changes from process to process.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PathLike = Union[str, "os.PathLike[str]"]

#: Default tokenizer ``model_max_length``: small, so truncation is cheap to exercise.
MAXLEN: int = 64

#: Standard deviation of the normal init of every Linear/Embedding weight.
#: transformers' default (0.02) gives near-constant outputs on these tiny models.
INITIALIZER_RANGE: float = 0.5

#: Per-class std of a classification head's logits over CORPUS after calibration.
LOGIT_STD: float = 1.5

#: Refuse a calibration that must scale the head up more than this (degenerate encoder).
MAX_GAIN: float = 100.0

ARCHS = ("bert", "distilbert", "roberta", "xlmr")
HEADS = ("sequence-classification", "base", "token-classification", "question-answering", "masked-lm")
TOKENIZER_KINDS = ("wordpiece", "bpe", "unigram")

#: Which tokenizer each architecture uses.
ARCH_TOKENIZER: Dict[str, str] = {"bert": "wordpiece", "distilbert": "wordpiece", "roberta": "bpe", "xlmr": "unigram"}

#: BIO labels of the token-classification head
NER_LABELS: tuple = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
#: labels of an NLI head (zero-shot-classification finds "entailment" case-insensitively)
NLI_LABELS: tuple = ("contradiction", "neutral", "entailment")

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

#: Short varied inputs for parity tests (English, accents, CJK, emoji, a near-empty one).
VARIED_TEXTS: tuple = (
    "I loved this movie, it was wonderful!",
    "The service was terrible and the food was awful.",
    "It was okay, nothing special.",
    "Where is the nearest train station?",
    "The capital of France is Paris.",
    "We met at a café in Zürich; what a naïve résumé.",
    "今日は東京の良い天気です。",
    "我喜欢这部电影！",
    "I love this 😀 👍",
    "Order #4521 costs $19.99 on 2024-03-15.",
    "ok",
    "Wait... what?! Really?!",
)

#: A text that tokenizes to several times :data:`MAXLEN` tokens with either tokenizer.
LONG_TEXT: str = " ".join(CORPUS[:24])


def default_labels(num_labels: int) -> list:
    """Readable label names: NEGATIVE/POSITIVE style for 1-3 labels, LABEL_i otherwise."""
    named = {
        1: ["POSITIVE"],
        2: ["NEGATIVE", "POSITIVE"],
        3: ["NEGATIVE", "NEUTRAL", "POSITIVE"],
    }
    return list(named.get(num_labels, [f"LABEL_{i}" for i in range(num_labels)]))


# --------------------------------------------------------------------------- tokenizers


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


@functools.lru_cache(maxsize=None)
def _trained_vocab(kind: str) -> Dict[str, bytes]:
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
    files = _trained_vocab(kind)
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


# --------------------------------------------------------------------------- models

_CLASS_PREFIX = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "xlmr": "XLMRoberta"}
_HEAD_SUFFIX = {
    "sequence-classification": "ForSequenceClassification",
    "base": "Model",
    "token-classification": "ForTokenClassification",
    "question-answering": "ForQuestionAnswering",
    "masked-lm": "ForMaskedLM",
}
_MODEL_CLASSES = {(a, h): _CLASS_PREFIX[a] + _HEAD_SUFFIX[h] for a in _CLASS_PREFIX for h in _HEAD_SUFFIX}
#: heads whose final Linear is calibrated so its argmax depends on the input
_CALIBRATED_HEADS = ("sequence-classification", "token-classification", "question-answering")


def _config(arch: str, tok, max_length: int, initializer_range: float, **overrides: Any):
    """Tiny config for ``arch`` whose special ids and positions match ``tok``."""
    import transformers

    common = dict(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
    )
    if arch == "bert":
        cfg = transformers.BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=max_length,
            type_vocab_size=2,
            initializer_range=initializer_range,
            **common,
            **overrides,
        )
    elif arch == "distilbert":
        cfg = transformers.DistilBertConfig(
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=37,
            max_position_embeddings=max_length,
            initializer_range=initializer_range,
            **common,
            **overrides,
        )
    elif arch in ("roberta", "xlmr"):
        # RoBERTa's positions start at padding_idx + 1 (= 2), so it needs 2 extra rows.
        config_class = transformers.RobertaConfig if arch == "roberta" else transformers.XLMRobertaConfig
        cfg = config_class(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=max_length + tok.pad_token_id + 1,
            type_vocab_size=1,
            initializer_range=initializer_range,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **common,
            **overrides,
        )
    else:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    return cfg


def _final_linear(model):
    """The head's last Linear layer (its output is the logits)."""
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    last = linears[-1]
    if last.out_features != model.config.num_labels:
        raise RuntimeError(f"could not find the classifier of {type(model).__name__}")
    return last


def _calibrate_head(model, tok, logit_std: float) -> None:
    """Center and scale the classifier so labels spread over inputs.

    A random encoder's [CLS] features share a large common component, so a random
    classifier maps nearly every input to one class. Here each logit row is rescaled and
    its bias set so that, over :data:`CORPUS` (not the test texts), every logit has mean 0
    and std ``logit_std``: argmax then depends on the input, and softmax stays far from
    saturation. Deterministic (no RNG involved).
    """
    import torch

    layer = _final_linear(model)
    captured = []
    hook = layer.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    try:
        batch = tok(list(CORPUS), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            model(**batch)
    finally:
        hook.remove()
    feats = captured[0].double()  # (N, H) or, for token-level heads, (N, S, H): the input of the final Linear
    if feats.ndim == 3:
        feats = feats[batch["attention_mask"].bool()]  # real tokens only
    mean = feats.mean(0)
    with torch.no_grad():
        w = layer.weight.double()
        std = ((feats - mean) @ w.T).std(0)  # (num_labels,)
        gain = logit_std / std.clamp_min(1e-12)
        if float(gain.max()) > MAX_GAIN:
            # The encoder's features barely depend on the input: scaling them up would only
            # amplify rounding noise (and break ONNX-vs-torch parity).
            raise ValueError(
                f"degenerate encoder: head gain {float(gain.max()):.3g} > {MAX_GAIN}; "
                "raise initializer_range"
            )
        w = w * gain[:, None]
        layer.weight.copy_(w.to(layer.weight.dtype))
        layer.bias.copy_((-(w @ mean)).to(layer.bias.dtype))


def build_checkpoint(
    arch: str,
    head: str,
    folder: PathLike,
    *,
    num_labels: int = 3,
    seed: int = 0,
    max_length: int = MAXLEN,
    labels: Optional[Sequence[str]] = None,
    initializer_range: float = INITIALIZER_RANGE,
    logit_std: float = LOGIT_STD,
    **config_overrides: Any,
) -> Path:
    """Build a tiny random ``arch`` checkpoint with ``head`` into ``folder``; return it.

    ``arch``: "bert" | "distilbert" | "roberta" | "xlmr"; ``head``: "sequence-classification" |
    "base" (bare encoder, for feature-extraction) | "token-classification" (BIO labels
    :data:`NER_LABELS` by default) | "question-answering" | "masked-lm". bert/distilbert get
    the wordpiece tokenizer (DistilBERT's class, which emits no token_type_ids), roberta the
    byte-level BPE one, xlmr a SentencePiece unigram one, with ``model_max_length=max_length``.
    For an NLI model pass ``labels=NLI_LABELS``. ``labels`` names the classes (default
    :func:`default_labels`). Extra keyword arguments (``problem_type=...``) go into the
    config. Weights are drawn N(0, ``initializer_range``) under ``torch.manual_seed(seed)``;
    a classification head is then rescaled so that its logits over :data:`CORPUS` have
    mean 0 and std ``logit_std`` per class (see :func:`_calibrate_head`).
    Deterministic: the same arguments give the same weights.
    """
    import torch
    import transformers

    if (arch, head) not in _MODEL_CLASSES:
        raise ValueError(f"unsupported arch/head {arch!r}/{head!r}; expected {ARCHS} x {HEADS}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tok_class = "DistilBertTokenizerFast" if arch == "distilbert" else None
    tok = build_tokenizer(
        ARCH_TOKENIZER[arch], folder, model_max_length=max_length, tokenizer_class=tok_class
    )

    if head == "token-classification" and labels is None:
        labels = NER_LABELS
    if labels is not None:
        num_labels = len(labels)
    if head == "question-answering":
        config_overrides = dict(num_labels=2, **config_overrides)  # start and end logits
    if head in ("sequence-classification", "token-classification"):
        names = list(labels) if labels is not None else default_labels(num_labels)
        if len(names) != num_labels:
            raise ValueError(f"{len(names)} labels given for num_labels={num_labels}")
        config_overrides = dict(
            num_labels=num_labels,
            id2label={i: n for i, n in enumerate(names)},
            label2id={n: i for i, n in enumerate(names)},
            **config_overrides,
        )
    cfg = _config(arch, tok, max_length, initializer_range, **config_overrides)
    cfg.architectures = [_MODEL_CLASSES[arch, head]]

    model_cls = getattr(transformers, _MODEL_CLASSES[arch, head])
    # Weight init draws from torch's global RNG: keep callers' RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(cfg)
    model.eval()
    if head in _CALIBRATED_HEADS:
        _calibrate_head(model, tok, logit_std)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
