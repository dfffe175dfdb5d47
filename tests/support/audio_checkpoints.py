"""Offline factory of tiny random speech checkpoints (wav2vec2 CTC and classifier) and generated test audio.

Weights are drawn with a fixed seed and a larger init than transformers' default, so that labels and
transcripts depend on the audio (the tests assert it); the feature extractor and the CTC tokenizer are saved
with save_pretrained, so the folder carries preprocessor_config.json, vocab.json and tokenizer_config.json as a
hub checkpoint does.
"""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000
LABELS = ("yes", "no", "up", "down", "left", "right", "stop")  # 7 > 5: shows transformers' top_k default
LETTERS = "ETAONISHRDLU'"
PAD_BIAS = 3.0
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(LETTERS)}}


def _config(**extra: Any):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),  # 80 samples (5 ms) per logit frame
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, initializer_range=0.5,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, **extra,
    )


def _seeded_weights(model: Any, seed: int, scale: float) -> Any:
    """Redraw every linear/conv weight with a fixed seed and a scale that keeps outputs input-dependent."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2 and "pos_conv" not in name:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) * scale / fan_in**0.5)
    return model.eval()


def build_ctc(folder: Path, feat_extract_norm: str = "group") -> Path:
    """A tiny Wav2Vec2ForCTC with a letter vocabulary; "layer" norm models get attention masks from their
    feature extractor (return_attention_mask=True), "group" norm ones do not, as on the hub."""
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(VOCAB), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    layer = feat_extract_norm == "layer"
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=True, return_attention_mask=layer
    )
    config = _config(
        vocab_size=len(VOCAB), pad_token_id=VOCAB["<pad>"], feat_extract_norm=feat_extract_norm,
        do_stable_layer_norm=layer, architectures=["Wav2Vec2ForCTC"],
    )
    model = _seeded_weights(Wav2Vec2ForCTC(config), seed=1, scale=2.0)
    with torch.no_grad():  # favour the blank, as trained CTC models do: transcripts then have gaps and repeats
        model.lm_head.bias[VOCAB["<pad>"]] += PAD_BIAS
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_family_ctc(folder: Path, family: str) -> Path:
    """A tiny CTC model of another wav2vec2-family architecture ("hubert", "wavlm", "data2vec-audio") with the
    same vocabulary and feature extractor: the runtime keys on the graph, not the architecture."""
    import torch
    import transformers
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    names = {"hubert": ("HubertConfig", "HubertForCTC"), "wavlm": ("WavLMConfig", "WavLMForCTC"),
             "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioForCTC")}
    config_name, model_name = names[family]
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(VOCAB), encoding="utf-8")
    base = _config().to_dict()
    keep = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim", "conv_stride",
            "conv_kernel", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "initializer_range")
    extra = {"num_buckets": 32, "max_bucket_distance": 100} if family == "wavlm" else {}
    config = getattr(transformers, config_name)(
        **{k: base[k] for k in keep}, vocab_size=len(VOCAB), pad_token_id=VOCAB["<pad>"], architectures=[model_name], **extra
    )
    model = _seeded_weights(getattr(transformers, model_name)(config), seed=3, scale=2.0)
    with torch.no_grad():
        model.lm_head.bias[VOCAB["<pad>"]] += PAD_BIAS
    model.save_pretrained(folder)
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_classifier(folder: Path) -> Path:
    """A tiny Wav2Vec2ForSequenceClassification over LABELS (feature extractor without attention mask)."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    config = _config(
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
        architectures=["Wav2Vec2ForSequenceClassification"], classifier_proj_size=16,
    )
    model = _seeded_weights(Wav2Vec2ForSequenceClassification(config), seed=2, scale=2.0)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=RATE, do_normalize=True).save_pretrained(folder)
    return folder


def build_ast(folder: Path) -> Path:
    """A tiny Audio Spectrogram Transformer classifier over LABELS: 32 mel bins, 100 frames (1 s), 16x16 patches."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, patch_size=16,
        frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=32, initializer_range=0.5,
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
        architectures=["ASTForAudioClassification"],
    )
    ASTForAudioClassification(config).eval().save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=32, max_length=100).save_pretrained(folder)
    return folder


# -- generated audio -----------------------------------------------------------------------------------------
def tone(seconds: float, freq: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(seconds: float, low: float = 100.0, high: float = 4000.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.4 * np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds)))).astype(np.float32)


def noise(seconds: float, seed: int, rate: int = RATE, std: float = 0.2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, std, int(round(seconds * rate))).astype(np.float32)


def speechlike(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Harmonics of a wandering pitch, amplitude-modulated like syllables, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    pitch = rng.uniform(90, 200) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) * rng.uniform(0.2, 1) / k for k in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None)
    return (0.3 * voice * envelope + rng.normal(0, 0.01, t.shape)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE, width: int = 2, channels: int = 1) -> bytes:
    """A PCM WAV file of float samples in [-1, 1] (shape (n,) or (n, channels)), `width` bytes per sample."""
    data = np.asarray(samples, dtype=np.float64).reshape(len(samples), channels)
    if width == 1:
        pcm = np.clip(np.round(data * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.clip(np.round(data * (1 << 23)), -(1 << 23), (1 << 23) - 1).astype("<i4")
        pcm = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        kind = {2: "<i2", 4: "<i4"}[width]
        full = float(1 << (8 * width - 1))
        pcm = np.clip(np.round(data * full), -full, full - 1).astype(kind).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def pcm16_forms(clip: np.ndarray, folder: Path) -> tuple[list[Any], np.ndarray]:
    """The 16-bit WAV forms of a clip a pipeline takes (a path, its bytes, the int16 samples) and the float clip
    they all decode to (what transformers gets as an array)."""
    data = wav_bytes(clip, width=2)
    path = folder / "clip.wav"
    path.write_bytes(data)
    pcm16 = np.clip(np.round(clip * 32768), -32768, 32767).astype(np.int16)  # what wav_bytes writes
    return [str(path), data, pcm16], pcm16.astype(np.float32) / 32768.0
