"""What the audio tasks share: loading the feature extractor, decoding inputs, and running feature batches.

Clips are batched only with clips of the same length: the exported wav2vec2-family graphs take no attention
mask, so padding would change their outputs (transformers masks the padding instead). Equal-length batches
give exactly the unbatched results.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxpipe.audio.features import feature_extractor_from_config
from onnxpipe.audio.inputs import load_audio
from onnxpipe.options import check_timeout
from onnxpipe.tasks.pipeline_base import Pipeline

# options every audio task takes: the URL fetch timeout in seconds
AUDIO_OPTIONS = {"timeout": None}

Features = dict[str, np.ndarray]  # one clip's graph inputs, each with a leading batch axis of 1


class AudioPipeline(Pipeline):
    """A pipeline whose inputs are audio, featurized as the folder's preprocessor_config.json says."""

    def setup(self) -> None:
        super().setup()
        self.folder.require("preprocessor_config.json", "holds the audio feature extractor settings")
        self.extractor = feature_extractor_from_config(
            self.folder.read_json("preprocessor_config.json"), str(self.folder.path / "preprocessor_config.json")
        )
        self.sampling_rate = int(self.extractor.sampling_rate)

    def validate_audio_options(self, options: dict[str, Any]) -> None:
        """Check `timeout`."""
        check_timeout(options)

    def waveform(self, item: Any, options: dict[str, Any]) -> np.ndarray:
        """One input decoded to a mono float32 waveform at the model's sampling rate; strings may name files or
        URLs only as far as the pipeline's media_sources allow (a server turns both off)."""
        return load_audio(item, self.sampling_rate, options["timeout"], self.media_sources, self.limits)

    def features(self, clip: np.ndarray, attention_mask: Any = None) -> Features:
        """The graph inputs of one clip, as the feature extractor computes them for a lone clip."""
        return self.extractor([clip], attention_mask=attention_mask)

    def run_features(self, pieces: Sequence[Features], batch_size: int, output: str) -> list[np.ndarray]:
        """Run every piece through the graph, `batch_size` same-shape pieces per call; one output row per piece."""
        groups: dict[tuple, list[int]] = {}
        for index, piece in enumerate(pieces):
            groups.setdefault(tuple((k, v.shape) for k, v in sorted(piece.items())), []).append(index)
        rows: list[Any] = [None] * len(pieces)
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                feeds = {key: np.concatenate([pieces[i][key] for i in chunk]) for key in pieces[chunk[0]]}
                values = self.session.run(feeds, [output])[output]
                for row, index in enumerate(chunk):
                    rows[index] = values[row]
        return rows
