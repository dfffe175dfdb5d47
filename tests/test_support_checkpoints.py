"""The tiny-checkpoint factory is sound: loadable, non-degenerate, deterministic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # pytest's `pythonpath` setting does this
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import checkpoints, tiny_tokenizers  # noqa: E402
from support.checkpoints import ARCHS, LONG_TEXT, VARIED_TEXTS  # noqa: E402
from support.tiny_tokenizers import CORPUS, MAXLEN  # noqa: E402

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer  # noqa: E402

transformers.logging.set_verbosity_error()

PIPELINE_TASK = {"sequence-classification": "text-classification", "base": "feature-extraction"}
PAIRS = [(a, b) for a, b in zip(VARIED_TEXTS, VARIED_TEXTS[1:] + VARIED_TEXTS[:1])]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """All arch x head checkpoints with default settings, built once."""
    root = tmp_path_factory.mktemp("ckpt")
    return {
        (arch, head): checkpoints.build_checkpoint(arch, head, root / f"{arch}-{head}")
        for arch in ARCHS
        for head in checkpoints.HEADS
    }


def _pipe(folder: Path, task: str):
    return transformers.pipeline(task, model=str(folder), device="cpu")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("kind", tiny_tokenizers.TOKENIZER_KINDS)
def test_tokenizer_files_and_rust_parity(kind, tmp_path):
    tok = tiny_tokenizers.build_tokenizer(kind, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / name).is_file(), name
    assert tok.model_max_length == MAXLEN
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_max_length"] == MAXLEN
    assert 300 <= len(tok) <= 800

    rust = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert rust.truncation is None and rust.padding is None
    first, last = (tok.cls_token_id, tok.sep_token_id)
    for text in VARIED_TEXTS:
        ids = tok(text)["input_ids"]
        assert rust.encode(text).ids == ids, text
        assert ids[0] == first and ids[-1] == last, text  # special tokens are added
        assert len(ids) > 2, text
    for a, b in PAIRS:
        enc = tok(a, b)
        r = rust.encode(a, b)
        assert r.ids == enc["input_ids"], (a, b)
        if "token_type_ids" in enc:
            assert r.type_ids == enc["token_type_ids"], (a, b)
        assert enc["input_ids"].count(tok.sep_token_id) >= 2
    batch = rust.encode_batch(list(VARIED_TEXTS))
    assert [e.ids for e in batch] == tok(list(VARIED_TEXTS))["input_ids"]


def test_wordpiece_covers_unicode_and_cjk(tmp_path):
    tok = tiny_tokenizers.build_tokenizer("wordpiece", tmp_path)
    for text in VARIED_TEXTS + CORPUS:
        assert tok.unk_token_id not in tok(text)["input_ids"], text
    # CJK characters are split one per token; accents are stripped (uncased BERT).
    assert tok.tokenize("東京") == ["東", "京"]
    assert tok.tokenize("café") == tok.tokenize("cafe")


def test_bpe_special_ids_follow_roberta(tmp_path):
    tok = tiny_tokenizers.build_tokenizer("bpe", tmp_path)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 4
    assert tok.unk_token_id not in tok("今日は 😀 Zürich")["input_ids"]  # byte-level: no unknowns


@pytest.mark.parametrize("kind", tiny_tokenizers.TOKENIZER_KINDS)
def test_long_text_exceeds_maxlen(kind, tmp_path):
    tok = tiny_tokenizers.build_tokenizer(kind, tmp_path)
    n = len(tok(LONG_TEXT)["input_ids"])
    assert n > 3 * MAXLEN
    assert len(tok(LONG_TEXT, truncation=True)["input_ids"]) == MAXLEN


def test_vocab_training_is_deterministic_across_processes():
    """tokenizers' own WordPiece trainer is not (hash-map order); ours must be."""
    code = (
        "import sys, hashlib; sys.path.insert(0, sys.argv[1]); import support.tiny_tokenizers as t\n"
        "for k in t.TOKENIZER_KINDS:\n"
        "    for n, b in sorted(t.trained_vocab(k).items()): print(k, n, hashlib.sha256(b).hexdigest())\n"
    )
    here = str(Path(__file__).resolve().parent)
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, here], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 1
    local = "".join(
        f"{k} {n} {hashlib.sha256(b).hexdigest()}\n"
        for k in tiny_tokenizers.TOKENIZER_KINDS
        for n, b in sorted(tiny_tokenizers.trained_vocab(k).items())
    )
    assert outs == {local}


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("arch", ARCHS)
def test_config_matches_tokenizer(built, arch):
    folder = built[arch, "sequence-classification"]
    cfg = transformers.AutoConfig.from_pretrained(str(folder))
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert cfg.vocab_size == len(tok)
    assert cfg.pad_token_id == tok.pad_token_id
    assert cfg.id2label == {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}
    assert cfg.label2id == {"NEGATIVE": 0, "NEUTRAL": 1, "POSITIVE": 2}
    assert (folder / "model.safetensors").is_file()
    if arch in ("roberta", "xlmr"):
        assert cfg.max_position_embeddings == MAXLEN + 2  # positions start at pad_token_id + 1
        assert (cfg.bos_token_id, cfg.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
        assert "token_type_ids" not in tok("hi")
    else:
        assert cfg.max_position_embeddings == MAXLEN
    if arch == "distilbert":
        assert "token_type_ids" not in tok("hi", "there")  # DistilBERT's forward has none
    if arch == "bert":
        assert tok("hi", "there")["token_type_ids"][-1] == 1


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("arch", ARCHS)
def test_classification_labels_depend_on_input(built, arch):
    pipe = _pipe(built[arch, "sequence-classification"], "text-classification")
    out = pipe(list(VARIED_TEXTS))
    labels = [o["label"] for o in out]
    scores = np.array([o["score"] for o in out])
    assert set(labels) <= {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    assert len(set(labels)) == 3, labels  # seed 0: every label is used
    assert np.isfinite(scores).all()
    assert (scores < 0.999).sum() >= len(scores) - 1, scores  # not saturated
    assert scores.max() - scores.min() > 0.05

    full = pipe(list(VARIED_TEXTS), top_k=None)
    for row in full:
        assert abs(sum(r["score"] for r in row) - 1.0) < 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_classification_pairs_and_truncation(built, arch):
    pipe = _pipe(built[arch, "sequence-classification"], "text-classification")
    out = pipe([{"text": a, "text_pair": b} for a, b in PAIRS])
    assert len({o["label"] for o in out}) >= 2
    # A long input needs truncation; positions are sized for MAXLEN tokens.
    long_out = pipe(LONG_TEXT, truncation=True)
    assert np.isfinite(long_out[0]["score"])
    with pytest.raises(RuntimeError):
        pipe(LONG_TEXT)  # without truncation, position ids run past the table


@pytest.mark.parametrize("arch", ARCHS)
def test_regression_single_label_uses_sigmoid(tmp_path, arch):
    folder = checkpoints.build_checkpoint(arch, "sequence-classification", tmp_path, num_labels=1)
    cfg = transformers.AutoConfig.from_pretrained(str(folder))
    assert cfg.num_labels == 1 and cfg.id2label == {0: "POSITIVE"}
    scores = np.array([o["score"] for o in _pipe(folder, "text-classification")(list(VARIED_TEXTS))])
    assert ((scores > 0.01) & (scores < 0.99)).all(), scores
    assert scores.max() - scores.min() > 0.2, scores
    assert (scores > 0.5).any() and (scores < 0.5).any(), scores


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_label_problem_type_passes_through(tmp_path, arch):
    folder = checkpoints.build_checkpoint(
        arch, "sequence-classification", tmp_path, problem_type="multi_label_classification"
    )
    cfg = transformers.AutoConfig.from_pretrained(str(folder))
    assert cfg.problem_type == "multi_label_classification" and cfg.num_labels == 3
    rows = _pipe(folder, "text-classification")(list(VARIED_TEXTS), top_k=None)
    sums = [sum(r["score"] for r in row) for row in rows]
    assert any(abs(s - 1.0) > 0.05 for s in sums), sums  # sigmoid, not softmax
    assert len({row[0]["label"] for row in rows}) >= 2


def test_labels_argument_and_validation(tmp_path):
    folder = checkpoints.build_checkpoint(
        "bert", "sequence-classification", tmp_path / "a", num_labels=2, labels=["no", "yes"]
    )
    assert transformers.AutoConfig.from_pretrained(str(folder)).id2label == {0: "no", 1: "yes"}
    # labels, when given, set the label count
    folder = checkpoints.build_checkpoint("bert", "sequence-classification", tmp_path / "b", num_labels=2, labels=["x"])
    assert transformers.AutoConfig.from_pretrained(str(folder)).num_labels == 1
    with pytest.raises(ValueError):
        checkpoints.build_checkpoint("gpt2", "base", tmp_path / "c")
    with pytest.raises(ValueError, match="degenerate"):
        # transformers' default init scale gives near-constant features
        checkpoints.build_checkpoint("bert", "sequence-classification", tmp_path / "d", initializer_range=0.02)


# --------------------------------------------------------------------------- feature extraction


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_vectors_depend_on_input(built, arch):
    pipe = _pipe(built[arch, "base"], "feature-extraction")
    feats = [np.asarray(f[0]) for f in pipe(list(VARIED_TEXTS))]
    for f, text in zip(feats, VARIED_TEXTS):
        assert f.ndim == 2 and f.shape[1] == 32, text
        assert np.isfinite(f).all()
    cls = [f[0] for f in feats]
    means = [f.mean(0) for f in feats]
    n = len(feats)
    cls_cos = [_cos(cls[i], cls[j]) for i in range(n) for j in range(i + 1, n)]
    mean_cos = [_cos(means[i], means[j]) for i in range(n) for j in range(i + 1, n)]
    # Token-level states at the same position ([CLS]) differ clearly between sentences.
    assert max(cls_cos) < 0.995 and np.mean(cls_cos) < 0.95, (max(cls_cos), np.mean(cls_cos))
    assert max(mean_cos) < 0.999 and np.mean(mean_cos) < 0.95
    assert np.abs(cls[0] - cls[1]).max() > 0.1
    long_feats = pipe(LONG_TEXT, tokenize_kwargs={"truncation": True})
    assert len(long_feats[0]) == MAXLEN


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_same_checkpoint(built, tmp_path, arch):
    again = checkpoints.build_checkpoint(arch, "sequence-classification", tmp_path / "again")
    first = built[arch, "sequence-classification"]
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha(again / name) == _sha(first / name), name
    a = _pipe(first, "text-classification")(list(VARIED_TEXTS), top_k=None)
    b = _pipe(again, "text-classification")(list(VARIED_TEXTS), top_k=None)
    assert a == b
    other = checkpoints.build_checkpoint(arch, "sequence-classification", tmp_path / "other", seed=1)
    assert _sha(other / "model.safetensors") != _sha(first / "model.safetensors")
    assert _sha(other / "tokenizer.json") == _sha(first / "tokenizer.json")


def test_checkpoints_identical_across_processes(built):
    code = (
        "import sys, hashlib, tempfile, pathlib; sys.path.insert(0, sys.argv[1]); import support.checkpoints as c\n"
        "for a in c.ARCHS:\n"
        "    for h in c.HEADS:\n"
        "        d = c.build_checkpoint(a, h, pathlib.Path(tempfile.mkdtemp()) / 'm')\n"
        "        print(a, h, hashlib.sha256((d / 'model.safetensors').read_bytes()).hexdigest())\n"
    )
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, check=True)
    expected = "".join(
        f"{a} {h} {_sha(built[a, h] / 'model.safetensors')}\n" for a in ARCHS for h in checkpoints.HEADS
    )
    assert out.stdout == expected


def test_build_is_fast_and_leaves_rng_alone(tmp_path):
    import time

    checkpoints.build_checkpoint("bert", "base", tmp_path / "warm")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    t0 = time.perf_counter()
    for arch in ARCHS:
        checkpoints.build_checkpoint(arch, "sequence-classification", tmp_path / arch)
    elapsed = time.perf_counter() - t0
    assert torch.equal(torch.rand(3), expected)
    assert elapsed < 3.0, elapsed
