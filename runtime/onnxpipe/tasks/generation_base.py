"""What the four generation tasks share: loading the decoder graphs, generation options, lengths, decoding.

A generation pipeline holds one Decoder (an OnnxDecoder or OnnxSeq2Seq over the folder's graphs) and
resolves its decoding options the way a transformers pipeline does: library defaults < the pipeline's
own defaults < the model's generation_config.json < task_specific_params < the pipeline's options < the
call's options (generation.config.resolve_generation_config).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.generation.config import GenerationConfig, known_options, resolve_generation_config
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.generation.streaming import TextIteratorStreamer
from onnxpipe.manifest import dtype_of_filename
from onnxpipe.model_folder import ModelFolder
from onnxpipe.session import OnnxSession, parse_device
from onnxpipe.tasks.pipeline_base import Pipeline
from onnxpipe.text.tokenizer import TextEncoder, clean_up_tokenization

UNSET = object()  # a generation option the caller did not give (the model's and pipeline's defaults apply)

# config.json keys of a learned (absolute) position table; rotary and relative models have no hard limit
_POSITION_KEYS = ("n_positions", "max_position_embeddings")
_NO_LIMIT_KEYS = ("rope_theta", "rope_scaling", "rotary_dim", "rotary_pct", "relative_attention_num_buckets")


def position_limit(config: Mapping[str, Any]) -> Optional[int]:
    """The most positions a model with a learned position table takes (None for rotary / relative models)."""
    if any(key in config for key in _NO_LIMIT_KEYS):
        return None
    for key in _POSITION_KEYS:
        if isinstance(config.get(key), int):
            return config[key]
    return None


#: an encoder-decoder folder's decoder files, in the order they are preferred
SEQ2SEQ_DECODER_STEMS = ("decoder_model_merged", "decoder_with_past_model", "decoder_model")


def first_stem(folder: ModelFolder, stems: Sequence[str]) -> str:
    """The first of `stems` the folder holds an ONNX file of; a clear error naming them when none."""
    for stem in stems:
        if folder.variants(stem):
            return stem
    raise MissingModelFileError(
        f"{folder.path} holds none of {', '.join(s + '.onnx' for s in stems)} (looked in . and onnx/). "
        "Export the model for generation with `onnxpipe export CHECKPOINT --task text-generation` "
        "(or summarization / translation / text2text-generation)."
    )


class GenerationPipeline(Pipeline):
    """Base of the generation tasks: sessions for the decoder graphs, checked generation options, decoding."""

    #: transformers' `_default_generation_config` of the task
    PIPELINE_DEFAULTS: Mapping[str, Any] = {}
    #: the task's own (non-generation) options and their defaults
    TASK_OPTIONS: Mapping[str, Any] = {}

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        """Open the encoder/decoder graphs as a Decoder (instead of the base class's single session)."""
        self.device_kind, _ = parse_device(self.device)
        self.threads = intra_op_num_threads
        self.decoder = self.load_decoder(dtype)

    # -- loading -------------------------------------------------------------------------------
    def load_decoder(self, dtype: Optional[str]) -> Any:
        """Open the graphs and return the Decoder (subclasses implement); sets model_path, dtype, session."""
        raise NotImplementedError

    def open_session(self, stem: str, dtype: Optional[str]) -> OnnxSession:
        """An OnnxSession on the `dtype` variant of `stem` (the default variant for the device when None)."""
        path = self.folder.onnx_file(dtype, self.device_kind, stem)
        return OnnxSession(path, self.device, self.threads)

    def open_seq2seq(
        self, dtype: Optional[str], missing: Optional[str] = None,
        check_encoder: Optional[Callable[[OnnxSession], None]] = None,
    ) -> OnnxSeq2Seq:
        """encoder_model + the decoder (merged, or optimum's unmerged pair, whose decoder_model runs the first step)
        of an encoder-decoder folder, the encoder at the decoder's dtype. `missing`: the error message when the folder
        lacks them (default: first_stem's); `check_encoder` may refuse an encoder taking the wrong inputs."""
        try:
            stem = first_stem(self.folder, SEQ2SEQ_DECODER_STEMS)
            encoder_stem = first_stem(self.folder, ("encoder_model",))
        except MissingModelFileError as exc:
            if missing is None:
                raise
            raise MissingModelFileError(missing) from exc
        decoder = self.open_session(stem, dtype)
        chosen = dtype or self.folder.default_dtype(self.device_kind, stem)
        encoder = self.open_session(encoder_stem, chosen)
        if check_encoder is not None:
            check_encoder(encoder)
        first = None
        if stem == "decoder_with_past_model":
            first = self.open_session(first_stem(self.folder, ("decoder_model",)), chosen)
        self.use_main_session(decoder, stem)
        return OnnxSeq2Seq(encoder, decoder, self.folder.config, first_session=first)

    def use_main_session(self, session: OnnxSession, stem: str) -> None:
        """Record the graph that names this pipeline's file and dtype (repr, `pipe.dtype`)."""
        self.session = session
        self.model_path = session.path
        self.dtype = dtype_of_filename(session.path.name, stem)

    def setup(self) -> None:
        super().setup()
        self.encoder = TextEncoder(self.folder)
        self.generation_file = self.folder.read_json("generation_config.json")
        self.limit = position_limit(self.folder.config)

    # -- options -------------------------------------------------------------------------------
    @property
    def OPTIONS(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.TASK_OPTIONS, **{name: UNSET for name in known_options()}, "streamer": None}

    def task_params(self) -> dict[str, Any]:
        """The model's task_specific_params for this task, without `prefix` (which is the pipeline's)."""
        params = (self.folder.config.get("task_specific_params") or {}).get(self.task) or {}
        return {k: v for k, v in params.items() if k != "prefix"}

    def generation_overrides(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The generation options the caller gave (pipeline options, then this call's)."""
        return {name: options[name] for name in known_options() if options[name] is not UNSET}

    def resolve(self, options: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None) -> GenerationConfig:
        """The checked GenerationConfig of a call, within the pipeline's limits (checked before any allocation)."""
        given = {**self.generation_overrides(options), **(extra or {})}
        config = resolve_generation_config(
            self.generation_file,
            self.folder.config,
            self.PIPELINE_DEFAULTS,
            given,
            task_params=self.task_params(),
            tokenizer_pad_token_id=self.tokenizer_pad_id(),
        )
        asked = {name: getattr(config, name) if given.get(name) is not None else None
                 for name in ("num_beams", "num_return_sequences", "max_new_tokens", "max_length")}
        if asked["max_new_tokens"] is not None:
            asked["max_length"] = None
        self.limits.check_generation(**asked, prompt_allowance=self.limit or self.encoder.model_max_length)
        return config

    def validate_options(self, options: dict[str, Any]) -> None:
        config = self.resolve(options)  # raises InvalidOptionError on a bad or unimplemented generation option
        self.check_token_ids(config)
        streamer = options["streamer"]
        if streamer is not None and not (hasattr(streamer, "put") and hasattr(streamer, "end")):
            raise InvalidOptionError(
                f"streamer must have put(ids) and end() methods (onnxpipe.generation.streaming), got {type(streamer).__name__}."
            )

    def check_token_ids(self, config: GenerationConfig) -> None:
        """InvalidOptionError naming a token id in bad_words_ids / sequence_bias / suppress_tokens that is past the
        tokenizer's vocabulary (the logits have no such column)."""
        size = self.folder.config.get("vocab_size")
        if not isinstance(size, int) or size <= 0:
            size = self.encoder.tokenizer.get_vocab_size(with_added_tokens=True)
        for name in ("bad_words_ids", "sequence_bias", "suppress_tokens", "begin_suppress_tokens"):
            value = getattr(config, name, None)
            if not value:
                continue
            if name == "sequence_bias":
                value = [seq for seq, _ in value]
            ids = [t for seq in value for t in (seq if isinstance(seq, (list, tuple)) else [seq])]
            bad = [t for t in ids if t >= size]
            if bad:
                raise InvalidOptionError(
                    f"{name} holds token id {bad[0]}, past the model's vocabulary of {size} tokens (ids 0 to {size - 1})."
                )

    # -- tokens --------------------------------------------------------------------------------
    def tokenizer_pad_id(self) -> Optional[int]:
        """The tokenizer's pad token id, or None when it has no pad token."""
        token = self.encoder.pad_token
        return self.encoder.tokenizer.token_to_id(token) if token else None

    def token_id(self, name: str) -> Optional[int]:
        """The id of a special token of the tokenizer ('eos_token', 'bos_token'...), or None."""
        token = self.encoder.special_token(name)
        return self.encoder.tokenizer.token_to_id(token) if token else None

    def encode(self, texts: Sequence[str], *, add_special_tokens: bool = True, limit: Optional[int] = None) -> list[list[int]]:
        """Token ids of each text, truncated to `limit` tokens when given (on the tokenizer's side, right)."""
        encodings = self.encoder.configured(limit).encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [list(enc.ids) for enc in encodings]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True, clean_up: bool = False) -> str:
        """Token ids to text as transformers' `tokenizer.decode(ids, skip_special_tokens, clean_up_tokenization_spaces)`."""
        text = self.encoder.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if clean_up else text

    def raw_decode(self, ids: Sequence[int]) -> str:
        """Ids to text with special tokens kept (stop strings look at this)."""
        return self.encoder.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def pad_batch(self, rows: Sequence[Sequence[int]], side: str, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) of `rows` padded to the longest with `pad_id` on `side`."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            ids[i, cols] = row
            mask[i, cols] = 1
        return ids, mask

    def check_positions(self, longest: int, total: int, what: str, fix: str) -> None:
        """Refuse lengths past a learned position table (onnxruntime would fail on an out-of-range Gather), and
        prompts longer than the pipeline's max_input_tokens limit."""
        self.limits.check_input_tokens(longest)
        if self.limit is None:
            return
        if longest > self.limit:
            raise InvalidInputError(
                f"The {what} has {longest} tokens but the model has {self.limit} positions. {fix}"
            )
        if total > self.limit:
            raise InvalidInputError(
                f"The {what} ({longest} tokens) plus the tokens to generate reach {total} positions, past the "
                f"model's {self.limit}. Lower max_new_tokens / max_length to at most {self.limit - longest} new tokens. {fix}"
            )

    # -- streaming -----------------------------------------------------------------------------
    def stream(self, inputs: Any, **kwargs: Any) -> Iterator[str]:
        """Generate for ONE input and yield the new text piece by piece as it is decoded (greedy or sampling).

        The pieces follow transformers' TextStreamer rules (whole words, held-back split characters) and
        concatenate to the generated text. Generation runs in a background thread; its errors are raised here.
        """
        if "streamer" in kwargs:
            raise InvalidOptionError("stream() makes its own streamer; call the pipeline with streamer= to use yours.")
        items, single = self.split_inputs(inputs)
        if not single:
            raise InvalidInputError("stream() takes one input; call it once per input.")
        options = self.check_options(kwargs, self.defaults)
        skip = options.get("skip_special_tokens", True)
        clean = options["clean_up_tokenization_spaces"]
        streamer = TextIteratorStreamer(lambda ids: self.decode(ids, skip_special_tokens=skip, clean_up=clean), skip_prompt=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self(inputs, streamer=streamer, **kwargs)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.text_queue.put(streamer.stop_signal)

        # the thread runs in a copy of this context: a cancel_scope (onnxpipe.cancellation) around stream() applies
        worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="onnxpipe-stream", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise failure[0]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task!r}, model={str(self.folder.path)!r}, "
            f"file={self.model_path.name!r}, providers={self.session.providers})"
        )
