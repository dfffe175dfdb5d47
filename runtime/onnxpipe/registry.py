"""The task table: canonical task names, their aliases, and the task a checkpoint's architecture implies.

Tables and the lookups over them only; `pipeline()` is in pipelines.py. Adding a task means one file under
`tasks/` and one line in `TASKS`.
"""

from __future__ import annotations

from typing import Optional

from onnxpipe.errors import UnknownTaskError

# canonical task name -> "module:class" under onnxpipe.tasks (imported only when asked for)
TASKS: dict[str, str] = {
    "text-classification": "text_classification:TextClassificationPipeline",
    "feature-extraction": "feature_extraction:FeatureExtractionPipeline",
    "sentence-similarity": "sentence_similarity:SentenceSimilarityPipeline",
    "token-classification": "token_classification:TokenClassificationPipeline",
    "question-answering": "question_answering:QuestionAnsweringPipeline",
    "fill-mask": "fill_mask:FillMaskPipeline",
    "zero-shot-classification": "zero_shot_classification:ZeroShotClassificationPipeline",
    "text-ranking": "text_ranking:TextRankingPipeline",
    "sparse-embedding": "sparse_embedding:SparseEmbeddingPipeline",
    "multi-vector-embedding": "multi_vector_embedding:MultiVectorEmbeddingPipeline",
    "hybrid-embedding": "hybrid_embedding:HybridEmbeddingPipeline",
    "image-classification": "image_classification:ImageClassificationPipeline",
    "object-detection": "object_detection:ObjectDetectionPipeline",
    "image-segmentation": "image_segmentation:ImageSegmentationPipeline",
    "zero-shot-image-classification": "zero_shot_image_classification:ZeroShotImageClassificationPipeline",
    "zero-shot-object-detection": "zero_shot_object_detection:ZeroShotObjectDetectionPipeline",
    "image-feature-extraction": "image_feature_extraction:ImageFeatureExtractionPipeline",
    "depth-estimation": "depth_estimation:DepthEstimationPipeline",
    "image-to-image": "image_to_image:ImageToImagePipeline",
    "image-to-text": "image_to_text:ImageToTextPipeline",
    "visual-question-answering": "visual_question_answering:VisualQuestionAnsweringPipeline",
    "document-question-answering": "document_question_answering:DocumentQuestionAnsweringPipeline",
    "audio-classification": "audio_classification:AudioClassificationPipeline",
    "automatic-speech-recognition": "automatic_speech_recognition:AutomaticSpeechRecognitionPipeline",
    "text-generation": "text_generation:TextGenerationPipeline",
    "text2text-generation": "text2text_generation:Text2TextGenerationPipeline",
    "summarization": "summarization:SummarizationPipeline",
    "translation": "translation:TranslationPipeline",
    "text-to-audio": "text_to_audio:TextToAudioPipeline",
}

# (canonical task, config.json model_type) -> "module:class" for a model family that needs its own pipeline class,
# a subclass of the task's class in TASKS (so isinstance against the task's class holds)
MODEL_TYPE_CLASSES: dict[tuple[str, str], str] = {
    ("automatic-speech-recognition", "whisper"): "whisper.pipeline:WhisperPipeline",
    ("text-to-audio", "vits"): "text_to_audio_vits:VitsTextToAudioPipeline",
    ("text-to-audio", "speecht5"): "text_to_audio_speecht5:SpeechT5TextToAudioPipeline",
    ("feature-extraction", "clip"): "clip_embeddings:ClipTextEmbeddingPipeline",  # text_model.onnx: text_embeds
    ("image-feature-extraction", "clip"): "clip_embeddings:ClipImageEmbeddingPipeline",  # vision_model.onnx: image_embeds
}

# task -> the head its graph ends in, for the text-encoder tasks whose exports differ only there: a pipeline is
# refused on a folder exported (manifest "task") for a task with another head, since it would read the wrong
# outputs (LABEL_99 from a feature-extraction graph). Tasks with the same head share a graph (zero-shot on an NLI
# text-classification export); tasks not listed are not checked.
GRAPH_HEADS: dict[str, str] = {
    "text-classification": "sequence-classification",
    "zero-shot-classification": "sequence-classification",
    "text-ranking": "sequence-classification",
    "feature-extraction": "base model (last_hidden_state)",
    "sentence-similarity": "base model (last_hidden_state)",
    "multi-vector-embedding": "base model (last_hidden_state)",
    "hybrid-embedding": "base model (last_hidden_state)",
    "token-classification": "token-classification",
    "question-answering": "question-answering (start/end logits)",
    "fill-mask": "masked-lm",
    "sparse-embedding": "masked-lm",
}

# transformers' aliases
ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "vqa": "visual-question-answering",
    "asr": "automatic-speech-recognition",
    "text-to-speech": "text-to-audio",
}

# config.json `architectures` suffix -> task, for folders that carry no manifest
ARCHITECTURE_SUFFIX_TASKS: dict[str, str] = {
    # audio: before "ForSequenceClassification", which the wav2vec2 family's classifiers also end with
    **{f"{family}ForSequenceClassification": "audio-classification" for family in (
        "Wav2Vec2", "Wav2Vec2Conformer", "Wav2Vec2Bert", "Hubert", "WavLM", "Data2VecAudio", "SEW", "SEWD", "UniSpeech", "UniSpeechSat")},
    "ForAudioClassification": "audio-classification",
    "ForCTC": "automatic-speech-recognition",
    "WhisperForConditionalGeneration": "automatic-speech-recognition",
    "Pix2StructForConditionalGeneration": "image-to-text",  # before "ForConditionalGeneration"
    "ForCausalLM": "text-generation",
    "LMHeadModel": "text-generation",  # GPT2LMHeadModel, before "Model"
    "MTModel": "translation",  # MarianMTModel
    "ForConditionalGeneration": "text2text-generation",  # T5, BART (after Whisper's entry above)
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ViltForQuestionAnswering": "visual-question-answering",  # before "ForQuestionAnswering" (text QA)
    "LayoutLMForQuestionAnswering": "document-question-answering",  # LayoutLM v1, before text QA too
    "LayoutLMv3ForQuestionAnswering": "document-question-answering",
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
    "ForImageClassification": "image-classification",
    "OwlViTForObjectDetection": "zero-shot-object-detection",  # before "ForObjectDetection"
    "Owlv2ForObjectDetection": "zero-shot-object-detection",
    "ForObjectDetection": "object-detection",
    "ForSemanticSegmentation": "image-segmentation",
    "DetrForSegmentation": "image-segmentation",  # DETR panoptic
    "VisionEncoderDecoderModel": "image-to-text",  # ViT + GPT-2 captioners, TrOCR; before "Model"
    "CLIPModel": "zero-shot-image-classification",  # before "Model", which would read it as feature-extraction
    "ForDepthEstimation": "depth-estimation",
    "ForImageSuperResolution": "image-to-image",
    "VitsModel": "text-to-audio",  # before "Model"
    "SpeechT5ForTextToSpeech": "text-to-audio",
    # vision backbones, before "Model" (text feature-extraction)
    **{f"{family}Model": "image-feature-extraction" for family in ("ViT", "Dinov2", "CLIPVision", "DeiT", "Beit")},
    "Model": "feature-extraction",
}


def list_tasks() -> list[str]:
    """The canonical task names onnxpipe runs, sorted."""
    return sorted(TASKS)


def normalize_task(task: str) -> str:
    """Map a task name or alias to its canonical name; raise UnknownTaskError listing known ones."""
    if not isinstance(task, str):
        raise UnknownTaskError(f"task must be a string such as 'text-classification', got {task!r}")
    name = task.strip().lower()
    name = ALIASES.get(name, name)
    if name.startswith("translation_"):  # transformers' translation_xx_to_yy names
        parts = name.split("_")
        if len(parts) == 4 and parts[2] == "to":
            return "translation"
        raise UnknownTaskError(f"Invalid translation task {task!r}: use the 'translation_XX_to_YY' format, e.g. 'translation_en_to_de'.")
    if name not in TASKS:
        known = ", ".join(list_tasks() + sorted(ALIASES))
        raise UnknownTaskError(f"Unknown task {task!r}. Known tasks and aliases: {known}.")
    return name


def task_from_architectures(architectures: Optional[list[str]]) -> Optional[str]:
    """The task a config.json `architectures` entry implies, or None when it implies none we run."""
    for arch in architectures or []:
        for suffix, task in ARCHITECTURE_SUFFIX_TASKS.items():
            if arch.endswith(suffix):
                return task
    return None
