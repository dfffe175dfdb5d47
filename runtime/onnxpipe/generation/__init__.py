"""Model-agnostic decoding in numpy: logits processors, greedy / sampling / beam search, streaming."""

from onnxpipe.generation.config import GenerationConfig, resolve_generation_config
from onnxpipe.generation.decoder import Decoder
from onnxpipe.generation.generate import generate
from onnxpipe.generation.streaming import TextIteratorStreamer, TextStreamer

__all__ = [
    "Decoder",
    "GenerationConfig",
    "TextIteratorStreamer",
    "TextStreamer",
    "generate",
    "resolve_generation_config",
]
