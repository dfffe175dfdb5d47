"""summarization: text2text-generation with `summary_text` records and transformers' length warnings."""

from __future__ import annotations

import warnings

from onnxpipe.generation.config import GenerationConfig
from onnxpipe.tasks.text2text_generation import Text2TextGenerationPipeline


class SummarizationPipeline(Text2TextGenerationPipeline):
    """Summarize texts with an encoder-decoder model (T5 takes its "summarize: " prefix from task_specific_params)."""

    RETURN_NAME = "summary"

    def check_inputs(self, input_length: int, config: GenerationConfig) -> None:
        """transformers' warnings: min_length above max_length, and a max_length longer than the input."""
        if config.max_length < config.min_length:
            warnings.warn(f"Your min_length={config.min_length} must be inferior than your max_length={config.max_length}.", UserWarning, stacklevel=4)
        if input_length < config.max_length:
            warnings.warn(
                f"Your max_length is set to {config.max_length}, but your input_length is only {input_length}. Since this is "
                "a summarization task, where outputs shorter than the input are typically wanted, you might "
                f"consider decreasing max_length manually, e.g. summarizer('...', max_length={input_length // 2})",
                UserWarning,
                stacklevel=4,
            )
