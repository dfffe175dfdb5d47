"""audio-classification: the sorted list of {score, label} dicts transformers returns, per clip."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.maths import FUNCTIONS
from onnxpipe.options import check_function_to_apply, check_top_k
from onnxpipe.tasks.audio_base import AUDIO_OPTIONS, AudioPipeline


class AudioClassificationPipeline(AudioPipeline):
    """Classify clips; options as in transformers: top_k (None = every label), function_to_apply (default
    softmax, whatever the config says, as transformers' audio pipeline does), batch_size, timeout."""

    OPTIONS = {"top_k": None, "function_to_apply": None, **AUDIO_OPTIONS}

    def setup(self) -> None:
        super().setup()
        config = self.folder.config
        self.id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.num_labels = len(self.id2label) if self.id2label else int(config.get("num_labels", 2))
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_audio_options(options)
        check_top_k(options["top_k"], "every label")
        check_function_to_apply(options)

    def run_items(self, items: list[Any], options: dict[str, Any]) -> list[Any]:
        pieces = [self.features(self.waveform(item, options)) for item in items]
        logits = self.run_features(pieces, options["batch_size"], self.logits_name)
        return [self.ranked(row.astype(np.float32), options) for row in logits]

    def ranked(self, logits: np.ndarray, options: dict[str, Any]) -> list[dict[str, Any]]:
        """The top_k labels by score, highest first."""
        scores = FUNCTIONS[options["function_to_apply"] or "softmax"](logits)
        top_k = min(options["top_k"] or self.num_labels, self.num_labels, len(scores))
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [{"score": float(scores[i]), "label": self.id2label.get(int(i), f"LABEL_{int(i)}")} for i in order]
