"""Tiny random document question-answering checkpoints (LayoutLMv3 and LayoutLM v1), built offline, and a
made-up invoice as (word, box) pairs and as a picture.

LayoutLMv3 takes the byte-level BPE tokenizer of tiny_tokenizers.py through LayoutLMv3TokenizerFast and a
64x64 LayoutLMv3ImageProcessor (apply_ocr off: tests give word_boxes, or run tesseract themselves); LayoutLM v1
takes the WordPiece one through LayoutLMTokenizerFast and no image. Weights are drawn with a wide init so that
the question and the boxes, not position alone, decide the answer span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from support import tiny_tokenizers

ARCHS = ("layoutlmv3", "layoutlm")
MAX_LENGTH = 64  # tokenizer model_max_length: long documents are cut into several windows
IMAGE_SIZE = 64
INIT_STD = 0.2
HEAD_STD = 0.5

# a made-up receipt: words with boxes normalized to 0-1000, as transformers' word_boxes takes them
WORD_BOXES: tuple[tuple[str, list[int]], ...] = tuple(
    (word, [x, y, x + 30 + 12 * len(word), y + 25])
    for word, x, y in (
        ("Invoice", 60, 40), ("number", 180, 40), ("4521", 330, 40),
        ("Date", 60, 110), ("2024-03-15", 180, 110),
        ("Bill", 60, 180), ("to", 150, 180), ("Señor", 200, 180), ("Muñoz", 330, 180),
        ("Coffee", 60, 300), ("2", 600, 300), ("$3.50", 800, 300),
        ("Pizza", 60, 360), ("1", 600, 360), ("$19.99", 800, 360),
        ("Tax", 60, 440), ("7%", 600, 440), ("$1.89", 800, 440),
        ("Total", 60, 520), ("due", 180, 520), ("$28.88", 800, 520),
        ("Thank", 60, 700), ("you", 200, 700), ("for", 290, 700), ("visiting", 370, 700), ("Paris!", 550, 700),
    )
)
QUESTIONS = ("What is the invoice number?", "What is the total?", "Who is the bill for?", "When was it issued?", "tax")


def _layoutlmv3(folder: Path) -> tuple[Any, Any]:
    from transformers import LayoutLMv3Config, LayoutLMv3ForQuestionAnswering, LayoutLMv3ImageProcessor

    tokenizer = tiny_tokenizers.build_tokenizer(
        "bpe", folder, model_max_length=MAX_LENGTH, tokenizer_class="LayoutLMv3TokenizerFast"
    )
    config = LayoutLMv3Config(
        vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        coordinate_size=8, shape_size=8, max_position_embeddings=MAX_LENGTH + 2, input_size=IMAGE_SIZE, patch_size=16,
        initializer_range=INIT_STD, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, rel_pos_bins=16, max_rel_pos=32, rel_2d_pos_bins=16, max_rel_2d_pos=64,
    )
    processor = LayoutLMv3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, apply_ocr=False)
    return LayoutLMv3ForQuestionAnswering(config), processor


def _layoutlm(folder: Path) -> tuple[Any, Any]:
    from transformers import LayoutLMConfig, LayoutLMForQuestionAnswering

    tokenizer = tiny_tokenizers.build_tokenizer(
        "wordpiece", folder, model_max_length=MAX_LENGTH, tokenizer_class="LayoutLMTokenizerFast"
    )
    config = LayoutLMConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=MAX_LENGTH, initializer_range=INIT_STD, pad_token_id=tokenizer.pad_token_id,
    )
    return LayoutLMForQuestionAnswering(config), None


BUILDERS: dict[str, Callable[[Path], tuple[Any, Any]]] = {"layoutlmv3": _layoutlmv3, "layoutlm": _layoutlm}


def build_document_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny random `arch` document-QA model, its tokenizer (and image processor) into `folder`."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model, processor = BUILDERS[arch](folder)
    with torch.no_grad():  # sharp start/end logits: the span depends on the tokens, not only on their position
        for name, weight in model.named_parameters():
            if name.startswith("qa_outputs") and name.endswith("weight"):
                weight.normal_(0.0, HEAD_STD)
    model.eval()
    model.save_pretrained(str(folder))
    if processor is not None:
        processor.save_pretrained(str(folder))
    return folder


def document_picture(words: tuple[tuple[str, list[int]], ...] = WORD_BOXES, width: int = 500, height: int = 400) -> Any:
    """A white PIL picture with each word drawn in black at its box: a document for the image inputs."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for word, box in words:
        draw.text((box[0] * width / 1000, box[1] * height / 1000), word, fill="black")
    return image


def reference_pipeline(checkpoint: Path) -> Any:
    """transformers.pipeline("document-question-answering") on `checkpoint`, the parity reference.

    transformers 4.57's pipeline passes LayoutLMv3 its image as `image=` (LayoutLMv3 takes `pixel_values`: a
    TypeError) and reads start/end logits over text and image tokens against a text-length mask (a broadcasting
    ValueError), so with an image it fails on every LayoutLMv3 checkpoint. For LayoutLMv3 the reference's model
    therefore takes `image` as pixel_values and returns the logits of the text tokens (which come first), which
    is what the pipeline means to compute; LayoutLM v1 runs unchanged.
    """
    import transformers

    reference = transformers.pipeline("document-question-answering", model=str(checkpoint), device="cpu")
    if reference.model.config.model_type == "layoutlmv3":
        forward = reference.model.forward

        def text_logits(image: Any = None, **inputs: Any) -> Any:
            outputs = forward(pixel_values=image, **inputs)
            n = inputs["input_ids"].shape[1]
            outputs.start_logits, outputs.end_logits = outputs.start_logits[:, :n], outputs.end_logits[:, :n]
            return outputs

        reference.model.forward = text_logits
    return reference
