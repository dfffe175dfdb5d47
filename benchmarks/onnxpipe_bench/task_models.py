"""Real-size random-weight checkpoints for the task families of issue 18: image-feature-extraction (ViT-base),
depth-estimation (GLPN), image-to-image (Swin2SR), zero-shot-object-detection (OWL-ViT),
document-question-answering (LayoutLMv3), image-to-text (ViT + GPT-2) and text-to-audio (VITS).

Every configuration writes the key fields of a published hub model's config.json from offline knowledge (there is no
hub here); each function names the model it mirrors. Speed does not depend on weight values. Tokenizers are built
offline: bert-base-uncased's WordPiece for OWL-ViT's captions (CLIP's BPE vocabulary is not on this machine: a label
is a handful of tokens either way, padded to the same 16), and a byte-level BPE trained on the harness passage and
padded with fillers to RoBERTa's 50,265 ids for LayoutLMv3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .generation_models import byte_bpe
from .models import wordpiece_tokenizer

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
OWL_TEXT_TOKENS = 16  # OWL-ViT's text max_position_embeddings: every label is padded to it
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as in RoBERTa's (and LayoutLMv3's) vocabulary


def vit_base_in21k_config() -> Any:
    """google/vit-base-patch16-224-in21k: ViT-B/16 at 224x224 (768 wide, 12 layers, 12 heads, MLP 3072) with its
    pooler (tanh(dense(CLS))); 86.4M parameters."""
    import transformers

    return transformers.ViTConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, image_size=224,
        patch_size=16, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True,
    )


def _vit_base_in21k(folder: Path) -> tuple[Any, Any]:
    """ViT-base-in21k (ViTModel with its pooler) and its processor (bilinear resize to 224x224, mean and std 0.5)."""
    import transformers

    processor = transformers.ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return transformers.ViTModel(vit_base_in21k_config()), processor


def glpn_kitti_config() -> Any:
    """vinvino02/glpn-kitti: GLPN on a Mix Transformer-B4 encoder (depths 3/8/27/3, widths 64/128/320/512), decoder
    width 64, max depth 80 m (KITTI); 61.2M parameters."""
    import transformers

    return transformers.GLPNConfig(
        num_encoder_blocks=4, depths=[3, 8, 27, 3], sr_ratios=[8, 4, 2, 1], hidden_sizes=[64, 128, 320, 512],
        patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2], num_attention_heads=[1, 2, 5, 8], mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=64, max_depth=80, head_in_index=-1,
    )


def _glpn_kitti(folder: Path) -> tuple[Any, Any]:
    """GLPN-KITTI and its processor: no resize beyond rounding each side down to a multiple of 32 (a 480x640 picture
    runs at 480x640)."""
    import transformers

    return transformers.GLPNForDepthEstimation(glpn_kitti_config()), transformers.GLPNImageProcessor(size_divisor=32)


def swin2sr_classical_x2_config() -> Any:
    """caidas/swin2SR-classical-sr-x2-64: embed dim 180, 6 residual Swin stages of 6 layers (6 heads), window 8,
    MLP x2, one-conv residual connections, pixel-shuffle x2 upsampler; 12.1M parameters."""
    import transformers

    return transformers.Swin2SRConfig(
        image_size=64, patch_size=1, num_channels=3, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8,
        mlp_ratio=2.0, upscale=2, img_range=1.0, resi_connection="1conv", upsampler="pixelshuffle",
    )


def _swin2sr_classical_x2(folder: Path) -> tuple[Any, Any]:
    """Swin2SR classical x2 and its processor (rescale, pad to a multiple of 8)."""
    import transformers

    model = transformers.Swin2SRForImageSuperResolution(swin2sr_classical_x2_config())
    return model, transformers.Swin2SRImageProcessor(do_rescale=True, do_pad=True, size_divisor=8)


def owlvit_base_patch32_config() -> Any:
    """google/owlvit-base-patch32: CLIP B/32 towers (text 512 wide, 12 layers, 8 heads, 16 positions, 49,408 ids;
    vision 768 wide, 12 layers, 12 heads, 32-pixel patches at 768x768 -> 576 boxes), projection 512; 153.2M."""
    import transformers

    text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                max_position_embeddings=OWL_TEXT_TOKENS, pad_token_id=0)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=768, patch_size=32)
    return transformers.OwlViTConfig(text_config=text, vision_config=vision, projection_dim=512)


def _owlvit_base_patch32(folder: Path) -> tuple[Any, Any]:
    """OWL-ViT B/32, its processor (bicubic resize to 768x768, CLIP's mean and std) and a WordPiece tokenizer of
    16 tokens (see the module's docstring)."""
    import transformers

    tokenizer = wordpiece_tokenizer("bert", 30522, OWL_TEXT_TOKENS, model_input_names=["input_ids", "attention_mask"])
    images = transformers.OwlViTImageProcessor(
        size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768}, resample=3,
        image_mean=CLIP_MEAN, image_std=CLIP_STD,
    )
    tokenizer.save_pretrained(str(folder))  # beside the image processor: OwlViTProcessor takes CLIP tokenizers only
    return transformers.OwlViTForObjectDetection(owlvit_base_patch32_config()), images


def layoutlmv3_base_config() -> Any:
    """microsoft/layoutlmv3-base: RoBERTa-base text (768 wide, 12 layers, 50,265 ids, 514 positions), 2-D positions
    (coordinate and shape embeddings 128), 1-D / 2-D relative attention biases, 224x224 page patches of 16; 125.9M
    with the QA head."""
    import transformers

    return transformers.LayoutLMv3Config(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, max_2d_position_embeddings=1024, coordinate_size=128,
        shape_size=128, has_relative_attention_bias=True, rel_pos_bins=32, max_rel_pos=128, rel_2d_pos_bins=64,
        max_rel_2d_pos=256, has_spatial_attention_bias=True, visual_embed=True, input_size=224, patch_size=16,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
    )


def _layoutlmv3_base(folder: Path) -> tuple[Any, Any]:
    """LayoutLMv3-base for extractive QA, its byte-level BPE tokenizer (512 tokens, RoBERTa's specials) and its
    processor at 224x224 with OCR off (the benchmark gives word_boxes, so no engine times tesseract)."""
    import tempfile

    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = byte_bpe(50265, ROBERTA_SPECIALS, Path(tmp))
        tokenizer = transformers.LayoutLMv3TokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=512)
    tokenizer.save_pretrained(str(folder))
    processor = transformers.LayoutLMv3ImageProcessor(size={"height": 224, "width": 224}, apply_ocr=False,
                                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return transformers.LayoutLMv3ForQuestionAnswering(layoutlmv3_base_config()), processor


def vit_gpt2_config() -> Any:
    """nlpconnect/vit-gpt2-image-captioning: a ViT-B/16 encoder at 224x224 and a GPT-2 (124M) decoder with
    cross-attention, 50,257 ids, <|endoftext|> (50256) as decoder start, pad and end; 239.2M parameters."""
    import transformers

    encoder = transformers.ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, image_size=224, patch_size=16)
    decoder = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                                      bos_token_id=50256, eos_token_id=50256, add_cross_attention=True, is_decoder=True)
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = 50256
    return config


def _vit_gpt2(folder: Path) -> tuple[Any, Any]:
    """The ViT + GPT-2 captioner, its processor (224x224, mean and std 0.5) and a byte-level BPE tokenizer padded to
    GPT-2's 50,257 ids with <|endoftext|> as its last id, as GPT-2's."""
    import json
    import tempfile

    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = byte_bpe(50256, [], Path(tmp))  # ids 0..50255; <|endoftext|> takes 50256, as in GPT-2
        table = json.loads(vocab.read_text(encoding="utf-8"))
        table["<|endoftext|>"] = 50256
        vocab.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
        tokenizer = transformers.GPT2TokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=1024)
    tokenizer.save_pretrained(str(folder))
    model = transformers.VisionEncoderDecoderModel(config=vit_gpt2_config())
    model.generation_config = transformers.GenerationConfig.from_model_config(model.config)
    processor = transformers.ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model, processor


# a 38-symbol character vocabulary as facebook/mms-tts-eng's (letters, digits, apostrophe, hyphens, space, "_" pad)
MMS_VOCAB = ["_", " ", "'", "-", "\u2013", *"abcdefghijklmnopqrstuvwxyz", *"0123456"]


def mms_tts_eng_config() -> Any:
    """facebook/mms-tts-eng's VITS (transformers' VitsConfig defaults mirror it): 192-wide text encoder of 6 layers,
    a stochastic duration predictor, 4 prior flows, HiFi-GAN upsampling 8x8x2x2 from 512 channels at 16 kHz; 36.3M
    parameters. One change: noise_scale_duration 0 instead of 0.8 (see _mms_tts_eng)."""
    import transformers

    return transformers.VitsConfig(
        vocab_size=len(MMS_VOCAB), hidden_size=192, num_hidden_layers=6, num_attention_heads=2, window_size=4,
        ffn_dim=768, flow_size=192, spectrogram_bins=513, upsample_initial_channel=512, upsample_rates=[8, 8, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4], resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], prior_encoder_num_flows=4,
        prior_encoder_num_wavenet_layers=4, posterior_encoder_num_wavenet_layers=16, wavenet_kernel_size=5,
        use_stochastic_duration_prediction=True, noise_scale=0.667, noise_scale_duration=0.0, sampling_rate=16000,
    )


def _mms_tts_eng(folder: Path) -> tuple[Any, Any]:
    """VITS at MMS-TTS English's size and its character tokenizer (blanks between characters, no phonemizer). The
    duration noise is off (noise_scale_duration 0 in config.json, which every engine reads): torch and onnxpipe draw
    their noises from different generators, so with it on their audio lengths, and so their work, would differ. The
    prior's noise (noise_scale 0.667) changes values, not lengths, and stays on."""
    import json

    import transformers

    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(MMS_VOCAB)}), encoding="utf-8")
    tokenizer = transformers.VitsTokenizer(str(folder / "vocab.json"), pad_token="_", unk_token="_", add_blank=True,
                                           normalize=True, phonemize=False)
    return transformers.VitsModel(mms_tts_eng_config()), tokenizer


# arch -> (pipeline task, builder of (model, processor) that may write tokenizer files into the folder)
TASK_BUILDERS: dict[str, tuple[str, Callable[[Path], tuple[Any, Any]]]] = {
    "vit-base-in21k": ("image-feature-extraction", _vit_base_in21k),
    "glpn-kitti": ("depth-estimation", _glpn_kitti),
    "swin2sr-classical-x2": ("image-to-image", _swin2sr_classical_x2),
    "owlvit-base-patch32": ("zero-shot-object-detection", _owlvit_base_patch32),
    "layoutlmv3-base": ("document-question-answering", _layoutlmv3_base),
    "vit-gpt2": ("image-to-text", _vit_gpt2),
    "mms-tts-eng": ("text-to-audio", _mms_tts_eng),
}
# arch -> its configuration alone (cheap: no weights), for checks of the published fields
TASK_CONFIGS: dict[str, Callable[[], Any]] = {
    "vit-base-in21k": vit_base_in21k_config,
    "glpn-kitti": glpn_kitti_config,
    "swin2sr-classical-x2": swin2sr_classical_x2_config,
    "owlvit-base-patch32": owlvit_base_patch32_config,
    "layoutlmv3-base": layoutlmv3_base_config,
    "vit-gpt2": vit_gpt2_config,
    "mms-tts-eng": mms_tts_eng_config,
}


def build_task_checkpoint(arch: str, output: Path, seed: int = 0) -> Path:
    """Save a random-weight real-size TASK_BUILDERS checkpoint with its processor (and tokenizer) files."""
    import torch

    output = Path(output)
    if (output / "config.json").is_file():
        return output
    torch.manual_seed(seed)
    output.mkdir(parents=True, exist_ok=True)
    model, processor = TASK_BUILDERS[arch][1](output)
    model.eval().save_pretrained(str(output))
    processor.save_pretrained(str(output))
    return output
