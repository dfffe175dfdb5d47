"""translation (and `translation_xx_to_yy`): text2text-generation with `translation_text` records.

T5 takes its prefix ("translate English to German: ") from config.json's `task_specific_params` under
the full task name; with the bare name "translation" the first `translation_*` entry is used, with a
warning, as transformers does. Marian models translate one fixed pair and need no prefix.
"""

from __future__ import annotations

import warnings
from typing import Any, Union

from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.model_folder import ModelFolder
from onnxpipe.tasks.text2text_generation import Text2TextGenerationPipeline

# tokenizers that choose languages per call (transformers' `_build_translation_inputs`): not supported
MULTILINGUAL_TOKENIZERS = ("MBartTokenizer", "MBart50Tokenizer", "M2M100Tokenizer", "NllbTokenizer", "SeamlessM4TTokenizer")


class TranslationPipeline(Text2TextGenerationPipeline):
    """Translate texts with a fixed-pair encoder-decoder model (Marian, T5 with a translation prefix)."""

    RETURN_NAME = "translation"
    TASK_OPTIONS = {**Text2TextGenerationPipeline.TASK_OPTIONS, "src_lang": None, "tgt_lang": None}

    def __init__(self, model: Union[ModelFolder, str], task: str, *args: Any, **kwargs: Any):
        folder = ModelFolder.open(model)
        if task == "translation":
            for key in folder.config.get("task_specific_params") or {}:
                if key.startswith("translation"):
                    task = key
                    warnings.warn(
                        f'"translation" task was used, instead of "translation_XX_to_YY", defaulting to "{task}"',
                        UserWarning,
                        stacklevel=3,
                    )
                    break
        tokenizer_class = str(folder.read_json("tokenizer_config.json").get("tokenizer_class") or "")
        if tokenizer_class.removesuffix("Fast") in MULTILINGUAL_TOKENIZERS:
            raise InvalidOptionError(
                f"{tokenizer_class} picks the languages with src_lang/tgt_lang special tokens, which onnxpipe does not "
                "implement yet; use a fixed-pair model (Marian, T5) for translation."
            )
        super().__init__(folder, task, *args, **kwargs)

    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        for name in ("src_lang", "tgt_lang"):
            if options[name] is not None:
                raise InvalidOptionError(
                    f"{name}={options[name]!r} has no effect on this model, which translates one fixed language pair "
                    f"(transformers ignores it silently); remove it. The task name ({self.task!r}) and the model decide "
                    "the languages."
                )

    def check_inputs(self, input_length: int, config: GenerationConfig) -> None:
        """transformers' warning when the input is close to max_length."""
        if input_length > 0.9 * config.max_length:
            warnings.warn(
                f"Your input_length: {input_length} is bigger than 0.9 * max_length: {config.max_length}. You might "
                "consider increasing your max_length manually, e.g. translator('...', max_length=400)",
                UserWarning,
                stacklevel=4,
            )
