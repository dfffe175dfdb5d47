"""Graph outputs that optimum's ONNX config for a task leaves out but a pipeline option reads: `pooler_output` of
vision backbones for image-feature-extraction's `pool=True` (optimum's ViT / DINOv2 configs export only
last_hidden_state). The recipe's `extra_outputs` name them; they are added through optimum's custom_onnx_configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .tasks import ExportTask


def extra_output_configs(source: Path, recipe: ExportTask) -> Optional[dict[str, Any]]:
    """optimum `custom_onnx_configs` whose outputs add the recipe's extra_outputs (batch axis dynamic), or None when
    the recipe has none or the checkpoint's model type has no optimum ONNX config (optimum then says so itself)."""
    if not recipe.extra_outputs:
        return None
    from optimum.exporters.tasks import TasksManager
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(source))
    try:
        constructor = TasksManager.get_exporter_config_constructor(
            exporter="onnx", task=recipe.optimum_task, model_type=config.model_type, library_name=recipe.optimum_library
        )
    except (KeyError, ValueError):
        return None
    base = constructor.func
    extra = recipe.extra_outputs

    class WithExtraOutputs(base):  # type: ignore[misc, valid-type]
        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            outputs = dict(super().outputs)
            for name in extra:
                outputs.setdefault(name, {0: "batch_size"})
            return outputs

    return {"model": WithExtraOutputs(config, **constructor.keywords)}
