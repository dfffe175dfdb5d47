"""Whisper's decoder prompt: <|startoftranscript|><|lang|><|task|>[<|notimestamps|>], as transformers 4.57's
`WhisperGenerationMixin._retrieve_init_tokens` builds it from generation_config.json and the call's
`language` / `task`, with the language detected from the audio when neither gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.tasks.whisper.languages import LANGUAGES, TASKS, TO_LANGUAGE_CODE

Language = Union[None, str, Sequence[str]]


@dataclass(frozen=True)
class PromptSettings:
    """The generation_config.json entries the prompt reads."""

    decoder_start_token_id: int
    lang_to_id: Optional[Mapping[str, int]]
    task_to_id: Optional[Mapping[str, int]]
    no_timestamps_token_id: Optional[int]
    forced_decoder_ids: Optional[Sequence[Sequence[Any]]]
    is_multilingual: Optional[bool]
    language: Language = None  # generation_config.json's own `language` / `task` (fine-tuned models set them)
    task: Optional[str] = None

    @classmethod
    def from_files(cls, generation: Mapping[str, Any], config: Mapping[str, Any]) -> PromptSettings:
        start = generation.get("decoder_start_token_id", config.get("decoder_start_token_id"))
        if start is None:
            raise InvalidOptionError("The model's generation_config.json and config.json give no decoder_start_token_id.")
        forced = generation.get("forced_decoder_ids")
        if forced is None:
            forced = config.get("forced_decoder_ids")
        return cls(
            decoder_start_token_id=int(start),
            lang_to_id=generation.get("lang_to_id"),
            task_to_id=generation.get("task_to_id"),
            no_timestamps_token_id=generation.get("no_timestamps_token_id"),
            forced_decoder_ids=forced,
            is_multilingual=generation.get("is_multilingual"),
            language=generation.get("language"),
            task=generation.get("task"),
        )


def check_language_and_task(settings: PromptSettings, language: Language, task: Optional[str]) -> None:
    """Raise InvalidOptionError for a language or task this model cannot take (before any audio is decoded)."""
    if settings.is_multilingual is False and (language is not None or task is not None):
        raise InvalidOptionError(
            "Cannot specify `task` or `language` for an English-only model (generation_config.json has "
            "is_multilingual false): remove them."
        )
    if language is not None:
        if settings.lang_to_id is None:
            raise InvalidOptionError("language= needs generation_config.json's lang_to_id, which this model lacks.")
        for one in [language] if isinstance(language, str) else list(language):
            language_id(settings, one)
    if task is not None:
        if settings.task_to_id is None:
            raise InvalidOptionError("task= needs generation_config.json's task_to_id, which this model lacks.")
        if task not in TASKS:
            raise InvalidOptionError(f"The `{task}` task is not supported. The task should be one of {list(TASKS)}.")


def language_id(settings: PromptSettings, language: Any) -> int:
    """The token id of a language given as a code ("de"), a name ("german") or a token ("<|de|>")."""
    if not isinstance(language, str):
        raise InvalidOptionError(f"language must be a string such as 'en' or 'english', got {language!r}.")
    name = language.lower()
    if name in settings.lang_to_id:
        token = name
    elif name in TO_LANGUAGE_CODE:
        token = f"<|{TO_LANGUAGE_CODE[name]}|>"
    elif name in LANGUAGES:
        token = f"<|{name}|>"
    else:
        choices = list(LANGUAGES) if len(name) == 2 else list(TO_LANGUAGE_CODE)
        raise InvalidOptionError(f"Unsupported language: {language}. Language should be one of: {choices}.")
    if token not in settings.lang_to_id:
        raise InvalidOptionError(
            f"{token} is not supported by this specific model as it is not in the generation config's lang_to_id "
            f"(it has {', '.join(settings.lang_to_id)})."
        )
    return int(settings.lang_to_id[token])


def init_tokens(
    settings: PromptSettings,
    batch: int,
    language: Language,
    task: Optional[str],
    return_timestamps: bool,
    detect: Callable[[], np.ndarray],
) -> np.ndarray:
    """The (batch, n) decoder prompt of each row. `detect()` returns each row's most likely language token id
    (called only when the language is neither given nor forced)."""
    tokens: list[Optional[int]] = [settings.decoder_start_token_id]
    if task is None and language is None and settings.forced_decoder_ids is not None:
        forced = [list(pair) for pair in settings.forced_decoder_ids]
        if forced and forced[0][0] == 1:
            position = 1
            while forced and forced[0][0] == position:
                tokens.append(forced.pop(0)[1])
                position += 1
            if forced:
                raise InvalidOptionError(
                    f"forced_decoder_ids {settings.forced_decoder_ids} do not follow Whisper's prompt pattern: they need "
                    "an entry for every position from 1 on."
                )
    language_undefined = len(tokens) <= 1 or tokens[1] is None
    if isinstance(language, (list, tuple)):
        if len(language) != batch:
            raise InvalidOptionError(
                f"When passing a list of languages, the length of the list must match the batch size. Expected "
                f"length of {batch}, but got {len(language)} languages."
            )
        languages: list[Any] = list(language)
    else:
        languages = [None] * batch if language is None else [language]
    rows = [list(tokens) for _ in languages]
    language_ids: Optional[list[int]] = None
    if language is not None:
        language_ids = [language_id(settings, one) for one in languages]
    elif settings.lang_to_id is not None and language_undefined:
        language_ids = [int(i) for i in detect()]
    if language_ids is not None:
        for row, lang in zip(rows, language_ids):
            if len(row) > 1:
                row[1] = lang
            else:
                row.append(lang)
    task_ids = list((settings.task_to_id or {}).values())
    for i, row in enumerate(rows):
        if task is not None:
            task_token = settings.task_to_id[task]
            row.append(task_token)
        elif language is not None and settings.task_to_id is not None and not any(t in row for t in task_ids):
            row.append(settings.task_to_id["transcribe"])
        no_stamps = settings.no_timestamps_token_id
        if not return_timestamps and no_stamps is not None and row[-1] != no_stamps:
            row.append(no_stamps)
        elif return_timestamps and row[-1] == no_stamps:
            row.pop()
        rows[i] = [t for t in row if t is not None]
    if len(rows) == 1 and batch > 1:
        rows = rows * batch
    return np.asarray(rows, dtype=np.int64)
