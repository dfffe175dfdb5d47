"""Offline factory of a tiny random Whisper checkpoint (WhisperForConditionalGeneration) and its test audio.

The tokenizer is a byte-level BPE trained on tiny_tokenizers.CORPUS followed by Whisper's special tokens in
Whisper's order (<|endoftext|>, <|startoftranscript|>, language tokens, <|translate|>, <|transcribe|>,
<|startoflm|>, <|startofprev|>, <|nocaptions|>, <|notimestamps|>) and the 1501 timestamp tokens
<|0.00|> .. <|30.00|>, saved with WhisperTokenizerFast.save_pretrained. generation_config.json carries what
a hub Whisper's does (lang_to_id, task_to_id, forced_decoder_ids with an undefined language, no_timestamps_token_id,
suppress_tokens, begin_suppress_tokens, max_initial_timestamp_index, alignment_heads), with max_length 48 to keep
decoding short.

Weights are drawn with a fixed seed and a larger scale than transformers' default, so transcripts depend on
the audio; the timestamp rows of the (tied) output embedding are scaled so that text and timestamps both
appear when timestamps are asked for (the tests assert both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000
BPE_VOCAB = 400
LANGS = ("en", "de", "fr", "es")
MAX_LENGTH = 48
SEED = 3


def special_tokens() -> list[str]:
    """Whisper's special tokens after the text vocabulary, in Whisper's order (timestamps excluded)."""
    return [
        "<|endoftext|>", "<|startoftranscript|>", *(f"<|{lang}|>" for lang in LANGS), "<|translate|>", "<|transcribe|>",
        "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
    ]


def build_tokenizer(folder: Path) -> Any:
    """WhisperTokenizerFast over a BPE trained on CORPUS; specials and timestamps appended; saved to `folder`."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer
    from transformers import AddedToken, WhisperTokenizerFast

    from support.tiny_tokenizers import CORPUS

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(list(CORPUS), vocab_size=BPE_VOCAB, min_frequency=1, show_progress=False)
    raw = Tokenizer.from_str(bpe._tokenizer.to_str())
    raw.add_special_tokens(special_tokens())
    raw.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(1501)])
    tok = WhisperTokenizerFast(
        tokenizer_object=raw, unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", add_prefix_space=False, additional_special_tokens=special_tokens(),
    )
    tok.model_max_length = 448
    tok.save_pretrained(str(folder))
    return tok


def generation_config(tok: Any) -> dict[str, Any]:
    """generation_config.json as a multilingual hub Whisper's (language left to detection)."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in special_tokens()}
    eot = ids["<|endoftext|>"]
    text_ids = sorted(i for t, i in tok.get_vocab().items() if i < eot)
    space = tok.convert_tokens_to_ids("Ġ")
    return {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot,
        "max_length": MAX_LENGTH,
        "begin_suppress_tokens": [space, eot],
        # a few text tokens, plus the specials hub checkpoints suppress
        "suppress_tokens": [*text_ids[10:14], ids["<|translate|>"], ids["<|transcribe|>"], ids["<|startoflm|>"],
                            ids["<|startofprev|>"], ids["<|nocaptions|>"]],
        "forced_decoder_ids": [[1, None], [2, ids["<|transcribe|>"]]],
        "lang_to_id": {f"<|{lang}|>": ids[f"<|{lang}|>"] for lang in LANGS},
        "task_to_id": {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "is_multilingual": True,
        "max_initial_timestamp_index": 50,
        "alignment_heads": [[0, 1], [1, 0], [1, 1]],  # (decoder layer, head) pairs: word timestamps
        "transformers_version": "4.57.6",
    }


def build_whisper(folder: Path) -> Path:
    """Save a tiny WhisperForConditionalGeneration checkpoint (model, tokenizer, feature extractor, generation
    config) into `folder`."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    gen = generation_config(tok)
    eot = gen["eos_token_id"]
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=48, encoder_layers=1, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=96, decoder_ffn_dim=96,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=gen["decoder_start_token_id"],
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, begin_suppress_tokens=None, suppress_tokens=None,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    )
    torch.manual_seed(SEED)
    model = WhisperForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) * 1.5 / fan_in**0.5)
        embed = model.model.decoder.embed_tokens.weight  # tied with proj_out
        embed[gen["no_timestamps_token_id"] + 1 :] *= 0.35  # timestamps: likely after text, not everywhere
        embed[eot] *= 0.8
    model.eval()
    _audio_dependent_languages(model, gen)
    model.save_pretrained(str(folder))  # its generation_config.json is replaced by the hub-style one below
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2), encoding="utf-8")
    WhisperFeatureExtractor(feature_size=80, sampling_rate=RATE).save_pretrained(str(folder))
    return folder


def _audio_dependent_languages(model: Any, gen: dict[str, Any]) -> None:
    """Remove from each language token's output row its component along the mean decoder state after
    <|startoftranscript|>, so that language detection follows the audio instead of always picking one language."""
    import torch
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=RATE)
    clips = [clip(2.0, kind, seed) for kind in ("tone", "noise", "speechlike", "chirp") for seed in range(2)]
    features = torch.from_numpy(extractor(clips, sampling_rate=RATE, return_tensors="np")["input_features"])
    with torch.no_grad():
        start = torch.full((len(clips), 1), gen["decoder_start_token_id"])
        states = model.model(input_features=features, decoder_input_ids=start).last_hidden_state[:, 0]
        mean = states.mean(0)
        embed = model.model.decoder.embed_tokens.weight
        for token in gen["lang_to_id"].values():
            embed[token] -= (embed[token] @ mean) / (mean @ mean) * mean


def clip(seconds: float, kind: str, seed: int = 0) -> np.ndarray:
    """A float32 test clip at 16 kHz: "tone", "chirp", "noise", "speechlike" (vowel-like harmonics) or "silence"
    (the export's own generator of validation clips)."""
    from onnxpipe_export.audio_samples import generated_clip

    return generated_clip(seconds, RATE, kind, seed)


def varied(seconds: float, seed: int = 0) -> np.ndarray:
    """A clip whose content changes every couple of seconds (tones, noise, speech-like), for long audio."""
    kinds = ("speechlike", "tone", "noise", "chirp")
    parts, left, i = [], seconds, 0
    while left > 0:
        piece = min(left, 1.7 + (i % 3) * 0.6)
        parts.append(clip(piece, kinds[(i + seed) % len(kinds)], seed=seed * 100 + i))
        left -= piece
        i += 1
    return np.concatenate(parts)
