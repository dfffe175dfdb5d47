"""The export recipe of each pipeline task: optimum task, torch model class, output to compare.

Adding a task to the export stage is one row in `EXPORT_TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxpipe.registry import normalize_task

from .errors import UnsupportedTaskError


@dataclass(frozen=True)
class ExportTask:
    """How to export and validate one pipeline task."""

    task: str  # canonical pipeline task name
    optimum_task: str  # task name for optimum.exporters.onnx.main_export
    model_class: str  # transformers auto class that loads the torch reference
    outputs: tuple[str, ...]  # outputs compared against torch (several are stacked on a new last axis)
    token_level: bool  # output has a sequence axis: compare only where attention_mask == 1
    # "top1": fraction of rows (real tokens when token-level) whose argmax over class_axis agrees;
    # "span": fraction of rows whose argmax over the real tokens agrees, per output (QA start/end);
    # "cosine": min cosine of mean-pooled rows; "order": one score per row, row pairs in torch's order
    metric: str
    text_pairs: bool = False  # also validate on a batch of text pairs
    # optimum's library_name: without it, a folder holding sentence_*.json files is exported as a whole
    # sentence-transformers model (outputs token_embeddings + sentence_embedding, not the transformers outputs)
    optimum_library: str = "transformers"
    # "image": validated and calibrated on generated pictures (image_samples.py); "image-text": pictures
    # plus tokenized captions (CLIP); "image-question": each picture with one tokenized question (ViLT);
    # "document": made-up (word, box) forms with a question each, and a picture for LayoutLMv3 (document_samples.py)
    modality: str = "text"
    class_axis: int = -1  # the axis "top1" takes the argmax over (1 for per-pixel logits (B, C, H, W))
    # who writes the plain ONNX graph (convert.py): "optimum" (main_export), or "vilt" (vilt.py: torch.onnx
    # with an export-friendly patch embedding, for ViLT, which optimum does not export), "document"
    # (document_export.py: optimum on a model loaded for document QA, LayoutLM v1 included)
    exporter: str = "optimum"
    # "graph": one graph validated by `metric` (graph_export.py); "generation": graphs with a KV cache, written and
    # validated by generative.py (logits and greedy tokens)
    kind: str = "graph"
    # outputs added to optimum's graph when the model returns them (extra_outputs.py): pooler_output for `pool=True`
    extra_outputs: tuple[str, ...] = ()


def _generation(task: str, optimum_task: str, model_class: str) -> ExportTask:
    """The row of a generation task (exported with optimum's -with-past task, validated by generative_validate)."""
    return ExportTask(task, optimum_task, model_class, ("logits",), True, "greedy", kind="generation")


EXPORT_TASKS: dict[str, ExportTask] = {
    t.task: t
    for t in (
        ExportTask(
            task="text-classification",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            text_pairs=True,
        ),
        ExportTask(  # a cross-encoder (reranker): a one-logit classifier over (query, document) pairs
            task="text-ranking",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            outputs=("logits",),
            token_level=False,
            metric="order",
            text_pairs=True,
        ),
        ExportTask(
            task="zero-shot-classification",
            optimum_task="text-classification",
            model_class="AutoModelForSequenceClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            text_pairs=True,
        ),
        ExportTask(
            task="token-classification",
            optimum_task="token-classification",
            model_class="AutoModelForTokenClassification",
            outputs=("logits",),
            token_level=True,
            metric="top1",
        ),
        ExportTask(
            task="question-answering",
            optimum_task="question-answering",
            model_class="AutoModelForQuestionAnswering",
            outputs=("start_logits", "end_logits"),
            token_level=True,
            metric="span",
            text_pairs=True,
        ),
        ExportTask(
            task="fill-mask",
            optimum_task="fill-mask",
            model_class="AutoModelForMaskedLM",
            outputs=("logits",),
            token_level=True,
            metric="top1",
        ),
        ExportTask(
            task="feature-extraction",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=True,
            metric="cosine",
        ),
        ExportTask(  # the feature-extraction graph; the runtime adds the folder's sentence-transformers modules
            task="sentence-similarity",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=True,
            metric="cosine",
        ),
        ExportTask(  # the fill-mask graph; the runtime pools log(1 + relu(logits)) into a SPLADE vector
            task="sparse-embedding",
            optimum_task="fill-mask",
            model_class="AutoModelForMaskedLM",
            outputs=("logits",),
            token_level=True,
            metric="top1",
        ),
        ExportTask(  # the feature-extraction graph; the runtime applies the ColBERT projection (1_Dense) per token
            task="multi-vector-embedding",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=True,
            metric="cosine",
        ),
        ExportTask(  # BGE-M3: the feature-extraction graph; bge_m3_heads.py converts sparse_linear.pt / colbert_linear.pt
            task="hybrid-embedding",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=True,
            metric="cosine",
        ),
        ExportTask(
            task="image-classification",
            optimum_task="image-classification",
            model_class="AutoModelForImageClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="image",
        ),
        ExportTask(  # top1 over each query's class logits joined with its box: a changed box also counts
            task="object-detection",
            optimum_task="object-detection",
            model_class="AutoModelForObjectDetection",
            outputs=("logits", "pred_boxes"),
            token_level=False,
            metric="top1",
            modality="image",
        ),
        ExportTask(
            task="image-segmentation",
            optimum_task="semantic-segmentation",
            model_class="AutoModelForSemanticSegmentation",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="image",
            class_axis=1,
        ),
        ExportTask(
            task="zero-shot-image-classification",
            optimum_task="zero-shot-image-classification",
            model_class="AutoModelForZeroShotImageClassification",
            outputs=("logits_per_image",),
            token_level=False,
            metric="top1",
            modality="image-text",
        ),
        ExportTask(  # OWL-ViT / OWLv2: every picture against the captions (text rows split evenly among the images)
            task="zero-shot-object-detection",
            optimum_task="zero-shot-object-detection",
            model_class="AutoModelForZeroShotObjectDetection",
            outputs=("logits", "pred_boxes"),
            token_level=False,
            metric="top1",
            modality="image-text",
        ),
        ExportTask(  # vision backbones (ViT, DINOv2, CLIP vision tower): last_hidden_state, plus pooler_output for pool=True
            task="image-feature-extraction",
            optimum_task="feature-extraction",
            model_class="AutoModel",
            outputs=("last_hidden_state",),
            token_level=False,
            metric="cosine",
            modality="image",
            extra_outputs=("pooler_output",),
        ),
        ExportTask(  # DPT, GLPN: cosine of the depth maps (summed over rows)
            task="depth-estimation",
            optimum_task="depth-estimation",
            model_class="AutoModelForDepthEstimation",
            outputs=("predicted_depth",),
            token_level=False,
            metric="cosine",
            modality="image",
        ),
        ExportTask(  # Swin2SR super-resolution: cosine of the reconstructions
            task="image-to-image",
            optimum_task="image-to-image",
            model_class="AutoModelForImageToImage",
            outputs=("reconstruction",),
            token_level=False,
            metric="cosine",
            modality="image",
        ),
        ExportTask(
            task="audio-classification",
            optimum_task="audio-classification",
            model_class="AutoModelForAudioClassification",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="audio",
        ),
        ExportTask(  # CTC models (wav2vec2 family); top1 per logit frame
            task="automatic-speech-recognition",
            optimum_task="automatic-speech-recognition",
            model_class="AutoModelForCTC",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="audio",
        ),
        ExportTask(  # optimum has no ViLT config: exported by vilt.py; optimum_task is only recorded
            task="visual-question-answering",
            optimum_task="visual-question-answering",
            model_class="AutoModelForVisualQuestionAnswering",
            outputs=("logits",),
            token_level=False,
            metric="top1",
            modality="image-question",
            exporter="vilt",
        ),
        ExportTask(  # LayoutLM v1 / LayoutLMv3 (document_export.py); span agreement over every position: LayoutLMv3's
            # logits run over the text tokens then the image patches, so the comparison takes no text mask
            task="document-question-answering",
            optimum_task="question-answering",
            model_class="AutoModelForDocumentQuestionAnswering",
            outputs=("start_logits", "end_logits"),
            token_level=False,
            metric="top1",
            modality="document",
            class_axis=1,
            exporter="document",
        ),
        ExportTask(  # VisionEncoderDecoder (ViT + GPT-2, TrOCR): encoder + merged decoder (vision_encoder_decoder_export.py)
            "image-to-text", "image-to-text-with-past", "AutoModelForVision2Seq", ("logits",), True, "greedy",
            modality="image", kind="generation",
        ),
        ExportTask(  # VITS / SpeechT5 + vocoder: several graphs, noise drawn by the runtime (text_to_audio_export.py)
            "text-to-audio", "text-to-audio", "AutoModelForTextToWaveform", ("waveform",), False, "cosine",
            kind="text-to-audio",
        ),
        _generation("text-generation", "text-generation-with-past", "AutoModelForCausalLM"),
        _generation("text2text-generation", "text2text-generation-with-past", "AutoModelForSeq2SeqLM"),
        _generation("summarization", "text2text-generation-with-past", "AutoModelForSeq2SeqLM"),
        _generation("translation", "text2text-generation-with-past", "AutoModelForSeq2SeqLM"),
    )
}


# recipes that replace a task's row for one architecture (config.json `architectures`): (task, architecture) -> recipe
ARCHITECTURE_RECIPES: dict[tuple[str, str], ExportTask] = {
    # DETR panoptic: class logits + per-query mask logits; top1 over each query's class logits joined with its
    # flattened mask logits, so a changed mask also counts
    ("image-segmentation", "DetrForSegmentation"): ExportTask(
        task="image-segmentation",
        optimum_task="image-segmentation",
        model_class="AutoModelForImageSegmentation",
        outputs=("logits", "pred_masks"),
        token_level=False,
        metric="top1",
        modality="image",
    ),
}


def recipe_for_checkpoint(recipe: ExportTask, config: dict) -> ExportTask:
    """The recipe for this checkpoint: the architecture's own row where ARCHITECTURE_RECIPES has one."""
    for architecture in config.get("architectures") or []:
        if (recipe.task, architecture) in ARCHITECTURE_RECIPES:
            return ARCHITECTURE_RECIPES[recipe.task, architecture]
    return recipe


def export_task(task: str) -> ExportTask:
    """The export recipe of a task name or alias; UnknownTaskError or UnsupportedTaskError when there is none."""
    name = normalize_task(task)
    if name not in EXPORT_TASKS:
        raise UnsupportedTaskError(
            f"The export stage cannot export task {name!r} yet; it exports {', '.join(sorted(EXPORT_TASKS))}."
        )
    return EXPORT_TASKS[name]
