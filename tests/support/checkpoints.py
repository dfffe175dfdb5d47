"""Offline factory of tiny random Hugging Face checkpoints for onnxpipe's tests.

Everything is built from code: each checkpoint gets a tiny tokenizer of
:mod:`support.tiny_tokenizers` (trained on its :data:`~support.tiny_tokenizers.CORPUS`),
models are drawn from tiny configurations with a fixed seed. No hub, no network.

Tiny random models are usually degenerate (every input gets the same label, every
sentence the same [CLS] vector), which makes parity tests prove little. The weights
here are drawn with a large ``initializer_range`` (:data:`INITIALIZER_RANGE`, 25x the
default), so [CLS] states depend on the input, and a classification head is then centered
on :data:`CORPUS` (:func:`_calibrate_head`), so labels spread over inputs while scores stay
finite and unsaturated. ONNX-vs-torch differences on these models are about 1e-5
(sharper attention than at the default init): compare with atol ~1e-4.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from support.tiny_tokenizers import CORPUS, MAXLEN, PathLike, build_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Standard deviation of the normal init of every Linear/Embedding weight.
#: transformers' default (0.02) gives near-constant outputs on these tiny models.
INITIALIZER_RANGE: float = 0.5

#: Per-class std of a classification head's logits over CORPUS after calibration.
LOGIT_STD: float = 1.5

#: Refuse a calibration that must scale the head up more than this (degenerate encoder).
MAX_GAIN: float = 100.0

ARCHS = ("bert", "distilbert", "roberta", "xlmr")
HEADS = ("sequence-classification", "base", "token-classification", "question-answering", "masked-lm")

#: Which tokenizer each architecture uses.
ARCH_TOKENIZER: Dict[str, str] = {"bert": "wordpiece", "distilbert": "wordpiece", "roberta": "bpe", "xlmr": "unigram"}

#: BIO labels of the token-classification head
NER_LABELS: tuple = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
#: labels of an NLI head (zero-shot-classification finds "entailment" case-insensitively)
NLI_LABELS: tuple = ("contradiction", "neutral", "entailment")

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
