"""automatic-speech-recognition with Whisper (encoder_model + decoder_model_merged), as transformers 4.57's pipeline.

Options as transformers takes them: `return_timestamps` (True: segment chunks), `return_language`,
`chunk_length_s` / `stride_length_s` (independent 30 s windows merged by `_decode_asr`), `batch_size` (windows
per generate call), and the generation options directly or in `generate_kwargs` (`language`, `task`,
`prompt_ids`, `max_new_tokens`, `num_beams`...). Defaults as transformers: 5 beams and 256 new tokens where the model's
generation config leaves the library defaults. Clips longer than 30 s without chunk_length_s are decoded
long-form (window after window, resuming at the last timestamp). `return_timestamps="word"` gives word chunks timed
from the cross-attention of the alignment heads (alignment.py), which needs a decoder exported with
`cross_attentions.<layer>` outputs. Temperature sampling / fallback is not implemented and raises.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.options import check_choice, check_number, check_seconds_pair
from onnxpipe.tasks.audio_base import AUDIO_OPTIONS
from onnxpipe.tasks.automatic_speech_recognition import CHUNK_MUST, AutomaticSpeechRecognitionPipeline
from onnxpipe.tasks.generation_base import UNSET, GenerationPipeline
from onnxpipe.tasks.whisper.alignment import OUTPUT_PREFIX
from onnxpipe.tasks.whisper.decode import WhisperVocabulary, Window, decode_asr
from onnxpipe.tasks.whisper.generation import Alignment, WhisperModel, WhisperSettings
from onnxpipe.tasks.whisper.prompt import PromptSettings, check_language_and_task
from onnxpipe.text.tokenizer import token_content

TIMESTAMP_PATTERN = re.compile(r"<\|(\d+\.\d+)\|>")
#: Whisper's own generate() options (beside the generation options) the pipeline passes through
WHISPER_GENERATE_OPTIONS = {
    "language": None, "task": None, "is_multilingual": None, "prompt_ids": None, "prompt_condition_type": None,
}
#: transformers' WhisperGenerationMixin.generate options onnxpipe does not implement, with their inactive value
WHISPER_UNIMPLEMENTED = {
    "condition_on_prev_tokens": None,
    "compression_ratio_threshold": None, "logprob_threshold": None, "no_speech_threshold": None,
    "return_token_timestamps": None, "return_segments": False, "attention_mask": None, "time_precision": 0.02,
    "time_precision_features": 0.01, "force_unique_generate_call": None, "num_segment_frames": None,
}


class WhisperPipeline(GenerationPipeline, AutomaticSpeechRecognitionPipeline):
    """Transcribe or translate clips with a Whisper export.

    An AutomaticSpeechRecognitionPipeline (pipeline() picks this class for Whisper folders) that loads, checks
    options and runs as a GenerationPipeline: the MRO puts GenerationPipeline's load, OPTIONS and setup first,
    and this class overrides validate_options, run_items and the chunking it shares in name only with CTC.
    """

    PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 5}
    TASK_OPTIONS = {
        "return_timestamps": None, "return_language": None, "chunk_length_s": None, "stride_length_s": None,
        **AUDIO_OPTIONS, **WHISPER_GENERATE_OPTIONS, **WHISPER_UNIMPLEMENTED,
    }

    # -- loading -------------------------------------------------------------------------------
    def load_decoder(self, dtype: Optional[str]) -> OnnxSeq2Seq:
        return self.open_seq2seq(dtype, missing=(
            f"{self.folder.path} has no Whisper encoder_model.onnx + decoder_model_merged.onnx. Export the checkpoint "
            "with `onnxpipe export CHECKPOINT --task automatic-speech-recognition`."
        ))

    def setup(self) -> None:
        super().setup()
        self.model = WhisperModel(self.decoder)
        self.folder.require("generation_config.json", "holds Whisper's token tables (lang_to_id, no_timestamps_token_id ...)")
        self.prompt_settings = PromptSettings.from_files(self.generation_file, self.folder.config)
        self.vocabulary = self._vocabulary()
        self.time_precision = self.extractor.chunk_length / int(self.folder.config.get("max_source_positions", 1500))

    def _vocabulary(self) -> WhisperVocabulary:
        tokenizer = self.encoder.tokenizer
        names = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        tokens = [self.encoder.special_token(n) for n in names]
        for source in (self.folder.read_json("special_tokens_map.json"), self.folder.read_json("tokenizer_config.json")):
            extra = source.get("additional_special_tokens") or []
            if extra:
                tokens += [token_content(t) for t in extra]
                break
        ids = frozenset(i for i in (tokenizer.token_to_id(t) for t in tokens if t) if i is not None)
        no_stamps = tokenizer.token_to_id("<|notimestamps|>")
        if no_stamps is None:
            raise InvalidInputError(f"{self.folder.path}/tokenizer.json has no <|notimestamps|> token: it is not a Whisper tokenizer.")

        def decode(token_ids: Sequence[int]) -> str:
            return TIMESTAMP_PATTERN.sub("", self.encoder.decode(token_ids, skip_special_tokens=False))

        eos = tokenizer.token_to_id("<|endoftext|>")
        return WhisperVocabulary(ids, no_stamps + 1, tokenizer.token_to_id("<|startofprev|>"),
                                 tokenizer.token_to_id("<|startoftranscript|>"), decode, tokenizer.id_to_token,
                                 eos if eos is not None else no_stamps)

    def alignment(self) -> Alignment:
        """The alignment heads and filter width for word timestamps; a clear error when the folder cannot give them."""
        heads = self.generation_file.get("alignment_heads")
        if not heads:
            raise InvalidOptionError(
                "return_timestamps='word' needs generation_config.json's `alignment_heads` (pairs of decoder layer and "
                "head whose cross-attention follows the audio), which this model lacks; add them as on the hub and "
                "re-export, or use return_timestamps=True for segment timestamps."
            )
        pairs = tuple((int(layer), int(head)) for layer, head in heads)
        missing = sorted({f"{OUTPUT_PREFIX}{layer}" for layer, _ in pairs} - set(self.decoder.decoder.output_names))
        if missing:
            raise InvalidOptionError(
                f"return_timestamps='word' needs the decoder's cross-attention outputs {missing}, which "
                f"{self.decoder.decoder.path.name} does not have (exported before onnxpipe wrote them). Re-export the "
                "checkpoint: `onnxpipe export CHECKPOINT --task automatic-speech-recognition --output FOLDER` (with the "
                "same --dtype options), or use return_timestamps=True for segment timestamps."
            )
        return Alignment(pairs, int(self.folder.config.get("median_filter_width", 7)))

    # -- options -------------------------------------------------------------------------------
    def check_options(self, options: Mapping[str, Any], base: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """transformers' `generate_kwargs={...}` is unpacked first (keyword arguments given beside it win)."""
        options = dict(options)
        nested = options.pop("generate_kwargs", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise InvalidOptionError(f"generate_kwargs must be a dict of generation options, got {nested!r}.")
            options = {**nested, **options}
        return super().check_options(options, base)

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_audio_options(options)
        for name, inactive in WHISPER_UNIMPLEMENTED.items():
            value = options[name]
            if not (value is inactive or (type(value) is type(inactive) and value == inactive)):
                raise InvalidOptionError(
                    f"{name}={options[name]!r} is a Whisper generate() option onnxpipe does not implement; remove it."
                )
        if options["streamer"] is not None:
            raise InvalidOptionError("Whisper transcription does not stream; remove streamer=.")
        if options["do_sample"] is not UNSET and options["do_sample"]:
            raise InvalidOptionError(
                "do_sample=True: transformers' Whisper generate() ignores it (sampling comes from `temperature`), and "
                "onnxpipe does not implement Whisper's temperature sampling; remove it."
            )
        temperature = options["temperature"]
        if temperature is not UNSET and temperature is not None and (
            not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature > 0
        ):
            raise InvalidOptionError(
                f"temperature={temperature!r}: Whisper's temperature sampling and fallback are not implemented in "
                "onnxpipe; remove it (greedy / beam search are)."
            )
        stamps = options["return_timestamps"]
        if stamps == "char":
            raise InvalidOptionError(
                "Whisper cannot return `char` timestamps, only word level or segment level timestamps. Use "
                "`return_timestamps=True` for segment timestamps."
            )
        if stamps == "word":
            self.alignment()
            if options["prompt_ids"] is not None:
                raise InvalidOptionError("return_timestamps='word' with prompt_ids is not implemented; remove one of them.")
        else:
            check_choice("return_timestamps", stamps, (None, True, False), must="must be True, False, None or 'word' for Whisper")
        check_choice("return_language", options["return_language"], (None, True, False), must="must be True, False or None")
        self._check_chunking(options)
        self._prompt_ids(options)
        check_language_and_task(self._prompt_settings(options), options["language"], options["task"])
        config = self.resolve(options)
        if config.num_return_sequences != 1:
            raise InvalidOptionError("num_return_sequences must be 1 for speech recognition (one transcript per input).")

    def _check_chunking(self, options: dict[str, Any]) -> None:
        chunk = check_number("chunk_length_s", options["chunk_length_s"], minimum=0, optional=True, must=CHUNK_MUST)
        check_seconds_pair("stride_length_s", options["stride_length_s"], "must be seconds >= 0 or a [left, right] pair")
        if chunk:
            self.chunk_sizes(options)

    def chunk_sizes(self, options: dict[str, Any]) -> tuple[int, int, int]:
        """(window, left stride, right stride) in samples (transformers' rounding; Whisper aligns to 1 sample)."""
        chunk, stride = options["chunk_length_s"], options["stride_length_s"]
        if stride is None:
            stride = chunk / 6
        left, right = stride if isinstance(stride, (list, tuple)) else (stride, stride)
        window, left, right = (int(round(s * self.sampling_rate)) for s in (chunk, left, right))
        if window <= left + right:
            raise InvalidOptionError(
                f"chunk_length_s={chunk} must be longer than its two strides ({stride!r} s); lengthen the chunk or "
                "shorten stride_length_s."
            )
        return window, left, right

    def _prompt_ids(self, options: dict[str, Any]) -> Optional[tuple[int, ...]]:
        """The checked `prompt_ids` (previous-text tokens put before the decoder prompt of every window), or None."""
        condition = options["prompt_condition_type"]
        if condition not in (None, "first-segment"):
            raise InvalidOptionError(
                f"prompt_condition_type={condition!r}: only 'first-segment' is implemented ('all-segments' needs "
                "condition_on_prev_tokens, which onnxpipe does not implement)."
            )
        ids = options["prompt_ids"]
        if ids is None:
            return None
        array = np.asarray(ids)
        vocab = int(self.folder.config.get("vocab_size", 0))
        if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= vocab:
            raise InvalidOptionError(
                f"prompt_ids must be a non-empty 1-D sequence of token ids below {vocab} (e.g. the tokenizer's "
                f"<|startofprev|> + the prompt text's ids), got {ids!r:.80}."
            )
        return tuple(int(i) for i in array)

    def _prompt_settings(self, options: dict[str, Any]) -> PromptSettings:
        """The model's prompt settings, with the call's is_multilingual when given."""
        if options["is_multilingual"] is None:
            return self.prompt_settings
        return replace(self.prompt_settings, is_multilingual=bool(options["is_multilingual"]))

    def settings(self, options: dict[str, Any]) -> tuple[WhisperSettings, Any]:
        """The call's WhisperSettings and the return_timestamps value decoding uses."""
        file_stamps = self.generation_file.get("return_timestamps")
        stamps = options["return_timestamps"] or file_stamps
        prompt = self._prompt_settings(options)
        language = options["language"] if options["language"] is not None else prompt.language
        task = options["task"] if options["task"] is not None else prompt.task
        eos = self.generation_file.get("eos_token_id")
        eos = eos if eos is not None else self.generation_file.get("bos_token_id")
        eos = eos[0] if isinstance(eos, list) else eos
        settings = WhisperSettings(
            # Whisper's generate() decodes without sampling unless given a temperature (refused above)
            config=self.resolve(options).replace(do_sample=False, temperature=1.0),
            prompt=prompt,
            language=language,
            task=task,
            timestamps=True if stamps else file_stamps,
            eos_for_rules=int(eos) if eos is not None else 0,
            max_initial_timestamp_index=self.generation_file.get("max_initial_timestamp_index"),
            max_target_positions=int(self.folder.config.get("max_target_positions", 448)),
            vocab_size=int(self.folder.config.get("vocab_size", 0)),
            prompt_ids=self._prompt_ids(options),
            alignment=self.alignment() if stamps == "word" else None,
        )
        return settings, stamps

    # -- running -------------------------------------------------------------------------------
    def stream(self, inputs: Any, **kwargs: Any) -> Any:
        """Not available: transformers' ASR pipeline does not stream Whisper's text either."""
        raise InvalidOptionError("Whisper transcription does not stream; call the pipeline instead.")

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        settings, stamps = self.settings(options)
        windows: list[tuple[int, dict[str, np.ndarray], Optional[tuple[float, float, float]]]] = []
        long_form: dict[int, dict[str, np.ndarray]] = {}
        for index, item in enumerate(items):
            if isinstance(item, dict) and "stride" in item:
                raise InvalidInputError("An input 'stride' is for CTC models; with Whisper pass chunk_length_s instead.")
            clip = self.waveform(item, options)
            if options["chunk_length_s"]:
                windows.extend((index, features, stride) for features, stride in self.chunks(clip, options))
            elif clip.shape[0] > self.extractor.n_samples:
                long_form[index] = self.extractor([clip], truncation=False, attention_mask=True)
            else:
                windows.append((index, self.extractor([clip], attention_mask=True), None))
        decoded: list[list[Window]] = [[] for _ in items]
        size = options["batch_size"]
        for start in range(0, len(windows), size):
            batch = windows[start : start + size]
            rows = self.model.transcribe_timed(np.concatenate([w[1]["input_features"] for w in batch]),
                                               _with_frames(settings, [w[1] for w in batch]))
            for (index, _, stride), (tokens, times) in zip(batch, rows):
                decoded[index].append(Window([int(t) for t in tokens], stride, _seconds(times)))
        for index, features in long_form.items():
            tokens, times = self.model.transcribe_timed(features["input_features"], _with_frames(settings, [features]))[0]
            decoded[index].append(Window([int(t) for t in tokens], None, _seconds(times)))
        results = []
        for parts in decoded:
            text, optional = decode_asr(parts, self.vocabulary, stamps, options["return_language"], self.time_precision)
            results.append({"text": text, **optional})
        return results

    def chunks(self, clip: np.ndarray, options: dict[str, Any]) -> list[tuple[dict[str, np.ndarray], tuple[float, float, float]]]:
        """transformers' chunk_iter: overlapping windows with (length, left, right) strides, here in seconds."""
        window, left, right = self.chunk_sizes(options)
        rate = float(self.sampling_rate)
        pieces = []
        for start in range(0, clip.shape[0], window - left - right):
            part = clip[start : start + window]
            last = start + window >= clip.shape[0]
            stride = (part.shape[0] / rate, (0 if start == 0 else left) / rate, (0 if last else right) / rate)
            if part.shape[0] > (0 if start == 0 else left):
                pieces.append((self.extractor([part], attention_mask=True), stride))
            if last:
                break
        return pieces


def _with_frames(settings: WhisperSettings, features: Sequence[dict[str, np.ndarray]]) -> WhisperSettings:
    """The settings with each row's mel frames of real audio (from the feature extractor's attention mask), which
    word timestamps crop the attention to; unchanged without word timestamps."""
    if settings.alignment is None:
        return settings
    frames = tuple(int(f["attention_mask"].sum()) for f in features)
    return replace(settings, alignment=replace(settings.alignment, num_frames=frames))


def _seconds(times: Optional[np.ndarray]) -> Optional[list[float]]:
    return None if times is None else [float(t) for t in times]
