"""generate(): transformers 4.57's `GenerationMixin.generate` over a Decoder, returning the same sequences.

It settles the special tokens and lengths the way transformers does, expands each prompt to num_beams /
num_return_sequences rows, builds the logits processors and stopping criteria, and runs greedy search,
sampling or beam search.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation.beam import beam_search
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.decoder import Decoder
from onnxpipe.generation.processors import LogitsProcessor, build_processors
from onnxpipe.generation.search import SearchInputs, greedy_or_sample
from onnxpipe.generation.stopping import build_stopping


def generation_lengths(config: GenerationConfig, prompt_length: int) -> tuple[int, int]:
    """(max_length, min_length) in total decoder tokens, as transformers' `_prepare_generated_length` sets them."""
    max_length = config.max_length
    if config.max_new_tokens is not None:
        max_length = config.max_new_tokens + prompt_length
    elif not config.max_length_from_call and config.max_length == 20:  # the library default: 20 new tokens
        max_length = 20 + prompt_length
        if config.max_position_embeddings is not None:
            max_length = min(max_length, config.max_position_embeddings)
    min_length = config.min_length
    if config.min_new_tokens is not None:
        min_length = config.min_new_tokens + prompt_length
    return max_length, min_length


def special_tokens(config: GenerationConfig, is_encoder_decoder: bool) -> tuple[Optional[tuple[int, ...]], Optional[int], Optional[int]]:
    """(eos ids, pad id, decoder start id) after transformers' `_prepare_special_tokens` fallbacks."""
    eos = config.eos_token_id
    pad = config.pad_token_id
    if pad is None and eos is not None:
        pad = eos[0]  # transformers: "Setting pad_token_id to eos_token_id for open-end generation"
    start = config.decoder_start_token_id
    if is_encoder_decoder:
        start = start if start is not None else config.bos_token_id
        if start is None:
            raise InvalidOptionError(
                "decoder_start_token_id or bos_token_id has to be defined for encoder-decoder generation; "
                "the model's generation_config.json / config.json has neither: pass decoder_start_token_id=."
            )
    return eos, pad, start


def generate(
    decoder: Decoder,
    input_ids: np.ndarray,
    attention_mask: Optional[np.ndarray],
    config: GenerationConfig,
    *,
    streamer: Any = None,
    decode: Optional[Callable[[Sequence[int]], str]] = None,
    processors: Sequence[LogitsProcessor] = (),
    decoder_input_ids: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Generate from a batch of prompts (B, S) int64; return (B * num_return_sequences, L) int64 sequences.

    Decoder-only models return the prompt followed by the new tokens; encoder-decoder models return the
    decoder sequence starting with decoder_start_token_id. Finished rows are padded with pad_token_id (EOS
    when there is none). `decode` (ids -> text) serves stop_strings; `processors` are extra logits
    processors, run after the built-in ones and before the sampling warpers (where transformers runs a
    `logits_processor=` argument); `streamer` gets `put(ids)` / `end()` calls as transformers' streamers do (greedy/sampling only).
    `decoder_input_ids` (encoder-decoder only) is the decoder prompt, used as given (it should start with
    the decoder start token; Whisper-style forced prefixes), instead of decoder_start_token_id alone.

    Longer than 80 lines on purpose: it mirrors transformers' `generate` set-up and `_sample` loop in order,
    so the two can be compared line by line.
    """
    input_ids = _as_ids(input_ids, "input_ids")
    batch = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = np.ones_like(input_ids)
    attention_mask = _as_ids(attention_mask, "attention_mask")
    if attention_mask.shape != input_ids.shape:
        raise InvalidInputError(
            f"attention_mask has shape {attention_mask.shape} but input_ids has shape {input_ids.shape}; they must match."
        )
    if config.num_beams > 1 and streamer is not None:
        raise InvalidOptionError("A streamer cannot be used with beam search; set num_beams=1 to stream.")
    eos, pad, start = special_tokens(config, decoder.is_encoder_decoder)

    if decoder.is_encoder_decoder:
        if input_ids.shape[1] == 0:
            raise InvalidInputError("The encoder input is empty: give at least one token to encode.")
        state = decoder.prepare(input_ids, attention_mask)
        if decoder_input_ids is None:
            dec_ids = np.full((batch, 1), start, dtype=np.int64)
        else:
            dec_ids = _as_ids(decoder_input_ids, "decoder_input_ids")
            if dec_ids.shape[0] != batch or dec_ids.shape[1] == 0:
                raise InvalidInputError(
                    f"decoder_input_ids has shape {dec_ids.shape}; it needs {batch} non-empty rows, one per input."
                )
        dec_mask = np.ones_like(dec_ids)
    else:
        if input_ids.shape[1] == 0:  # transformers starts an empty prompt from bos_token_id
            if config.bos_token_id is None:
                raise InvalidInputError("The prompt is empty and the model has no bos_token_id to start from.")
            input_ids = np.full((batch, 1), config.bos_token_id, dtype=np.int64)
            attention_mask = np.ones_like(input_ids)
        state = decoder.prepare(input_ids, attention_mask)
        if decoder_input_ids is not None:
            raise InvalidInputError("decoder_input_ids is only for encoder-decoder models; put the tokens in input_ids.")
        dec_ids, dec_mask = input_ids, attention_mask

    raise_if_cancelled()  # after the encoder / prompt run
    expand = max(config.num_beams, config.num_return_sequences)
    if expand > 1:
        rows = np.repeat(np.arange(batch, dtype=np.int64), expand)
        state = decoder.select(state, rows)
        dec_ids, dec_mask = dec_ids[rows], dec_mask[rows]
    if streamer is not None:
        streamer.put(dec_ids.copy())

    prompt_length = dec_ids.shape[1]
    max_length, min_length = generation_lengths(config, prompt_length)
    if prompt_length >= max_length:
        name = "decoder_input_ids" if decoder.is_encoder_decoder else "input_ids"
        raise InvalidInputError(
            f"Input length of {name} is {prompt_length}, but max_length is set to {max_length}. "
            "Increase max_length or, better, set max_new_tokens."
        )
    inputs = SearchInputs(
        decoder=decoder,
        state=state,
        input_ids=dec_ids,
        attention_mask=dec_mask,
        max_length=max_length,
        processors=build_processors(config, prompt_length, max_length, min_length, eos, processors),
        criteria=build_stopping(config, max_length, eos, decode),
        eos_token_ids=eos,
        pad_token_id=pad,
        use_cache=config.use_cache,
        rng=np.random.default_rng(config.seed) if config.do_sample else None,
        streamer=streamer,
    )
    if config.num_beams == 1:
        sequences = greedy_or_sample(inputs, config.do_sample)
        if streamer is not None:
            streamer.end()
        return sequences
    return beam_search(
        inputs,
        num_beams=config.num_beams,
        num_return_sequences=config.num_return_sequences,
        length_penalty=config.length_penalty,
        early_stopping=config.early_stopping,
        do_sample=config.do_sample,
    )


def _as_ids(array: Any, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(f"{name} must be a 2-D integer array (batch, length), got shape {array.shape} {array.dtype}.")
    if array.shape[0] == 0:
        raise InvalidInputError(f"{name} has no rows: give at least one prompt.")
    return array.astype(np.int64, copy=False)
