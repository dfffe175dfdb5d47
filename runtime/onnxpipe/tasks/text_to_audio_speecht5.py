"""SpeechT5 text-to-speech: encoder, a spectrogram loop over the cached decoder, then postnet + HiFi-GAN vocoder.

The loop is SpeechT5ForTextToSpeech.generate_speech (transformers 4.57) in numpy, for one text: each step feeds the
whole output sequence of mel frames (the prenet needs it) and the speaker embedding, appends the step's last frame,
and stops once the stop probabilities of a step sum to >= `threshold` (after minlenratio * encoder length /
reduction_factor steps), or at maxlenratio * encoder length / reduction_factor steps. The prenet's dropout, which
SpeechT5 applies even at inference, comes in as 0/1 keep masks drawn here: a unit is kept where a uniform draw is
below p (transformers' `_consistent_dropout` keeps it where bernoulli(p) is 1) and the graph scales by 1 / (1 - p).
The draws come from numpy's Generator(seed), not torch's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.manifest import dtype_of_filename
from onnxpipe.options import check_number
from onnxpipe.session import OnnxSession, parse_device
from onnxpipe.tasks.text_to_audio import TextToAudioPipeline
from onnxpipe.text.tokenizer import TextEncoder

COMPONENTS = {
    "encoder": "encoder_model",
    "decoder": "decoder_model",
    "decoder_with_past": "decoder_with_past_model",
    "vocoder": "decoder_postnet_and_vocoder",
}
MASK_PREFIX = "prenet_keep_mask."
VOCODER_CONFIG = "vocoder_config.json"


@dataclass(frozen=True)
class SpeechT5Graphs:
    """The four sessions of a SpeechT5 export and the sizes their signatures fix."""

    encoder: OnnxSession
    decoder: OnnxSession
    decoder_with_past: OnnxSession
    vocoder: OnnxSession

    @classmethod
    def from_paths(cls, paths: Mapping[str, Path], device: Any = "cpu", threads: Optional[int] = None) -> SpeechT5Graphs:
        """Open the sessions of `paths` (role -> file, roles as in COMPONENTS)."""
        return cls(**{role: OnnxSession(Path(paths[role]), device, threads) for role in COMPONENTS})

    @property
    def mask_names(self) -> list[str]:
        return sorted(name for name in self.decoder.inputs if name.startswith(MASK_PREFIX))

    @property
    def units(self) -> int:
        """The prenet's width: the last axis of its keep masks."""
        shapes = {i.name: i.shape for i in self.decoder.session.get_inputs()}
        return int(shapes[self.mask_names[0]][-1])


def generate_waveform(
    graphs: SpeechT5Graphs, input_ids: np.ndarray, speaker_embeddings: np.ndarray, *, threshold: float = 0.5,
    minlenratio: float = 0.0, maxlenratio: float = 20.0, dropout: float = 0.5,
    rng: Optional[np.random.Generator] = None, keep_all: bool = False, max_frames: Optional[int] = None,
) -> np.ndarray:
    """The waveform (samples,) of one text's ids (1, length), as generate_speech(..., vocoder=...) returns it.
    keep_all feeds keep masks of ones (every prenet unit kept), the export's check against torch; max_frames
    bounds the spectrogram (a call's max_audio_seconds): passing it raises InvalidInputError."""
    rng = rng if rng is not None else np.random.default_rng()
    encoded = graphs.encoder.run({"input_ids": input_ids.astype(np.int64)})
    hidden, mask = encoded["encoder_outputs"], encoded["encoder_attention_mask"]
    spectrum_shape = graphs.decoder.output_shapes["spectrum"]
    reduction, bins = int(spectrum_shape[0]), int(spectrum_shape[1])
    maxlen = int(hidden.shape[1] * maxlenratio / reduction)
    minlen = int(hidden.shape[1] * minlenratio / reduction)
    sequence = np.zeros((1, 1, bins), np.float32)
    names, units = graphs.mask_names, graphs.units
    spectra, past = [], None
    step = 0
    while True:
        step += 1
        feeds = {"speaker_embeddings": speaker_embeddings, "output_sequence": sequence, "encoder_attention_mask": mask}
        for name in names:
            shape = (1, sequence.shape[1], units)
            feeds[name] = np.ones(shape, np.float32) if keep_all else (rng.random(shape) < dropout).astype(np.float32)
        if past is None:
            outputs = graphs.decoder.run({**feeds, "encoder_hidden_states": hidden})
            encoder_cache = {k.replace("present.", "past_key_values."): v for k, v in outputs.items() if ".encoder." in k}
        else:
            outputs = graphs.decoder_with_past.run({**feeds, **past})
        past = {**encoder_cache, **{k.replace("present.", "past_key_values."): v
                                    for k, v in outputs.items() if k.startswith("present.") and ".decoder." in k}}
        sequence = outputs["output_sequence_out"]
        spectra.append(outputs["spectrum"].reshape(reduction, bins))
        if max_frames is not None and step * reduction > max_frames:
            raise InvalidInputError(
                f"the speech would pass {max_frames} spectrogram frames (the call's max_audio_seconds) before the model "
                "stops; send a shorter text, or lower maxlenratio / minlenratio."
            )
        if step < minlen:
            continue
        if step >= maxlen or float(np.sum(outputs["prob"])) >= threshold:
            break
    spectrogram = np.concatenate(spectra, axis=0)
    return graphs.vocoder.run({"spectrogram": spectrogram})["waveform"].astype(np.float32, copy=False)


class SpeechT5TextToAudioPipeline(TextToAudioPipeline):
    """SpeechT5 + HiFi-GAN: audio of shape (samples,), as transformers' pipeline returns it for SpeechT5."""

    PARAMS = {"speaker_embeddings": None, "threshold": 0.5, "minlenratio": 0.0, "maxlenratio": 20.0}
    GENERATES = True

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        device_kind, _ = parse_device(self.device)
        self.model_path = self.folder.onnx_file(dtype, device_kind, stem=COMPONENTS["decoder"])
        self.dtype = dtype_of_filename(self.model_path.name, COMPONENTS["decoder"])
        paths = {role: self.folder.onnx_file(self.dtype, device_kind, stem=stem) for role, stem in COMPONENTS.items()}
        self.graphs = SpeechT5Graphs.from_paths(paths, self.device, intra_op_num_threads)
        self.session = self.graphs.decoder
        if not self.graphs.mask_names:
            raise MissingModelFileError(
                f"{self.model_path} draws the prenet's dropout inside the graph (a plain optimum export) and the folder "
                "lacks the tokenizer.json and vocoder settings onnxpipe needs; export the checkpoint with `onnxpipe "
                "export CHECKPOINT --task text-to-audio --vocoder VOCODER`."
            )

    def setup(self) -> None:
        super().setup()
        self.encoder = TextEncoder(self.folder)
        self.speaker_dim = int(self.folder.config.get("speaker_embedding_dim", 512))
        self.dropout = float(self.folder.config.get("speech_decoder_prenet_dropout", 0.5))
        vocoder = self.folder.read_json(VOCODER_CONFIG)
        if not vocoder:
            self.folder.require(VOCODER_CONFIG, "holds the vocoder's sampling_rate (written by onnxpipe export)")
        self.sampling_rate = int(vocoder["sampling_rate"])
        #: waveform samples per spectrogram frame (HiFi-GAN's upsampling; SpeechT5HifiGanConfig's default 4*4*4*4)
        self.hop_length = int(np.prod(vocoder.get("upsample_rates") or [4, 4, 4, 4]))

    def check_params(self, params: dict[str, Any]) -> None:
        if "speaker_embeddings" in params and params["speaker_embeddings"] is not None:
            self.speaker(params["speaker_embeddings"])
        check_number("threshold", params.get("threshold", 0.5), must="must be a number")
        for name in ("minlenratio", "maxlenratio"):
            check_number(name, params.get(name, 0.0), minimum=0.0, must="must be a number >= 0")

    def check_call(self, options: dict[str, Any]) -> None:
        if self.params(options)["speaker_embeddings"] is None:
            raise InvalidOptionError(
                "SpeechT5 needs a speaker embedding: pass forward_params={'speaker_embeddings': x} with x of shape "
                f"(1, {self.speaker_dim}) (an x-vector, as transformers' pipeline takes it)."
            )

    def speaker(self, value: Any) -> np.ndarray:
        """speaker_embeddings as a (1, speaker_embedding_dim) float32 array (numpy, nested lists or a torch tensor)."""
        try:
            array = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidOptionError(f"speaker_embeddings must be an array of numbers, got {value!r:.80}.") from exc
        if array.ndim == 1:
            array = array[None]
        if array.shape != (1, self.speaker_dim) or not np.all(np.isfinite(array)):
            raise InvalidOptionError(
                f"speaker_embeddings must be finite numbers of shape (1, {self.speaker_dim}) or ({self.speaker_dim},), "
                f"got shape {array.shape}."
            )
        return array

    def synthesize(self, text: str, params: dict[str, Any], rng: np.random.Generator, options: dict[str, Any]) -> np.ndarray:
        ids = self.encoder.tokenizer.encode(text).ids
        self.limits.check_input_tokens(len(ids))
        return generate_waveform(
            self.graphs, np.asarray([ids], dtype=np.int64), self.speaker(params["speaker_embeddings"]),
            threshold=float(params["threshold"]), minlenratio=float(params["minlenratio"]),
            maxlenratio=float(params["maxlenratio"]), dropout=self.dropout, rng=rng, max_frames=self.max_frames(),
        )

    def max_frames(self) -> Optional[int]:
        """Spectrogram frames of max_audio_seconds (None: no limit), by the vocoder's samples per frame."""
        seconds = self.limits.max_audio_seconds
        return None if seconds is None else int(seconds * self.sampling_rate / self.hop_length)
