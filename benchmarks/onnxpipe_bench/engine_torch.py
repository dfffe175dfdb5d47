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
    timer = CoreTimer()
    generation = task_spec(spec.task, read_model_config(spec.model)).generates
    timer.wrap(pipe.model, "forward", count=generation)  # generation: one forward per decoder step
    if generation and pipe.model.config.is_encoder_decoder:  # generate() runs the encoder outside forward
        timer.wrap(pipe.model.get_encoder(), "forward")
    return pipe, timer
