"""Whisper decoding over the ONNX encoder + merged decoder, as transformers 4.57's `WhisperGenerationMixin.generate`.

Encode, settle the decoder prompt (detecting the language when needed), run the shared generate() with
Whisper's timestamp rules as an extra processor, strip padding and EOS, then cut the window at its timestamp
pairs (`retrieve_segments`) and resume where the last pair closed, until every row's frames are consumed:
a clip longer than 30 s (long-form, no chunk_length_s) takes several windows, a short one usually one.
For word timestamps each decoded window is run once more through the decoder to read its cross-attentions
(alignment.py), which gives every token a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.generate import generate, generation_lengths, special_tokens
from onnxpipe.generation.io_binding import ENCODER_HIDDEN
from onnxpipe.generation.onnx_decoder import CacheState
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.tasks.whisper.alignment import OUTPUT_PREFIX, head_weights, token_times
from onnxpipe.tasks.whisper.prompt import Language, PromptSettings, init_tokens
from onnxpipe.tasks.whisper.timestamps import TIME_PRECISION, TimestampRules, retrieve_segments, strip_generated

WINDOW_FRAMES = 3000  # mel frames in a 30 s window: 2 (conv stride) * max_source_positions
INPUT_STRIDE = 2  # mel frames per encoder position (conv1 stride 1 * conv2 stride 2)


class EncodedWindows:
    """The Decoder protocol over windows already encoded: `prepare` takes each row's window index in column 0 of
    `input_ids` (generate() needs integer ids; the audio itself went through the encoder once)."""

    is_encoder_decoder = True

    def __init__(self, seq2seq: OnnxSeq2Seq, hidden: np.ndarray):
        self.seq2seq = seq2seq
        self.hidden = hidden

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CacheState:
        hidden = self.hidden[np.asarray(input_ids)[:, 0]]
        if self.seq2seq.runner is not None:
            hidden = self.seq2seq.runner.to_device(hidden)
        return CacheState(batch=hidden.shape[0], encoder={ENCODER_HIDDEN: hidden})

    def step(self, state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, CacheState]:
        return self.seq2seq.step(state, tokens, attention_mask)

    def select(self, state: CacheState, rows: np.ndarray) -> CacheState:
        return self.seq2seq.select(state, rows)


@dataclass(frozen=True)
class WhisperSettings:
    """What a transcription call decides once: the generation options, the prompt rules and the Whisper
    options (language, task, return_timestamps for decoding)."""

    config: GenerationConfig
    prompt: PromptSettings
    language: Language
    task: Optional[str]
    timestamps: Optional[bool]  # True / False / None (generation_config.json's value when the call gives none)
    eos_for_rules: int  # the timestamp rules' EOS (eos_token_id, else bos_token_id)
    max_initial_timestamp_index: Optional[int]
    max_target_positions: int
    vocab_size: int
    prompt_ids: Optional[tuple[int, ...]] = None  # put before every window's decoder prompt ("first-segment")
    alignment: Optional[Alignment] = None  # set for word timestamps: each token gets a time


@dataclass(frozen=True)
class Alignment:
    """What token times need: the alignment heads ((layer, head) pairs), the median filter width, and each row's
    mel frames of real audio (the attention past them is cropped)."""

    heads: tuple[tuple[int, int], ...]
    median_width: int
    num_frames: Optional[tuple[int, ...]] = None


class WhisperModel:
    """Encoder + merged decoder sessions and the decoding loops."""

    def __init__(self, seq2seq: OnnxSeq2Seq):
        self.seq2seq = seq2seq
        self.encoder = seq2seq.encoder
        self.features_name = "input_features"
        if self.features_name not in self.encoder.inputs:
            raise InvalidInputError(
                f"{self.encoder.path.name} takes {list(self.encoder.inputs)}, not input_features: it is not a Whisper "
                "encoder. Export the checkpoint with `onnxpipe export CHECKPOINT --task automatic-speech-recognition`."
            )

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Encoder hidden states of (B, mel bins, 3000) features."""
        name = self.seq2seq.hidden_name
        return self.encoder.run({self.features_name: features.astype(np.float32, copy=False)}, [name])[name]

    def detect_language(self, windows: EncodedWindows, settings: PromptSettings) -> np.ndarray:
        """Each row's most likely language token after <|startoftranscript|> (transformers' detect_language)."""
        rows = windows.hidden.shape[0]
        state = windows.prepare(np.arange(rows, dtype=np.int64)[:, None], np.ones((rows, 1), dtype=np.int64))
        start = np.full((rows, 1), settings.decoder_start_token_id, dtype=np.int64)
        logits, _ = windows.step(state, start, np.ones((rows, 1), dtype=np.int64))
        ids = np.asarray(sorted(set(int(i) for i in settings.lang_to_id.values())), dtype=np.int64)
        return _masked_argmax(logits, ids)

    def transcribe(self, features: np.ndarray, settings: WhisperSettings) -> list[np.ndarray]:
        """The tokens of each row of (B, mel, frames >= 3000) features, prompt, padding and EOS removed."""
        return [tokens for tokens, _ in self.transcribe_timed(features, settings)]

    def transcribe_timed(self, features: np.ndarray, settings: WhisperSettings) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
        """(tokens, each token's time in seconds or None) of each row of (B, mel, frames >= 3000) features; times
        when settings.alignment is set.

        As transformers' generate() loop: every row starts at frame 0 and, after each window, seeks to the end
        of its last closed timestamp pair (or past the whole window), until all rows reach their last frame.
        Short clips (3000 frames) usually take one window; with timestamps a window cut short by max_length
        resumes at its last timestamp pair, as in transformers.
        """
        rows, total = features.shape[0], features.shape[-1]
        if total > WINDOW_FRAMES and settings.timestamps is False:
            raise InvalidOptionError(
                "You have passed more than 3000 mel input features (> 30 seconds) which automatically enables "
                "long-form generation which requires the model to predict timestamp tokens. Please either pass "
                "`return_timestamps=True` or make sure to pass no more than 3000 mel input features (or pass "
                "chunk_length_s=30 to decode the clip in independent windows)."
            )
        timestamps = bool(settings.timestamps) or total > WINDOW_FRAMES
        no_stamps = settings.prompt.no_timestamps_token_id
        if timestamps and no_stamps is None:
            raise InvalidOptionError(
                "Timestamps need generation_config.json's no_timestamps_token_id, which this model lacks "
                "(clips over 30 s need them too: pass chunk_length_s=30 for those)."
            )
        begin = no_stamps + 1 if no_stamps is not None else settings.vocab_size + 1
        first = EncodedWindows(self.seq2seq, self.encode(features[:, :, :WINDOW_FRAMES]))
        prompt = self.prompt(first, settings, timestamps)
        if settings.prompt_ids is not None:
            previous = np.tile(np.asarray(settings.prompt_ids, dtype=np.int64), (rows, 1))
            prompt = np.concatenate([previous, prompt], axis=1)
        seek = np.zeros(rows, dtype=np.int64)
        pieces: list[list[np.ndarray]] = [[] for _ in range(rows)]
        times: list[list[np.ndarray]] = [[] for _ in range(rows)]
        while (seek < total).any():
            active = np.nonzero(seek < total)[0]
            frames = np.minimum(total - seek[active], WINDOW_FRAMES)
            if (seek == 0).all():
                windows = EncodedWindows(self.seq2seq, first.hidden)
            else:
                cut = np.zeros((len(active), features.shape[1], WINDOW_FRAMES), dtype=np.float32)
                for j, (row, count) in enumerate(zip(active, frames)):
                    cut[j, :, :count] = features[row, :, seek[row] : seek[row] + count]
                windows = EncodedWindows(self.seq2seq, self.encode(cut))
            tokens, sequences = self.decode_windows(windows, prompt[active], settings, timestamps)
            aligned = self.align(windows, sequences, prompt.shape[1], settings.alignment, seek[active], active)
            for j, (row, count, sequence) in enumerate(zip(active, frames, tokens)):
                offset_s = float(seek[row]) * TIME_PRECISION / INPUT_STRIDE
                segments, offset = retrieve_segments(sequence, offset_s, begin, int(count), INPUT_STRIDE,
                                                     None if aligned is None else aligned[j])
                if offset <= 0:
                    raise InvalidInputError(
                        f"Decoding made no progress at {offset_s:.2f} s: the window ended on a timestamp pair at its start, "
                        "where transformers would loop forever. Pass chunk_length_s=30 to decode fixed windows instead."
                    )
                pieces[row].extend(s.tokens for s in segments)
                times[row].extend(s.times for s in segments if s.times is not None)
                seek[row] += offset
        return [
            (np.concatenate(p) if p else np.zeros(0, dtype=np.int64),
             None if settings.alignment is None else (np.concatenate(t) if t else np.zeros(0, dtype=np.float32)))
            for p, t in zip(pieces, times)
        ]

    def align(self, windows: EncodedWindows, sequences: np.ndarray, prompt_length: int, alignment: Optional[Alignment],
              seek: np.ndarray, rows: np.ndarray) -> Optional[list[np.ndarray]]:
        """Each row's generated-token times (padding and EOS included, as generated) from one decoder pass over the
        decoded sequences without a cache; None without `alignment`."""
        if alignment is None:
            return None
        fed = sequences[:, :-1]  # the last token was never fed back: transformers has no attention row for it
        layers = sorted({layer for layer, _ in alignment.heads})
        names = [f"{OUTPUT_PREFIX}{layer}" for layer in layers]
        decoder = self.seq2seq.decoder
        feeds = {"input_ids": fed, ENCODER_HIDDEN: windows.hidden, "use_cache_branch": np.array([False]),
                 **self.seq2seq.layout.empty(fed.shape[0])}
        attentions = decoder.run(feeds, names)
        by_layer = {layer: attentions[name] for layer, name in zip(layers, names)}
        frames = [None if alignment.num_frames is None else int(alignment.num_frames[row]) - int(seek[j])
                  for j, row in enumerate(rows)]
        crops = 2 if len(set(frames)) == 1 else 1
        return [token_times(head_weights(by_layer, alignment.heads, j), prompt_length, frames[j], alignment.median_width, crops)
                for j in range(len(rows))]

    def prompt(self, windows: EncodedWindows, settings: WhisperSettings, timestamps: bool) -> np.ndarray:
        rows = windows.hidden.shape[0]
        return init_tokens(settings.prompt, rows, settings.language, settings.task, timestamps,
                           lambda: self.detect_language(windows, settings.prompt))

    def decode_windows(self, windows: EncodedWindows, prompt: np.ndarray, settings: WhisperSettings,
                       timestamps: bool) -> tuple[list[np.ndarray], np.ndarray]:
        """Each row's generated tokens (padding and EOS removed) and the (rows, prompt + generated) sequences."""
        config = settings.config
        length = prompt.shape[1]
        if config.max_new_tokens is not None and config.max_new_tokens + length > settings.max_target_positions:
            raise InvalidOptionError(
                f"The length of the decoder prompt is {length} and max_new_tokens is {config.max_new_tokens}: together "
                f"{config.max_new_tokens + length}, past the model's max_target_positions "
                f"({settings.max_target_positions}). Reduce max_new_tokens to at most {settings.max_target_positions - length}."
            )
        total = generation_lengths(config, length)[0]
        if total > settings.max_target_positions:
            raise InvalidOptionError(
                f"max_length={total} is past the model's max_target_positions ({settings.max_target_positions}); "
                "lower max_length or pass max_new_tokens."
            )
        processors = []
        if timestamps:
            processors.append(TimestampRules(settings.prompt.no_timestamps_token_id, settings.eos_for_rules, length,
                                             settings.max_initial_timestamp_index))
        rows = windows.hidden.shape[0]
        sequences = generate(windows, np.arange(rows, dtype=np.int64)[:, None], None, config,
                             processors=processors, decoder_input_ids=prompt)
        eos, pad, _ = special_tokens(config, True)
        eos_id = eos[0] if eos else None
        return [strip_generated(row[length:], pad, eos_id) for row in sequences], np.asarray(sequences)


def _masked_argmax(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per row, the id in `ids` with the highest logit (first one on ties, as torch's argmax over -inf elsewhere)."""
    masked = np.full_like(logits, -np.inf)
    masked[:, ids] = logits[:, ids]
    return masked.argmax(axis=-1)

