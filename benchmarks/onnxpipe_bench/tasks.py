"""Per-task knowledge of the harness: how benchmark texts become pipeline inputs, the call options every engine
gets, and Optimum's ORTModel class for the task.

Only plain data and string handling here, so the parent process and every engine worker can share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

QUESTION = "What did the council decide to do last year?"
IMAGE_SIZE = (480, 640)  # (height, width) of benchmark pictures: a common camera frame
AUDIO_SECONDS = (30, 300)  # benchmark clip lengths: the 30 s and 5-minute clips
AUDIO_RATE = 16000
CANDIDATE_LABELS = ("politics", "weather", "sports")
GENERATION_PROMPT = 32  # generation tasks: prompt tokens when --seq-len is not given (issue #4: prompt 32)


@dataclass(frozen=True)
class TaskSpec:
    """How one pipeline task is benchmarked."""

    task: str
    optimum_class: Optional[str]  # class name in optimum.onnxruntime; None: Optimum has no ORTModel for the task
    call_options: dict[str, Any] = field(default_factory=dict)  # passed to every engine's call, with batch_size
    # "image": generated pictures of IMAGE_SIZE; "audio": generated clips of AUDIO_SECONDS; "generation": texts of
    # GENERATION_PROMPT tokens, with min_new_tokens = max_new_tokens in call_options so every engine generates as many
    modality: str = "text"
    # audio: options for clips longer than 30 s (transformers' CTC pipeline needs chunking to take them)
    long_clip_options: dict[str, Any] = field(default_factory=dict)

    def options_for(self, size: Any) -> dict[str, Any]:
        """The call options of an input size: `long_clip_options` join in for audio clips over 30 s."""
        if self.modality == "audio" and float(str(size).rstrip("s")) > 30:
            return {**self.call_options, **self.long_clip_options}
        return dict(self.call_options)

    @property
    def new_tokens(self) -> Optional[int]:
        """Generation tasks: the tokens every call generates per sequence (min_new_tokens = max_new_tokens)."""
        return self.call_options.get("max_new_tokens") if self.modality == "generation" else None

    def with_new_tokens(self, count: Optional[int]) -> "TaskSpec":
        """This spec with `count` forced new tokens (min and max); unchanged when `count` is None."""
        if count is None:
            return self
        if self.modality != "generation":
            raise ValueError(f"--new-tokens applies to generation tasks, not {self.task}")
        if count < 1:
            raise ValueError(f"--new-tokens must be at least 1, got {count}")
        return replace(self, call_options={**self.call_options, "max_new_tokens": count, "min_new_tokens": count})

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
    )
}


def task_spec(task: str) -> TaskSpec:
    """The spec of a canonical task name (aliases are resolved by the caller); ValueError names the known ones."""
    if task not in SPECS:
        raise ValueError(f"the benchmark harness knows no task {task!r}; it knows {', '.join(sorted(SPECS))}")
    return SPECS[task]
