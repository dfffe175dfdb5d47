"""The onnxpipe engine of a bench worker: onnxpipe's pipeline on the folder's file, and lever session variants.

Imported only by the onnxpipe worker (and the lever measurements), never by the torch or Optimum workers.
"""

from __future__ import annotations

from typing import Any

import onnxruntime as ort

from onnxpipe import pipeline
from onnxpipe.cpu import this_cpu

from .core_timer import CoreTimer
from .engine_spec import EngineSpec
from .generation_engines import time_onnxpipe_generation


def _ort_session(pipe: Any) -> Any:
    """The onnxruntime InferenceSession inside an onnxpipe pipeline."""
    session = getattr(pipe, "session", None)
    inner = getattr(session, "session", None)
    if inner is None or not hasattr(inner, "run"):
        raise RuntimeError(f"cannot find the onnxruntime session of {type(pipe).__name__}")
    return inner


def load_onnxpipe(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """onnxpipe's pipeline on the folder's `dtype` file; the timer covers InferenceSession.run."""
    options = {} if spec.threads is None else {"intra_op_num_threads": spec.threads}
    pipe = pipeline(spec.task, model=spec.model, dtype=spec.dtype, device=spec.device, **options)
    if spec.session:
        _rebuild_session(pipe, spec.session)
    timer = CoreTimer()
    if hasattr(pipe, "decoder"):  # a generation pipeline: encoder and decoder sessions, decoder steps counted
        time_onnxpipe_generation(pipe, timer)
    else:
        timer.wrap(_ort_session(pipe), "run")
        second = getattr(pipe, "waveform_session", None)  # VITS: the prior graph, then the waveform graph
        if second is not None:
            timer.wrap(second.session, "run")
    return pipe, timer


def lever_session_options(settings: dict[str, Any]) -> Any:
    """onnxruntime SessionOptions for a lever variant: level, threads, spinning, mem_pattern, arena."""
    options = ort.SessionOptions()
    for key, value in this_cpu().session_config().items():  # as onnxpipe's own sessions on this CPU class
        options.add_session_config_entry(key, value)
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings.get("level", "ORT_ENABLE_ALL"))
    if settings.get("threads"):
        options.intra_op_num_threads = settings["threads"]
    if settings.get("spinning") is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings["spinning"] else "0")
    if settings.get("mem_pattern") is not None:
        options.enable_mem_pattern = bool(settings["mem_pattern"])
    if settings.get("arena") is not None:
        options.enable_cpu_mem_arena = bool(settings["arena"])
    return options


def _rebuild_session(pipe: Any, settings: dict[str, Any]) -> None:
    """Swap the pipeline's onnxruntime session for one built with other settings (same providers)."""
    path = settings.get("file") or str(pipe.model_path)
    pipe.session.session = ort.InferenceSession(path, sess_options=lever_session_options(settings), providers=pipe.session.providers)
