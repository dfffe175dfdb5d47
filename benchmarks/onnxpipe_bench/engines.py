"""The engines, as loaded inside a worker process: onnxpipe, the transformers torch pipeline and Optimum's
ORTModel pipeline. Each loader returns the pipeline and a `CoreTimer` that adds up the time spent in the
engine's inference call (onnxruntime `InferenceSession.run`, or the torch model's forward).

Heavy imports happen inside the loaders, so the onnxpipe worker never touches torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

KINDS = ("onnxpipe", "transformers", "optimum")


@dataclass(frozen=True)
class EngineSpec:
    """What one worker process loads: the engine kind and everything it needs to find the model."""

    kind: str  # onnxpipe | transformers | optimum
    task: str
    model: str  # onnxpipe folder (onnxpipe, optimum) or torch checkpoint folder (transformers)
    dtype: str = "fp32"  # the ONNX variant (onnxpipe, optimum); "fp32" for torch
    file: Optional[str] = None  # the ONNX file name inside `model` (optimum)
    device: str = "cpu"
    threads: Optional[int] = None
    # onnxpipe only, for measuring levers: rebuild the pipeline's session with these settings
    # (label, level = a GraphOptimizationLevel name, threads, spinning, mem_pattern, arena, file = another ONNX file)
    session: Optional[dict[str, Any]] = None

    @property
    def name(self) -> str:
        """The engine's label in reports, e.g. "onnxpipe int8"."""
        if self.session:
            return f"onnxpipe {self.dtype} [{self.session['label']}]"
        return {"onnxpipe": f"onnxpipe {self.dtype}", "optimum": f"optimum {self.dtype}"}.get(self.kind, "transformers torch fp32")


class CoreTimer:
    """Wraps an object's method so that every call adds its duration to `seconds`; calls of methods wrapped with
    `count=True` (a generation model's decoder step) add up in `calls`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.counts = False  # whether any wrapped method counts calls (the worker then reports them)

    def reset(self) -> None:
        """Start a new pipeline call."""
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, owner: Any, method: str, count: bool = False) -> None:
        """Replace `owner.method` by a timed (and, with `count`, counted) version on that instance only."""
        original: Callable[..., Any] = getattr(owner, method)
        self.counts = self.counts or count

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += count

        setattr(owner, method, timed)


def _ort_session(pipe: Any) -> Any:
    """The onnxruntime InferenceSession inside an onnxpipe pipeline."""
    session = getattr(pipe, "session", None)
    inner = getattr(session, "session", None)
    if inner is None or not hasattr(inner, "run"):
        raise RuntimeError(f"cannot find the onnxruntime session of {type(pipe).__name__}")
    return inner


def load_onnxpipe(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """onnxpipe's pipeline on the folder's `dtype` file; the timer covers InferenceSession.run."""
    from onnxpipe import pipeline

    options = {} if spec.threads is None else {"intra_op_num_threads": spec.threads}
    pipe = pipeline(spec.task, model=spec.model, dtype=spec.dtype, device=spec.device, **options)
    if spec.session:
        _rebuild_session(pipe, spec.session)
    timer = CoreTimer()
    if hasattr(pipe, "decoder"):  # a generation pipeline: encoder and decoder sessions, decoder steps counted
        from .generation_engines import time_onnxpipe_generation

        time_onnxpipe_generation(pipe, timer)
    else:
        timer.wrap(_ort_session(pipe), "run")
    return pipe, timer


def lever_session_options(settings: dict[str, Any]) -> Any:
    """onnxruntime SessionOptions for a lever variant: level, threads, spinning, mem_pattern, arena."""
    import onnxruntime as ort

    from onnxpipe.cpu import this_cpu

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
    import onnxruntime as ort

    path = settings.get("file") or str(pipe.model_path)
    pipe.session.session = ort.InferenceSession(path, sess_options=lever_session_options(settings), providers=pipe.session.providers)


def _torch_device(device: str) -> Any:
    return -1 if device == "cpu" else device


def load_transformers(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """transformers' torch pipeline on the original checkpoint; the timer covers the model's forward."""
    import torch
    import transformers

    from .tasks import read_model_config, task_spec

    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    pipe = transformers.pipeline(spec.task, model=spec.model, device=_torch_device(spec.device))
    timer = CoreTimer()
    generation = task_spec(spec.task, read_model_config(spec.model)).generates
    timer.wrap(pipe.model, "forward", count=generation)  # generation: one forward per decoder step
    if generation and pipe.model.config.is_encoder_decoder:  # generate() runs the encoder outside forward
        timer.wrap(pipe.model.get_encoder(), "forward")
    return pipe, timer


def load_optimum(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """Optimum's ORTModel for the task on the same ONNX file, in a transformers pipeline; the timer covers
    InferenceSession.run (and run_with_iobinding, where Optimum binds IO)."""
    import onnxruntime as ort
    import optimum.onnxruntime as optimum_ort
    import transformers

    from .tasks import read_model_config, task_spec

    task = task_spec(spec.task, read_model_config(spec.model))
    cls = getattr(optimum_ort, task.optimum_class)
    options = ort.SessionOptions()
    if spec.threads is not None:
        options.intra_op_num_threads = spec.threads
    provider = "CPUExecutionProvider" if spec.device == "cpu" else "CUDAExecutionProvider"
    if task.generates:  # text generation, and Whisper (ORTModelForSpeechSeq2Seq on the encoder + merged decoder pair)
        from .generation_engines import load_optimum_generation

        return load_optimum_generation(spec, cls, provider, options)
    model = cls.from_pretrained(spec.model, file_name=spec.file, provider=provider, session_options=options)
    modality = task.modality
    if modality == "image":
        processor = {"image_processor": transformers.AutoImageProcessor.from_pretrained(spec.model)}
        if spec.task == "zero-shot-image-classification":  # CLIP: the candidate labels' captions are tokenized
            processor["tokenizer"] = transformers.AutoTokenizer.from_pretrained(spec.model)
    elif modality == "audio":
        processor = {"feature_extractor": transformers.AutoFeatureExtractor.from_pretrained(spec.model)}
        if spec.task == "automatic-speech-recognition":
            processor["tokenizer"] = transformers.AutoTokenizer.from_pretrained(spec.model)
    else:
        processor = {"tokenizer": transformers.AutoTokenizer.from_pretrained(spec.model)}
    pipe = transformers.pipeline(spec.task, model=model, **processor)
    timer = CoreTimer()
    timer.wrap(model.session, "run")
    timer.wrap(model.session, "run_with_iobinding")
    return pipe, timer


LOADERS: dict[str, Callable[[EngineSpec], tuple[Any, CoreTimer]]] = {
    "onnxpipe": load_onnxpipe,
    "transformers": load_transformers,
    "optimum": load_optimum,
}
