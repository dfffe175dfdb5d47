"""The transformers (torch) engine of a bench worker: transformers' pipeline on the original checkpoint.

torch and transformers are imported inside the loader: this module is the worker's only import of them.
"""

from __future__ import annotations

from typing import Any

from .core_timer import CoreTimer
from .engine_spec import EngineSpec
from .tasks import read_model_config, task_spec


def _torch_device(device: str) -> Any:
    return -1 if device == "cpu" else device


def load_transformers(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """transformers' torch pipeline on the original checkpoint; the timer covers the model's forward."""
    import torch
    import transformers

    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    pipe = transformers.pipeline(spec.task, model=spec.model, device=_torch_device(spec.device))
    if spec.task == "document-question-answering" and pipe.model.config.model_type == "layoutlmv3":
        _layoutlmv3_page_as_pixel_values(pipe.model)
    timer = CoreTimer()
    generation = task_spec(spec.task, read_model_config(spec.model)).generates
    timer.wrap(pipe.model, "forward", count=generation)  # generation: one forward per decoder step
    if generation and pipe.model.config.is_encoder_decoder:  # generate() runs the encoder outside forward
        timer.wrap(pipe.model.get_encoder(), "forward")
    return pipe, timer


def _layoutlmv3_page_as_pixel_values(model: Any) -> None:
    """transformers 4.57's document QA pipeline passes LayoutLMv3 its page as `image=` (a TypeError: the model takes
    `pixel_values`) and reads start/end logits over text and patch tokens against a text-length mask (a ValueError),
    so it fails on every LayoutLMv3 checkpoint given an image. The model's forward takes the page as pixel_values and
    returns the text tokens' logits (which come first): what the pipeline means to compute, and what the test
    suite's parity reference does (tests/support/document_checkpoints.py)."""
    forward = model.forward

    def text_logits(image: Any = None, **inputs: Any) -> Any:
        outputs = forward(pixel_values=image, **inputs)
        n = inputs["input_ids"].shape[1]
        outputs.start_logits, outputs.end_logits = outputs.start_logits[:, :n], outputs.end_logits[:, :n]
        return outputs

    model.forward = text_logits
