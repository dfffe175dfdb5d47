"""Offline factory of tiny random vision checkpoints (model + image processor) and generated test images.

Weights are drawn with a fixed seed and a larger init than transformers' default, so that outputs
depend on the image (checked in test_vision_checkpoints.py); processors are saved with save_pretrained
so the folder carries preprocessor_config.json, as a hub checkpoint does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

LABELS = ("cat", "dog", "bird", "fish", "horse")


def _labels(n: int) -> dict[str, Any]:
    return {"id2label": {i: LABELS[i] for i in range(n)}, "label2id": {LABELS[i]: i for i in range(n)}}


def _vit():
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, initializer_range=0.2, **_labels(5),
    )
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    return ViTForImageClassification(config), processor


def _convnext():
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    config = ConvNextConfig(
        num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32, initializer_range=0.2, **_labels(5)
    )
    processor = ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, resample=3)
    return ConvNextForImageClassification(config), processor


def _detr():
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", out_features=["stage2"]
    )
    config = DetrConfig(
        use_timm_backbone=False, backbone=None, backbone_config=backbone, use_pretrained_backbone=False,
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8, init_std=0.2, **_labels(4),
    )
    processor = DetrImageProcessor(size={"shortest_edge": 48, "longest_edge": 80})
    return DetrForObjectDetection(config), processor


def _detr_panoptic():
    """DetrForSegmentation: four ResNet stages (the mask head's FPN reads three), 8 heads (its GroupNorm needs
    d_model + heads divisible by 8); the class head is scaled and "no object" pushed down so that queries pass
    the pipeline's 0.9 threshold and several labels occur, and the mask logits are kept out of saturation."""
    import torch
    from transformers import DetrConfig, DetrForSegmentation, DetrImageProcessor, ResNetConfig

    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = DetrConfig(
        use_timm_backbone=False, backbone=None, backbone_config=backbone, use_pretrained_backbone=False,
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=8, decoder_attention_heads=8,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=12, init_std=0.5, **_labels(4),
    )
    torch.manual_seed(1)
    model = DetrForSegmentation(config)
    with torch.no_grad():
        model.detr.class_labels_classifier.weight.mul_(2.0)
        model.detr.class_labels_classifier.bias[-1] = -5.0
        # smaller mask logits: saturated sigmoids would make every query's mask probability 1.0, all pixels ties
        model.mask_head.out_lay.weight.mul_(0.1)
    return model, DetrImageProcessor(size={"shortest_edge": 48, "longest_edge": 80}, format="coco_panoptic")


def _yolos():
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    config = YolosConfig(
        image_size=[32, 48], patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_detection_tokens=6, initializer_range=0.2, **_labels(4),
    )
    processor = YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64})
    model = YolosForObjectDetection(config)
    model.vit.embeddings.detection_tokens.data.normal_(0.0, 1.0)  # zeros at init: every query would be alike
    return model, processor


def _segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    config = SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
        strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
        initializer_range=0.2, **_labels(4),
    )
    processor = SegformerImageProcessor(size={"height": 32, "width": 32})
    return SegformerForSemanticSegmentation(config), processor


def _clip():
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    text = dict(vocab_size=_CLIP_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, bos_token_id=_CLIP_BOS,
                eos_token_id=_CLIP_EOS)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16, initializer_factor=4.0)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPModel(config), processor


ANSWERS = ("yes", "no", "2", "red", "cat", "dog", "a car", "snow")
VILT_MAX_TOKENS = 40  # ViLT's text position embeddings, as in dandelin/vilt-b32-finetuned-vqa


def _vilt():
    """A tiny ViLT answer classifier: 64-pixel shortest edge (images of 64x64 to 64x96 after rounding to 32),
    16-pixel patches over a 4x4 position grid that is interpolated to each image's patch grid."""
    import torch
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor

    config = ViltConfig(
        vocab_size=_VILT_VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        image_size=64, patch_size=16, max_position_embeddings=VILT_MAX_TOKENS, initializer_range=0.2,
        id2label=dict(enumerate(ANSWERS)), label2id={a: i for i, a in enumerate(ANSWERS)},
    )
    model = ViltForQuestionAnswering(config)
    with torch.no_grad():  # zeros at init: the interpolated position grid would change nothing
        model.vilt.embeddings.position_embeddings.normal_(0.0, 0.5)
        model.vilt.embeddings.cls_token.normal_(0.0, 0.5)
    return model, ViltImageProcessor(size={"shortest_edge": 64}, size_divisor=32)


_VILT_VOCAB = 0  # set from the tiny WordPiece tokenizer when a ViLT checkpoint is built
_CLIP_VOCAB = 0  # set from the tiny WordPiece tokenizer when a CLIP checkpoint is built
_CLIP_EOS = _CLIP_BOS = 0


def _clip_tokenizer(folder: Path) -> None:
    """The tiny WordPiece tokenizer of tiny_tokenizers.py, without token_type_ids (CLIP takes none), [SEP] as EOS.

    Not the byte-level BPE one: its </s> has id 2, which sends CLIP down its legacy pooling (the position of
    the highest token id), where every caption of a template pools the same token."""
    from transformers import AutoTokenizer

    from support import tiny_tokenizers

    global _CLIP_VOCAB, _CLIP_EOS, _CLIP_BOS
    tiny_tokenizers.build_tokenizer("wordpiece", folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(str(folder))
    _CLIP_VOCAB, _CLIP_EOS, _CLIP_BOS = len(tokenizer), tokenizer.sep_token_id, tokenizer.cls_token_id


BUILDERS: dict[str, tuple[str, Callable[[], Any]]] = {
    "vit": ("image-classification", _vit),
    "convnext": ("image-classification", _convnext),
    "detr": ("object-detection", _detr),
    "yolos": ("object-detection", _yolos),
    "segformer": ("image-segmentation", _segformer),
    "detr-panoptic": ("image-segmentation", _detr_panoptic),
    "clip": ("zero-shot-image-classification", _clip),
    "vilt": ("visual-question-answering", _vilt),
}


def build_vision_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny random `arch` model and its image processor into `folder`; return the folder."""
    import torch

    if arch == "clip":
        _clip_tokenizer(folder)
    if arch == "vilt":  # the BERT-style WordPiece tokenizer ViLT uses, 40 tokens at most
        from support import tiny_tokenizers

        global _VILT_VOCAB
        _VILT_VOCAB = len(tiny_tokenizers.build_tokenizer("wordpiece", folder, model_max_length=VILT_MAX_TOKENS))
    torch.manual_seed(seed)
    model, processor = BUILDERS[arch][1]()
    model.eval()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An HWC uint8 test picture: gradients, a block of colour and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phases = rng.uniform(0, 6.3, size=3)
    image = np.stack([127 + 100 * np.sin(x / max(width, 1) * 5 + y / max(height, 1) * 4 + p) for p in phases], -1)
    top, left = rng.integers(0, max(height // 2, 1)), rng.integers(0, max(width // 2, 1))
    image[top : top + max(height // 3, 1), left : left + max(width // 3, 1)] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 20, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def sample_images() -> list[Any]:
    """PIL images of varied sizes and modes: RGB gradients/noise, odd sizes, greyscale, RGBA, palette, 16-bit."""
    from PIL import Image

    rgb = [Image.fromarray(picture(h, w, seed)) for seed, (h, w) in enumerate(
        [(64, 48), (48, 64), (7, 300), (300, 7), (33, 33), (120, 90), (5, 5), (2, 2)]
    )]
    base = Image.fromarray(picture(40, 56, 99))
    noise = Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(50, 70, 3), dtype=np.uint8))
    sixteen = Image.fromarray(picture(36, 44, 5)[..., 0].astype(np.uint16) * 257)  # mode I;16
    return [*rgb, noise, base.convert("L"), base.convert("LA"), base.convert("RGBA"), base.convert("P"),
            base.convert("CMYK"), sixteen]


# -- issue 18: image-feature-extraction, depth-estimation, image-to-image ------------------------------------------
def _vit_base():
    """A ViTModel with its pooler (tanh(dense(CLS))): pool=True reads pooler_output."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, initializer_range=0.2)
    return ViTModel(config), ViTImageProcessor(size={"height": 32, "width": 32})


def _dinov2():
    """A Dinov2Model (pooler_output = the layer-normed CLS token) with DINOv2's BiT processor: bicubic resize of the
    shortest edge to 40, center crop 32."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          mlp_ratio=2, initializer_range=0.2)
    processor = BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                  image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    return Dinov2Model(config), processor


def _clip_vision():
    """CLIP's vision tower alone (CLIPVisionModel): pooler_output is the post-layer-normed CLS token."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, initializer_factor=4.0)
    return CLIPVisionModel(config), CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _dpt():
    """A DPT (ViT backbone) depth model at a fixed 32x32 input, as Intel/dpt-large is at 384x384 (the plain ViT
    DPT reshapes its tokens to a square grid, so its processor keeps keep_aspect_ratio off)."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 16, 32],
                       fusion_hidden_size=16, head_in_index=-1, initializer_range=0.2)
    return DPTForDepthEstimation(config), DPTImageProcessor(size={"height": 32, "width": 32})


def _glpn():
    """A GLPN depth model; its processor rounds each side down to a multiple of 32 (as vinvino02/glpn-kitti)."""
    from transformers import GLPNConfig, GLPNForDepthEstimation, GLPNImageProcessor

    config = GLPNConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1], hidden_sizes=[8, 16, 16, 32],
                        patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2], num_attention_heads=[1, 1, 2, 2],
                        mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=32, initializer_range=0.2)
    return GLPNForDepthEstimation(config), GLPNImageProcessor(size_divisor=32)


def _swin2sr():
    """A x2 Swin2SR super-resolution model (pixel-shuffle upsampler, window 4, processor padding to multiples of 8).
    An init range of 0.05 spreads the reconstruction over [0, 1] (std about 0.28, 11-14% of values clamped) instead
    of sitting at the mean (transformers' 0.02) or saturating (0.2)."""
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    config = Swin2SRConfig(image_size=16, patch_size=1, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                           upscale=2, upsampler="pixelshuffle", initializer_range=0.05)
    return Swin2SRForImageSuperResolution(config), Swin2SRImageProcessor(size_divisor=8)

BUILDERS.update({
    "vit-base": ("image-feature-extraction", _vit_base),
    "dinov2": ("image-feature-extraction", _dinov2),
    "clip-vision": ("image-feature-extraction", _clip_vision),
    "dpt": ("depth-estimation", _dpt),
    "glpn": ("depth-estimation", _glpn),
    "swin2sr": ("image-to-image", _swin2sr),
})


# -- issue 18: zero-shot-object-detection (OWL-ViT, OWLv2) -------------------------------------------------------
OWL_MAX_TOKENS = 16  # the OWL text encoders' max_position_embeddings (and their tokenizers' model_max_length)


class _ProcessorAndTokenizer:
    """An image processor and a tokenizer saved into one folder (build_vision_checkpoint saves the 'processor')."""

    def __init__(self, image_processor: Any, tokenizer: Any):
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def save_pretrained(self, folder: str) -> None:
        self.image_processor.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def _owl_tokenizer() -> Any:
    """The tiny CLIP tokenizer (WordPiece, no token_type_ids) with OWL's 16-token limit; sets _CLIP_VOCAB & co."""
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        _clip_tokenizer(Path(scratch))
        return AutoTokenizer.from_pretrained(
            scratch, model_input_names=["input_ids", "attention_mask"], model_max_length=OWL_MAX_TOKENS
        )


def _owl_configs() -> tuple[dict[str, Any], dict[str, Any]]:
    text = dict(vocab_size=_CLIP_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=OWL_MAX_TOKENS, pad_token_id=0,
                bos_token_id=_CLIP_BOS, eos_token_id=_CLIP_EOS)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4)
    return text, vision


def _owlvit():
    """A tiny OWL-ViT detector: 32x32 input (stretched, as OWL-ViT's processor does), 8-pixel patches -> 16 boxes;
    projection_dim = the text width, as the class head needs."""
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor

    tokenizer = _owl_tokenizer()
    text, vision = _owl_configs()
    config = OwlViTConfig(text_config=text, vision_config=vision, projection_dim=32, initializer_factor=4.0)
    processor = OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
    return OwlViTForObjectDetection(config), _ProcessorAndTokenizer(processor, tokenizer)


def _owlv2():
    """A tiny OWLv2 detector (pads to a square, then resizes to 32x32). Its class, box and objectness heads are
    left at torch's default N(0, 1) init by transformers, which saturates every score at 1.0 with the same boxes
    whatever the label: they are redrawn with std 0.1, so labels and images decide the output."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor

    tokenizer = _owl_tokenizer()
    text, vision = _owl_configs()
    model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32))
    with torch.no_grad():
        for head in (model.class_head, model.box_head, model.objectness_head):
            for parameter in head.parameters():
                parameter.normal_(0.0, 0.1)
    return model, _ProcessorAndTokenizer(Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer)


BUILDERS.update({
    "owlvit": ("zero-shot-object-detection", _owlvit),
    "owlv2": ("zero-shot-object-detection", _owlv2),
})
