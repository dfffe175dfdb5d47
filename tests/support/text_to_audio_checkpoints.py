"""Offline factory of tiny random text-to-speech checkpoints: VITS (MMS-TTS style) and SpeechT5 + a HiFi-GAN vocoder.

Weights are drawn with a fixed seed and a larger init than transformers' default, so that the audio depends on the
text (the tests assert it). VITS gets a character vocabulary (vocab.json, as MMS-TTS checkpoints carry); SpeechT5 a
SentencePiece character model trained here on a few sentences (spm_char.model, as microsoft/speecht5_tts carries).
Both are deterministic in torch only with their noise switched off: VITS with noise_scale = noise_scale_duration = 0,
SpeechT5 with speech_decoder_prenet_dropout = 0 (its prenet applies dropout even in eval mode).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"
VITS_VOCAB = {"_": 0, " ": 1, "'": 2, "-": 3, **{c: i + 4 for i, c in enumerate(LETTERS)}, "<unk>": 30}
SPEAKER_DIM = 8
MEL_BINS = 8
TRAINING_TEXT = (
    "the quick brown fox jumps over the lazy dog",
    "Hello world, this is a tiny speech model.",
    "Numbers 0123456789 and punctuation: ! ? . , ; - '",
    "PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS",
)


def _seeded(model: Any, seed: int, scale: float) -> Any:
    """Redraw every weight matrix with a fixed seed and a scale that keeps outputs input-dependent."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.dim() >= 2:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) * scale / fan_in**0.5)
    return model.eval()


def build_vits(folder: Path, noise_scale: float = 0.0, noise_scale_duration: float = 0.0, **config: Any) -> Path:
    """A tiny VitsModel with a character vocabulary (add_blank, normalize, no phonemizer: MMS-TTS style)."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    settings = dict(
        vocab_size=len(VITS_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, window_size=2,
        ffn_dim=32, flow_size=8, spectrogram_bins=9, upsample_initial_channel=16, upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        depth_separable_num_layers=2, duration_predictor_num_flows=2, duration_predictor_filter_channels=16,
        prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1,
        wavenet_kernel_size=3, layerdrop=0.0, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        duration_predictor_dropout=0.0, noise_scale=noise_scale, noise_scale_duration=noise_scale_duration,
        sampling_rate=16000,
    )
    settings.update(config)
    model = _seeded(VitsModel(VitsConfig(**settings)), seed=1, scale=1.0)
    model.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(VITS_VOCAB), encoding="utf-8")
    tokenizer = VitsTokenizer(
        str(folder / "vocab.json"), pad_token="_", unk_token="<unk>", add_blank=True, normalize=True, phonemize=False
    )
    tokenizer.save_pretrained(folder)
    return folder


def _train_char_model(path: Path) -> Path:
    """A SentencePiece character model with SpeechT5's special ids (<s> 0, <pad> 1, </s> 2, <unk> 3)."""
    import io

    import sentencepiece as spm

    stream = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_TEXT), model_writer=stream, model_type="char", vocab_size=60,
        bos_id=0, pad_id=1, eos_id=2, unk_id=3, character_coverage=1.0, hard_vocab_limit=False,
        minloglevel=2,
    )
    path.write_bytes(stream.getvalue())
    return path


def build_hifigan(folder: Path) -> Path:
    """A tiny SpeechT5HifiGan vocoder over MEL_BINS bins, with random normalisation statistics."""
    import torch
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    config = SpeechT5HifiGanConfig(
        model_in_dim=MEL_BINS, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
    )
    vocoder = _seeded(SpeechT5HifiGan(config), seed=2, scale=1.0)
    with torch.no_grad():
        vocoder.mean.copy_(torch.linspace(-0.5, 0.5, MEL_BINS))
        vocoder.scale.copy_(torch.linspace(0.5, 1.5, MEL_BINS))
    vocoder.save_pretrained(folder)
    return folder


def build_speecht5(folder: Path, **config: Any) -> Path:
    """A tiny SpeechT5ForTextToSpeech with a character SentencePiece tokenizer; prenet dropout 0 (deterministic)."""
    import torch
    from transformers import SpeechT5Config, SpeechT5ForTextToSpeech, SpeechT5Tokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = SpeechT5Tokenizer(str(_train_char_model(folder / "spm_char.model")))
    settings = dict(
        vocab_size=len(tokenizer), hidden_size=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=MEL_BINS,
        speech_decoder_prenet_units=16, speech_decoder_prenet_dropout=0.0, speaker_embedding_dim=SPEAKER_DIM,
        speech_decoder_postnet_layers=2, speech_decoder_postnet_units=16, speech_decoder_postnet_kernel=3,
        speech_decoder_postnet_dropout=0.0, reduction_factor=2, max_speech_positions=1000, max_text_positions=200,
        encoder_max_relative_position=16, encoder_layerdrop=0.0, decoder_layerdrop=0.0, positional_dropout=0.0,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        apply_spec_augment=False,
    )
    settings.update(config)
    model = _seeded(SpeechT5ForTextToSpeech(SpeechT5Config(**settings)), seed=3, scale=1.0)
    with torch.no_grad():  # a stop head whose probability crosses 0.5 after 10-35 steps, at a step the text decides
        prob_out = model.speech_decoder_postnet.prob_out
        prob_out.weight.copy_(torch.randn(prob_out.weight.shape, generator=torch.Generator().manual_seed(0)))
        prob_out.bias.fill_(-1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def speaker_embedding(seed: int = 0) -> np.ndarray:
    """A (1, SPEAKER_DIM) float32 x-vector stand-in."""
    return np.random.default_rng(seed).standard_normal((1, SPEAKER_DIM)).astype(np.float32)
