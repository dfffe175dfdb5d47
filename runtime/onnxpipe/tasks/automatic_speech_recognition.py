"""automatic-speech-recognition (alias asr) for CTC models (wav2vec2 family): {"text"} and optional "chunks".

Greedy CTC as transformers' pipeline does it: argmax per logit frame, then Wav2Vec2CTCTokenizer's decoding
(ctc.py). Long clips are cut into overlapping chunks (`chunk_length_s`, `stride_length_s`); each chunk's
logit frames inside its strides are dropped before the frames of all chunks are joined and decoded.
Whisper folders get tasks/whisper/pipeline.py's WhisperPipeline, a subclass (pipeline() picks it by the folder's
model_type: registry.MODEL_TYPE_CLASSES); other encoder-decoder speech models are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import mul
from typing import Any, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError, OnnxpipeError
from onnxpipe.options import check_number, check_seconds_pair, is_int
from onnxpipe.tasks.audio_base import AUDIO_OPTIONS, AudioPipeline
from onnxpipe.text.ctc import CTCVocabulary

#: what chunk_length_s must be (CTC and Whisper alike)
CHUNK_MUST = "must be a number of seconds >= 0 (0: no chunking)"


class UnsupportedModelError(OnnxpipeError, NotImplementedError):
    """A speech model this task cannot run (encoder-decoder models other than Whisper)."""


@dataclass(frozen=True)
class Chunk:
    """One window of a clip: its graph inputs and (window samples, left stride, right stride), or no stride."""

    item: int
    features: dict[str, np.ndarray]
    stride: Optional[tuple[int, int, int]]


def rescale_stride(stride: tuple[int, int, int], ratio: float) -> tuple[int, int, int]:
    """A (samples, left, right) stride in logit frames, rounded as transformers does."""
    samples, left, right = stride
    frames = int(round(samples * ratio))
    return frames, int(round(left / samples * frames)), int(round(right / samples * frames))


class AutomaticSpeechRecognitionPipeline(AudioPipeline):
    """Transcribe clips with a CTC model; options as in transformers: return_timestamps ("char" / "word"),
    chunk_length_s, stride_length_s (default chunk_length_s / 6), batch_size (chunks per call), timeout.

    The task's class: WhisperPipeline subclasses it, so every automatic-speech-recognition pipeline is an
    instance of it. WhisperPipeline loads through GenerationPipeline.load, so the CTC loading below is
    this class's own.
    """

    OPTIONS = {"return_timestamps": None, "chunk_length_s": 0, "stride_length_s": None, **AUDIO_OPTIONS}

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        """Refuse encoder-decoder speech models, then open the CTC graph and read what decodes its logits: the
        vocabulary and the samples per logit frame."""
        config = self.folder.config
        if config.get("is_encoder_decoder"):
            whisper = " (a Whisper folder: open it with pipeline('automatic-speech-recognition', model=...))" if (
                config.get("model_type") == "whisper") else ""
            raise UnsupportedModelError(
                f"{self.folder.path} is a {config.get('model_type') or 'sequence-to-sequence'} speech model other than "
                f"Whisper: onnxpipe transcribes with CTC models (wav2vec2, HuBERT, WavLM ...) and Whisper only{whisper}."
            )
        super().load(dtype, intra_op_num_threads)
        self.vocabulary = CTCVocabulary.from_files(
            self._vocab(), self.folder.read_json("tokenizer_config.json"),
            self.folder.read_json("special_tokens_map.json"), str(self.folder.path),
        )
        self.ratio = int(config.get("inputs_to_logits_ratio") or reduce(mul, config.get("conv_stride") or [1], 1))
        self.logits_name = self.session.output_named("logits")

    def _vocab(self) -> dict[str, Any]:
        """vocab.json (what Wav2Vec2CTCTokenizer saves), else the vocabulary inside a converted tokenizer.json
        (transformers.js-style repos)."""
        vocab = self.folder.read_json("vocab.json")
        if not vocab:
            vocab = (self.folder.read_json("tokenizer.json").get("model") or {}).get("vocab") or {}
        if not isinstance(vocab, dict) or not vocab:
            self.folder.require("vocab.json", "holds the CTC vocabulary the transcripts are decoded with")
        return vocab

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_audio_options(options)
        stamps = options["return_timestamps"]
        if stamps is False:
            options["return_timestamps"] = None
        elif stamps is not None and stamps not in ("char", "word"):
            raise InvalidOptionError(
                f"CTC models give return_timestamps='char' or 'word' (or None), got {stamps!r}. Segment timestamps "
                "(True) are a Whisper feature."
            )
        chunk = check_number("chunk_length_s", options["chunk_length_s"], minimum=0, must=CHUNK_MUST)
        check_seconds_pair(
            "stride_length_s", options["stride_length_s"],
            "must be seconds >= 0 or a [left, right] pair of them (default chunk_length_s / 6)",
        )
        if chunk:
            self.chunk_sizes(options)  # raises when the strides leave no room

    def chunk_sizes(self, options: dict[str, Any]) -> tuple[int, int, int]:
        """(window, left, right) in samples, rounded to whole logit frames as transformers does."""
        chunk, stride = options["chunk_length_s"], options["stride_length_s"]
        if stride is None:
            stride = chunk / 6
        left, right = stride if isinstance(stride, (list, tuple)) else (stride, stride)
        align = self.ratio
        window, left, right = (int(round(s * self.sampling_rate / align) * align) for s in (chunk, left, right))
        if window <= left + right:
            raise InvalidOptionError(
                f"chunk_length_s={chunk} must be longer than the two strides ({stride!r} s): each window needs a part "
                "that is not stride. Lengthen the chunk or shorten stride_length_s."
            )
        return window, left, right

    def given_stride(self, item: Any, options: dict[str, Any]) -> tuple[Any, Optional[tuple[int, int]]]:
        """The item without its "stride" key, and that (left, right) stride in samples at the item's rate: a dict
        input may ask to drop the logit frames of its edges (transformers' streaming use of CTC models)."""
        if not (isinstance(item, dict) and "stride" in item):
            return item, None
        item = dict(item)
        stride = item.pop("stride")
        if (
            not isinstance(stride, (list, tuple)) or len(stride) != 2
            or any(not (is_int(s) or isinstance(s, np.integer)) or s < 0 for s in stride)
        ):
            raise InvalidInputError(f"'stride' must be a (left, right) pair of sample counts >= 0, got {stride!r}.")
        if options["chunk_length_s"]:
            raise InvalidInputError(
                "An input 'stride' cannot be combined with chunk_length_s (transformers ignores it then); pass one of them."
            )
        return item, (int(stride[0]), int(stride[1]))

    def chunks(self, index: int, clip: np.ndarray, options: dict[str, Any], given: Any = None) -> list[Chunk]:
        """The windows of one clip (transformers' chunk_iter), or the whole clip without chunking (with the
        input's own stride, if it gave one)."""
        if not options["chunk_length_s"]:
            return [Chunk(index, self.features(clip, attention_mask=True), given)]
        window, left, right = self.chunk_sizes(options)
        pieces = []
        for start in range(0, clip.shape[0], window - left - right):
            part = clip[start : start + window]
            last = start + window >= clip.shape[0]
            stride = (part.shape[0], 0 if start == 0 else left, 0 if last else right)
            if part.shape[0] > stride[1]:
                pieces.append(Chunk(index, self.features(part, attention_mask=True), stride))
            if last:
                break
        return pieces

    def run_items(self, items: list[Any], options: dict[str, Any]) -> list[Any]:
        chunks = []
        for index, item in enumerate(items):
            item, stride = self.given_stride(item, options)
            clip = self.waveform(item, options)
            if stride is not None:
                if sum(stride) > clip.shape[0]:
                    raise InvalidInputError(f"The input 'stride' {stride} is longer than the clip ({clip.shape[0]} samples).")
                ratio = self.sampling_rate / item["sampling_rate"]
                stride = (clip.shape[0], int(round(stride[0] * ratio)), int(round(stride[1] * ratio)))
            chunks.extend(self.chunks(index, clip, options, stride))
        logits = self.run_features([c.features for c in chunks], options["batch_size"], self.logits_name)
        frames: list[list[np.ndarray]] = [[] for _ in items]
        for chunk, rows in zip(chunks, logits):
            ids = rows.argmax(axis=-1)
            if chunk.stride is not None:
                total, left, right = rescale_stride(chunk.stride, 1 / self.ratio)
                ids = ids[left : total - right]
            frames[chunk.item].append(ids)
        return [self.transcript(np.concatenate(parts), options["return_timestamps"]) for parts in frames]

    def transcript(self, ids: np.ndarray, stamps: Optional[str]) -> dict[str, Any]:
        """{"text"} plus, with timestamps, "chunks" of {"text", "timestamp": (start s, end s)} per char or word."""
        text, chars = self.vocabulary.decode(ids.tolist(), with_offsets=stamps is not None)
        if stamps is None:
            return {"text": text}
        offsets = chars if stamps == "char" else self.vocabulary.word_offsets(chars)
        rate, ratio = self.sampling_rate, self.ratio
        return {
            "text": text,
            "chunks": [
                {"text": o[stamps], "timestamp": (o["start_offset"] * ratio / rate, o["end_offset"] * ratio / rate)}
                for o in offsets
            ],
        }
