"""The Optimum engine of a bench worker: Optimum's ORTModel for the task on the same ONNX file, in a transformers
pipeline, with onnxruntime's default session settings (what an Optimum user gets).

onnxruntime, Optimum and transformers are imported inside the loader: only the Optimum worker needs them.
"""

from __future__ import annotations

from typing import Any

from .core_timer import CoreTimer
from .engine_spec import EngineSpec
from .generation_engines import load_optimum_generation
from .tasks import read_model_config, task_spec


def load_optimum(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """Optimum's ORTModel for the task on the same ONNX file, in a transformers pipeline; the timer covers
    InferenceSession.run (and run_with_iobinding, where Optimum binds IO)."""
    import onnxruntime as ort
    import optimum.onnxruntime as optimum_ort
    import transformers

    task = task_spec(spec.task, read_model_config(spec.model))
    cls = getattr(optimum_ort, task.optimum_class)
    options = ort.SessionOptions()
    if spec.threads is not None:
        options.intra_op_num_threads = spec.threads
    provider = "CPUExecutionProvider" if spec.device == "cpu" else "CUDAExecutionProvider"
    if task.generates:  # text generation, and Whisper (ORTModelForSpeechSeq2Seq on the encoder + merged decoder pair)
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
