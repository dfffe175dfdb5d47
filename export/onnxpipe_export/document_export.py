"""The document question-answering export path: optimum's ONNX configs for LayoutLM v1 and LayoutLMv3 on a model
loaded with AutoModelForDocumentQuestionAnswering.

optimum 0.1.0 exports LayoutLMv3 for question-answering, but LayoutLM v1 only for its other tasks, and its
question-answering loader (AutoModelForQuestionAnswering) knows no LayoutLM v1. The v1 config (inputs input_ids,
bbox, attention_mask, token_type_ids) has the same start/end logits outputs for question answering, so this
module registers that task for it and exports the loaded model with `onnx_export_from_model`. LayoutLMv3's graph
ends in logits over the text tokens followed by the image patches; the runtime reads the text tokens' only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import ConversionError, first_line
from .tasks import ExportTask

MODEL_TYPES = ("layoutlm", "layoutlmv3")


def _register_layoutlm_question_answering() -> None:
    """Let optimum's TasksManager export LayoutLM v1 for question-answering (idempotent)."""
    from optimum.exporters.onnx.model_configs import LayoutLMOnnxConfig
    from optimum.exporters.tasks import TasksManager

    TasksManager.create_register("onnx")("layoutlm", "question-answering")(LayoutLMOnnxConfig)


def document_export(source: Path, workdir: Path, recipe: ExportTask) -> Path:
    """Export the LayoutLM / LayoutLMv3 checkpoint in `source` to `workdir/model.onnx` with its preprocessors."""
    import transformers
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.utils.save_utils import maybe_load_preprocessors

    try:
        model = getattr(transformers, recipe.model_class).from_pretrained(str(source)).eval()
    except Exception as exc:
        raise ConversionError(f"Cannot load {str(source)!r} with {recipe.model_class}: {first_line(exc)}") from exc
    model_type = getattr(model.config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise ConversionError(
            f"onnxpipe exports document question answering for {', '.join(MODEL_TYPES)}; {str(source)!r} is a "
            f"{type(model).__name__} (model_type {model_type!r})."
        )
    _register_layoutlm_question_answering()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings, dynamo=False deprecation
            onnx_export_from_model(
                model, str(workdir), task=recipe.optimum_task, do_validation=False,
                preprocessors=maybe_load_preprocessors(str(source)),
            )
    except Exception as exc:
        raise ConversionError(f"optimum could not export {str(source)!r} for document QA: {first_line(exc)}") from exc
    onnx_path = workdir / "model.onnx"
    if not onnx_path.is_file():
        raise ConversionError(f"optimum wrote no model.onnx for {str(source)!r} (document question answering).")
    return onnx_path
