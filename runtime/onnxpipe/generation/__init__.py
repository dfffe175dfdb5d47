"""Model-agnostic decoding in numpy: logits processors, greedy / sampling / beam search, streaming."""

from .config import GenerationConfig, resolve_generation_config
from .decoder import Decoder
from .generate import generate
from .streaming import TextIteratorStreamer, TextStreamer

__all__ = [
    "Decoder",
    "GenerationConfig",
    "TextIteratorStreamer",
    "TextStreamer",
    "generate",
    "resolve_generation_config",
]
