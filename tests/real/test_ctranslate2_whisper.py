"""The CTranslate2 reader and the CTranslate2 -> transformers renaming of benchmarks/real_weights/whisper_base.py, on a
tiny random Whisper written in CTranslate2's binary format here (always on: no real weights, about a second)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.real_weights.whisper_base import hf_state_dict, read_ctranslate2  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
TYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}


def tiny_whisper() -> transformers.WhisperForConditionalGeneration:
    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=20, max_target_positions=12,
        pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2,
    )
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)  # random biases and norms too: every tensor must land in its place
    return model


def to_ctranslate2(model) -> dict[str, np.ndarray]:
    """The variables CTranslate2's Whisper converter writes (fused q/k/v with a zero key bias), as fp16."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {"decoder/pre_norm": np.array(1, np.int8), "encoder/num_heads": np.array(2, np.int16)}

    def copy(c: str, hf: str, kinds=(("weight", "weight"), ("bias", "bias"))) -> None:
        for ck, hk in kinds:
            out[f"{c}/{ck}"] = sd[f"{hf}.{hk}"]

    def fuse(c: str, hf: str, names: list[str]) -> None:
        out[f"{c}/weight"] = np.concatenate([sd[f"{hf}.{n}.weight"] for n in names])
        out[f"{c}/bias"] = np.concatenate([sd.get(f"{hf}.{n}.bias", np.zeros(16, np.float32)) for n in names])

    norm = (("gamma", "weight"), ("beta", "bias"))
    for side in ("encoder", "decoder"):
        copy(f"{side}/layer_norm", f"model.{side}.layer_norm", norm)
        out[f"{side}/position_encodings/encodings"] = sd[f"model.{side}.embed_positions.weight"]
        for i in range(2):
            c, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            fuse(f"{c}/self_attention/linear_0", f"{hf}.self_attn", ["q_proj", "k_proj", "v_proj"])
            copy(f"{c}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            copy(f"{c}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm", norm)
            copy(f"{c}/ffn/linear_0", f"{hf}.fc1")
            copy(f"{c}/ffn/linear_1", f"{hf}.fc2")
            copy(f"{c}/ffn/layer_norm", f"{hf}.final_layer_norm", norm)
            if side == "decoder":
                copy(f"{c}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                fuse(f"{c}/attention/linear_1", f"{hf}.encoder_attn", ["k_proj", "v_proj"])
                copy(f"{c}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
                copy(f"{c}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm", norm)
    copy("encoder/conv1", "model.encoder.conv1")
    copy("encoder/conv2", "model.encoder.conv2")
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    return {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in out.items()}


def write_ctranslate2(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> bytes:
    """CTranslate2's model.bin layout, binary version 6."""

    def string(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    parts = [struct.pack("<I", 6), string("WhisperSpec"), struct.pack("<II", 3, len(variables))]
    for name, value in variables.items():
        parts += [string(name), struct.pack("<B", value.ndim), struct.pack(f"<{value.ndim}I", *value.shape)]
        parts += [struct.pack("<BI", TYPE_IDS[value.dtype], value.nbytes), value.tobytes()]
    parts.append(struct.pack("<I", len(aliases)))
    parts += [string(alias) + string(target) for alias, target in aliases.items()]
    return b"".join(parts)


def test_a_ctranslate2_whisper_renamed_back_gives_the_same_logits():
    model = tiny_whisper()
    blob = write_ctranslate2(to_ctranslate2(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    variables = read_ctranslate2(blob)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    rebuilt = transformers.WhisperForConditionalGeneration(model.config).eval()
    missing, unexpected = rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in hf_state_dict(variables, layers=2).items()}, strict=False)
    assert (missing, unexpected) == (["proj_out.weight"], [])
    rebuilt.tie_weights()
    features = torch.randn(1, 80, 40)
    decoder_ids = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        model.half().float()  # the reference sees the same fp16 rounding as the CTranslate2 file
        expected = model(input_features=features, decoder_input_ids=decoder_ids).logits
        got = rebuilt(input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_the_reader_refuses_damaged_files():
    variables = {"encoder/num_heads": np.array(2, np.int16)}
    blob = write_ctranslate2(variables, {})
    with pytest.raises(ValueError, match="trailing bytes"):
        read_ctranslate2(blob + b"\0")
    with pytest.raises(ValueError, match="binary version 9"):
        read_ctranslate2(struct.pack("<I", 9) + blob[4:])


def test_a_nonzero_key_bias_is_not_whisper():
    variables = to_ctranslate2(tiny_whisper())
    variables["encoder/layer_0/self_attention/linear_0/bias"] = np.ones(48, np.float16)
    with pytest.raises(ValueError, match="key bias is not zero"):
        hf_state_dict(variables, layers=2)
