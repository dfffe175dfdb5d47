"""Per-task knowledge of the harness: how benchmark texts become pipeline inputs, the call options every engine
gets, and Optimum's ORTModel class for the task.

Only plain data and string handling here, so the parent process and every engine worker can share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

QUESTION = "What did the council decide to do last year?"
IMAGE_SIZE = (480, 640)  # (height, width) of benchmark pictures: a common camera frame
AUDIO_SECONDS = (30, 300)  # benchmark clip lengths: the 30 s and 5-minute clips
AUDIO_RATE = 16000
CANDIDATE_LABELS = ("politics", "weather", "sports")
IMAGE_LABELS = ("a cat", "a dog", "a car")  # zero-shot-image-classification: the candidate labels of every call
VQA_QUESTION = "What colour is the square?"  # visual-question-answering: asked of every picture
GENERATION_PROMPT = 32  # generation tasks: prompt tokens when --seq-len is not given (issue #4: prompt 32)


@dataclass(frozen=True)
class TaskSpec:
    """How one pipeline task is benchmarked."""

    task: str
    optimum_class: Optional[str]  # class name in optimum.onnxruntime; None: Optimum has no ORTModel for the task
    call_options: dict[str, Any] = field(default_factory=dict)  # passed to every engine's call, with batch_size
    # "image": generated pictures of IMAGE_SIZE; "audio": generated clips of AUDIO_SECONDS; "generation": texts of
    # GENERATION_PROMPT tokens, with min_new_tokens = max_new_tokens in call_options so every engine generates as many
    # "document": {image, question, word_boxes} dicts whose question and words make --seq-len tokens;
    # "speech-text": texts of --seq-len characters (text-to-audio)
    modality: str = "text"
    picture: tuple[int, int] = IMAGE_SIZE  # (height, width) of the pictures of image and document tasks
    # audio: options for clips longer than 30 s (transformers' CTC pipeline needs chunking to take them)
    long_clip_options: dict[str, Any] = field(default_factory=dict)
    # a decoding loop inside a non-generation modality (Whisper): new tokens forced through call_options'
    # generate_kwargs, decoder steps counted, generation figures added to the audio rows
    decodes: bool = False
    note: str = ""  # what the record's notes say about this spec's call options (followed by the options)
    optimum_note: str = ""  # why Optimum is skipped where optimum_class is None (default: it has no ORTModel class)

    @property
    def generates(self) -> bool:
        """Whether every call runs a decoding loop whose length is forced and whose decoder steps are counted."""
        return self.modality == "generation" or self.decodes

    def _length_options(self) -> dict[str, Any]:
        """The dict that holds max_new_tokens / min_new_tokens: generate_kwargs where the call options have it."""
        return self.call_options.get("generate_kwargs", self.call_options)

    def call_notes(self) -> list[str]:
        """The record's notes on this spec: its note and the call options every engine gets."""
        return [f"{self.note}; every engine's call options: {self.call_options!r}"] if self.note else []

    def options_for(self, size: Any) -> dict[str, Any]:
        """The call options of an input size: `long_clip_options` join in for audio clips over 30 s."""
        if self.modality == "audio" and float(str(size).rstrip("s")) > 30:
            return {**self.call_options, **self.long_clip_options}
        return dict(self.call_options)

    @property
    def new_tokens(self) -> Optional[int]:
        """Generation tasks: the tokens every call generates per sequence (min_new_tokens = max_new_tokens)."""
        return self._length_options().get("max_new_tokens") if self.generates else None

    def with_new_tokens(self, count: Optional[int]) -> TaskSpec:
        """This spec with `count` forced new tokens (min and max); unchanged when `count` is None."""
        if count is None:
            return self
        if not self.generates:
            raise ValueError(f"--new-tokens applies to generation tasks and Whisper, not {self.task}")
        if count < 1:
            raise ValueError(f"--new-tokens must be at least 1, got {count}")
        forced = {**self._length_options(), "max_new_tokens": count, "min_new_tokens": count}
        if "generate_kwargs" in self.call_options:
            return replace(self, call_options={**self.call_options, "generate_kwargs": forced})
        return replace(self, call_options={**self.call_options, **forced})

    def inputs(self, texts: list[str], mask_token: Optional[str] = None) -> list[Any]:
        """The pipeline inputs for benchmark texts (question-answering pairs them with a question, fill-mask masks a word)."""
        if self.task == "question-answering":
            return [{"question": QUESTION, "context": text} for text in texts]
        if self.task == "fill-mask":
            if not mask_token:
                raise ValueError("fill-mask needs the tokenizer's mask token")
            return [_mask_middle_word(text, mask_token) for text in texts]
        return list(texts)


def _mask_middle_word(text: str, mask_token: str) -> str:
    words = text.split(" ")
    words[len(words) // 2] = mask_token
    return " ".join(words)


SPECS: dict[str, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec("text-classification", "ORTModelForSequenceClassification"),
        # token vectors as arrays on every engine: nested Python lists would time list building, not inference
        TaskSpec("feature-extraction", "ORTModelForFeatureExtraction", {"return_tensors": True}),
        TaskSpec("token-classification", "ORTModelForTokenClassification"),
        TaskSpec("question-answering", "ORTModelForQuestionAnswering"),
        TaskSpec("fill-mask", "ORTModelForMaskedLM"),
        TaskSpec("zero-shot-classification", "ORTModelForSequenceClassification", {"candidate_labels": list(CANDIDATE_LABELS)}),
        TaskSpec("image-classification", "ORTModelForImageClassification", modality="image"),
        TaskSpec("object-detection", None, modality="image"),
        # semantic segmentation (SegFormer & co.); DETR panoptic has its own spec below. Every engine gets the
        # pipelines' defaults: subtask None, which each pipeline resolves the same way for the model's processor
        TaskSpec("image-segmentation", "ORTModelForSemanticSegmentation", modality="image"),
        TaskSpec("zero-shot-image-classification", "ORTModelForZeroShotImageClassification", modality="image",
                 call_options={"candidate_labels": list(IMAGE_LABELS)}),
        # OWL-ViT / OWLv2: inputs are {"image": picture, "candidate_labels": IMAGE_LABELS} (transformers zips a list
        # of pictures with a flat label list); Optimum's pipeline() names the task but has no ORTModel class for it
        TaskSpec("zero-shot-object-detection", None, modality="image",
                 optimum_note="Optimum has no ORTModel class for zero-shot-object-detection (optimum-onnx 0.1.0)"),
        # hidden states as arrays on every engine (nested lists would time list building); Optimum's pipeline()
        # has no image-feature-extraction or depth-estimation entry (optimum-onnx 0.1.0's ORT_TASKS_MAPPING)
        TaskSpec("image-feature-extraction", None, {"return_tensors": True}, modality="image",
                 optimum_note="Optimum's pipeline() has no image-feature-extraction task (optimum-onnx 0.1.0)"),
        TaskSpec("depth-estimation", None, modality="image",
                 optimum_note="Optimum has no ORTModel class for depth-estimation (optimum-onnx 0.1.0)"),
        # a 128x128 thumbnail upscaled x2: super-resolution cost grows with every input pixel (Swin2SR's 36
        # full-resolution Swin layers), and one 480x640 frame takes over a minute per call on 2 cores
        TaskSpec("image-to-image", "ORTModelForImageToImage", modality="image", picture=(128, 128)),
        # LayoutLMv3 / LayoutLM v1: {"image": page, "question": QUESTION, "word_boxes": [(word, box), ...]}, the words
        # and boxes given so that no engine runs OCR; the question and words make --seq-len tokens
        TaskSpec("document-question-answering", None, modality="document",
                 optimum_note="Optimum has no ORTModel class for document-question-answering (optimum-onnx 0.1.0's "
                              "pipeline() has no such task; ORTModelForQuestionAnswering takes no bbox or image)"),
        # inputs are {"image": picture, "question": VQA_QUESTION}; top_k: the pipelines' default (5)
        TaskSpec("visual-question-answering", None, modality="image",
                 optimum_note="Optimum has no ORTModel class for visual-question-answering (ViLT)"),
        TaskSpec("audio-classification", "ORTModelForAudioClassification", modality="audio"),
        TaskSpec("automatic-speech-recognition", "ORTModelForCTC", modality="audio",
                 long_clip_options={"chunk_length_s": 30}),
        # greedy, and exactly 128 new tokens on every engine: min_new_tokens keeps EOS out until then
        TaskSpec("text-generation", "ORTModelForCausalLM", modality="generation",
                 call_options={"do_sample": False, "max_new_tokens": 128, "min_new_tokens": 128}),
        # the pipelines' own beam search (4 beams, and the model's task_specific_params), with the length forced
        TaskSpec("summarization", "ORTModelForSeq2SeqLM", modality="generation",
                 call_options={"max_new_tokens": 64, "min_new_tokens": 64}),
        TaskSpec("text2text-generation", "ORTModelForSeq2SeqLM", modality="generation",
                 call_options={"max_new_tokens": 64, "min_new_tokens": 64}),
        # every engine's pipeline is built under the task name the command line gave: "translation" (a Marian
        # model; T5 then takes the first translation_* entry of task_specific_params on every engine, with a
        # warning) or "translation_xx_to_yy", which onnxpipe, transformers and Optimum's pipeline all accept
        # (bench.pipeline_task); the spec is the same for both
        TaskSpec("translation", "ORTModelForSeq2SeqLM", modality="generation",
                 call_options={"max_new_tokens": 64, "min_new_tokens": 64}),
    )
}


WHISPER_NEW_TOKENS = 64
# Whisper under the task name of CTC models, told apart by config.json's model_type. Random weights make the
# transcript length arbitrary (EOS at once, or 448 tokens), so every engine gets min_new_tokens = max_new_tokens
# (the transformers pipeline takes generation options only inside generate_kwargs; onnxpipe and Optimum's pipeline
# take them there too); greedy (num_beams=1) where the Whisper pipelines default to 5 beams; language and task
# forced, so no engine runs language detection (one more decoder step per window, which the real multilingual
# whisper-tiny would run on every engine alike). Optimum: ORTModelForSpeechSeq2Seq (ORTModelForWhisper) on the
# same encoder_model + decoder_model_merged pair.
WHISPER_SPEC = TaskSpec(
    "automatic-speech-recognition", "ORTModelForSpeechSeq2Seq", modality="audio", decodes=True,
    call_options={"generate_kwargs": {"language": "en", "task": "transcribe", "num_beams": 1,
                                      "max_new_tokens": WHISPER_NEW_TOKENS, "min_new_tokens": WHISPER_NEW_TOKENS}},
    long_clip_options={"chunk_length_s": 30},
    note=("Whisper: every engine decodes greedily (num_beams=1; the pipelines default to 5 beams) with language='en' "
           "and task='transcribe' forced (no language detection step) and min_new_tokens = max_new_tokens, so each "
           "30 s window gets exactly the new tokens shown (random weights would stop at an arbitrary point); tokens/s = "
           "new tokens x batch / median latency (a 30 s clip is one window); decoder steps = decoder-graph runs "
           "(onnxpipe, Optimum) or model forwards (torch) per call, counted (a chunked clip: new tokens x windows)"),
)
IMAGE_TO_TEXT_NEW_TOKENS = 16  # nlpconnect/vit-gpt2-image-captioning's captions stop at 16 tokens (its max_length)
SPECS["image-to-text"] = TaskSpec(
    "image-to-text", "ORTModelForVision2Seq", modality="image", decodes=True,
    call_options={"generate_kwargs": {"num_beams": 1, "max_new_tokens": IMAGE_TO_TEXT_NEW_TOKENS,
                                      "min_new_tokens": IMAGE_TO_TEXT_NEW_TOKENS}},
    note=("image-to-text: every engine decodes greedily with min_new_tokens = max_new_tokens, so each caption has "
          "exactly the new tokens shown (random weights would stop at an arbitrary point); decoder steps = "
          "decoder-graph runs (onnxpipe, Optimum) or model forwards (torch) per call, counted"),
)
# VITS (one text at a time, as transformers runs it): texts of --seq-len characters; Optimum's pipeline() has no
# text-to-audio task. The benchmark VITS has its duration noise off (task_models._mms_tts_eng), so every engine
# synthesizes the same samples
SPECS["text-to-audio"] = TaskSpec(
    "text-to-audio", None, modality="speech-text",
    optimum_note="Optimum has no ORTModel class for text-to-audio (optimum-onnx 0.1.0's pipeline() has no such task)",
    note=("text-to-audio: inputs are English texts of --seq-len characters (VITS reads characters); the benchmark "
          "model's duration noise is off (noise_scale_duration 0), so every engine makes the same audio length"),
)
# DETR panoptic (DetrForSegmentation): transformers' pipeline picks panoptic for its processor (subtask None), and
# onnxpipe does the same; Optimum has no panoptic / instance segmentation ORTModel
DETR_SEGMENTATION_SPEC = TaskSpec(
    "image-segmentation", None, modality="image",
    optimum_note="Optimum has no ORTModel class for DETR panoptic segmentation (ORTModelForSemanticSegmentation "
                 "takes semantic-segmentation models only)")
MODEL_SPECS: dict[tuple[str, str], TaskSpec] = {("automatic-speech-recognition", "whisper"): WHISPER_SPEC,
                                                ("image-segmentation", "detr"): DETR_SEGMENTATION_SPEC}


def read_model_config(model: str) -> dict[str, Any]:
    """config.json of a model folder (an onnxpipe export or a checkpoint), or {} for a hub id / a folder without one."""
    path = Path(model) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def pipeline_task(task: str, asked: Optional[str]) -> str:
    """The task name every engine's pipeline is built with: the canonical `task`, except a translation_xx_to_yy
    name asked for on the command line, kept so that every engine translates the same language pair."""
    asked = (asked or "").strip().lower()
    return asked if task == "translation" and asked.startswith("translation_") else task


def task_spec(task: str, config: Optional[Mapping[str, Any]] = None) -> TaskSpec:
    """The spec of a canonical task name (aliases are resolved by the caller) for a model of `config` (its
    config.json: Whisper has its own speech-recognition spec); ValueError names the known tasks."""
    model_type = (config or {}).get("model_type")
    if task.startswith("translation_"):  # transformers' translation_xx_to_yy: a pipeline task name of translation
        task = "translation"
    if (task, model_type) in MODEL_SPECS:
        return MODEL_SPECS[(task, model_type)]
    if task not in SPECS:
        raise ValueError(f"the benchmark harness knows no task {task!r}; it knows {', '.join(sorted(SPECS))}")
    return SPECS[task]
