"""The task table: canonical task names, their aliases, and the `pipeline()` factory.

Adding a task means one file under `tasks/` and one line in `TASKS`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Optional, Union

from .errors import InvalidOptionError, UnknownTaskError

# canonical task name -> "module:class" under onnxpipe.tasks (imported only when asked for)
TASKS: dict[str, str] = {
    "text-classification": "text_classification:TextClassificationPipeline",
    "feature-extraction": "feature_extraction:FeatureExtractionPipeline",
    "token-classification": "token_classification:TokenClassificationPipeline",
    "question-answering": "question_answering:QuestionAnsweringPipeline",
    "fill-mask": "fill_mask:FillMaskPipeline",
    "zero-shot-classification": "zero_shot_classification:ZeroShotClassificationPipeline",
    "image-classification": "image_classification:ImageClassificationPipeline",
    "object-detection": "object_detection:ObjectDetectionPipeline",
    "image-segmentation": "image_segmentation:ImageSegmentationPipeline",
    "zero-shot-image-classification": "zero_shot_image_classification:ZeroShotImageClassificationPipeline",
    "visual-question-answering": "visual_question_answering:VisualQuestionAnsweringPipeline",
    "audio-classification": "audio_classification:AudioClassificationPipeline",
    "automatic-speech-recognition": "automatic_speech_recognition:AutomaticSpeechRecognitionPipeline",
    "text-generation": "text_generation:TextGenerationPipeline",
    "text2text-generation": "text2text_generation:Text2TextGenerationPipeline",
    "summarization": "summarization:SummarizationPipeline",
    "translation": "translation:TranslationPipeline",
}

# transformers' aliases
ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "vqa": "visual-question-answering",
    "asr": "automatic-speech-recognition",
}

# config.json `architectures` suffix -> task, for folders that carry no manifest
ARCHITECTURE_SUFFIX_TASKS: dict[str, str] = {
    # audio: before "ForSequenceClassification", which the wav2vec2 family's classifiers also end with
    **{f"{family}ForSequenceClassification": "audio-classification" for family in (
        "Wav2Vec2", "Wav2Vec2Conformer", "Wav2Vec2Bert", "Hubert", "WavLM", "Data2VecAudio", "SEW", "SEWD", "UniSpeech", "UniSpeechSat")},
    "ForAudioClassification": "audio-classification",
    "ForCTC": "automatic-speech-recognition",
    "WhisperForConditionalGeneration": "automatic-speech-recognition",
    "ForCausalLM": "text-generation",
    "LMHeadModel": "text-generation",  # GPT2LMHeadModel, before "Model"
    "MTModel": "translation",  # MarianMTModel
    "ForConditionalGeneration": "text2text-generation",  # T5, BART (after Whisper's entry above)
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ViltForQuestionAnswering": "visual-question-answering",  # before "ForQuestionAnswering" (text QA)
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
    "ForImageClassification": "image-classification",
    "ForObjectDetection": "object-detection",
    "ForSemanticSegmentation": "image-segmentation",
    "DetrForSegmentation": "image-segmentation",  # DETR panoptic
    "CLIPModel": "zero-shot-image-classification",  # before "Model", which would read it as feature-extraction
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


def pipeline_class(task: str) -> type:
    """Import and return the pipeline class of a (possibly aliased) task."""
    module_name, class_name = TASKS[normalize_task(task)].split(":")
    module = importlib.import_module(f"onnxpipe.tasks.{module_name}")
    return getattr(module, class_name)


def pipeline(
    task: Optional[str] = None,
    model: Union[str, "os.PathLike[str]", None] = None,
    device: Union[str, int] = "cpu",
    dtype: Optional[str] = None,
    **options: Any,
):
    """Build a pipeline like `transformers.pipeline(task, model=...)`, running on onnxruntime.

    `model` is an onnxpipe export folder, a plain optimum export, a transformers.js-style folder or
    a hub id; `dtype` picks the ONNX variant (fp32, int8, fp16, q4). Remaining keyword arguments are
    the task's default options, checked now.
    """
    from .model import ModelFolder

    if model is None:
        raise InvalidOptionError(
            f"pipeline({task!r}) needs model=: an exported folder (see `onnxpipe export --help`) or a hub id."
        )
    requested = task or ""
    if task is not None:
        task = normalize_task(task)
    folder = ModelFolder.open(model)
    if task is None:
        task = folder.task
        if task is None:
            raise UnknownTaskError(
                f"Cannot infer the task of {str(model)!r}: it has no onnxpipe.json and its config.json "
                f"architectures {folder.config.get('architectures')!r} name no task onnxpipe runs. "
                f"Pass the task, e.g. pipeline('text-classification', model=...). Known: {', '.join(list_tasks())}."
            )
    cls = pipeline_class(task)
    if task == "translation" and requested.strip().lower().startswith("translation_"):
        task = requested.strip().lower()  # the pipeline reads the languages (and T5 prefixes) from the full name
    return cls(folder, task=task, device=device, dtype=dtype, **options)
