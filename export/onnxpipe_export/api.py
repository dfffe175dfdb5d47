"""`export()`: checkpoint -> optimum ONNX -> fused graph -> int8/fp16 variants -> validated folder with a manifest.

The recipe of the task picks the path: Whisper checkpoints (whisper_export.py), graphs with a KV cache
(generative.py), or one graph (graph_export.py). Every path runs in the same frame and returns an ExportResult
(scratch_export.py).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from .clip_embeddings_export import TASKS as CLIP_TASKS
from .clip_embeddings_export import export_clip_embeddings, is_clip_checkpoint
from .dtypes import GENERATION_DTYPES, parse_dtypes
from .errors import ExportOptionError
from .generative import export_generation
from .graph_export import export_graph
from .scratch_export import ExportResult
from .tasks import export_task
from .text_to_audio_export import export_text_to_audio
from .vision_encoder_decoder_export import export_image_to_text
from .weight_only_recipes import refuse_for_task, weight_only_options
from .whisper_export import export_whisper, is_whisper_checkpoint

__all__ = ["export", "ExportResult"]


def export(
    model: Union[str, os.PathLike[str]],
    task: str,
    output: Union[str, os.PathLike[str]],
    dtype: Union[str, Sequence[str]] = "fp32",
    *,
    optimize: bool = True,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
    q4_method: Optional[str] = None,
    block_size: Optional[int] = None,
    calibration: Optional[str] = None,
    vocoder: Optional[str] = None,
) -> ExportResult:
    """Export a hub id or checkpoint folder for a pipeline task to an ONNX folder onnxpipe runs.

    model.onnx (fp32) is always written; `dtype` adds int8 (model_quantized.onnx) and fp16 (model_fp16.onnx)
    variants, the first one listed being the folder's default. Every file is compared with torch unless
    validate=False; an fp32 graph outside tolerance raises ValidationError and writes nothing.
    Generation tasks and Whisper: `q4_method`, `block_size` and `calibration` pick the q4 / int8 weight-only
    recipes (weight_only_recipes.py; Whisper's q4 method applies to its decoder); other tasks refuse them.
    """
    recipe = export_task(task)
    flags = (q4_method, block_size, calibration)
    if recipe.task == "text-to-audio":  # VITS, or SpeechT5 + `vocoder` (text_to_audio_export.py)
        refuse_for_task("text-to-audio", *flags)
        return export_text_to_audio(model, output, dtype, vocoder=vocoder, revision=revision, quiet=quiet, validate=validate)
    if vocoder is not None:
        raise ExportOptionError(f"vocoder= applies to text-to-audio (SpeechT5) exports, not {recipe.task}.")
    if recipe.task == "automatic-speech-recognition":  # Whisper: encoder + cached decoder (CTC: one graph, below)
        if is_whisper_checkpoint(model, revision):
            dtypes = tuple(parse_dtypes(dtype, allowed=GENERATION_DTYPES))
            weight_only = weight_only_options(*flags, dtypes=dtypes, encoder_decoder=True)
            return export_whisper(model, output, dtype, revision=revision, quiet=quiet, validate=validate,
                                  weight_only=weight_only)
    if recipe.task == "image-to-text":  # VisionEncoderDecoder: an image encoder + cached decoder
        refuse_for_task("image-to-text", *flags)
        return export_image_to_text(
            model, recipe, output, dtype, optimize=optimize, revision=revision, quiet=quiet, validate=validate
        )
    if recipe.task in CLIP_TASKS and is_clip_checkpoint(model, revision):  # CLIPModel: both towers, one space
        refuse_for_task(recipe.task, *flags)
        return export_clip_embeddings(model, recipe, output, dtype, revision=revision, quiet=quiet, validate=validate)
    if recipe.kind == "generation":  # graphs with a KV cache: generative.py writes and validates them
        weight_only = weight_only_options(*flags, dtypes=tuple(parse_dtypes(dtype, allowed=GENERATION_DTYPES)))
        return export_generation(
            model, recipe, output, dtype, optimize=optimize, revision=revision, quiet=quiet, validate=validate,
            weight_only=weight_only,
        )
    refuse_for_task(recipe.task, *flags)
    return export_graph(
        model, recipe, output, parse_dtypes(dtype), optimize=optimize, revision=revision, quiet=quiet, validate=validate
    )
