"""VITS / MMS-TTS text-to-speech over the export's two graphs, with its two noises drawn here (seedable per call).

vits_prior.onnx maps the ids and the duration noise to the prior's means and log-variances over the output frames;
vits_waveform.onnx maps the prior latents to the waveform. As in VitsModel.forward:
    duration_noise = N(0, 1) of shape (1, 2, ids) * noise_scale_duration
    prior_latents = means + N(0, 1) of the means' shape * exp(log_variances) * noise_scale
with noise_scale, noise_scale_duration and speaking_rate from config.json unless the call sets them. The normal
draws come from numpy's Generator(seed), not from torch's generator: the same seed gives the same audio in
onnxpipe, but not the audio torch.manual_seed gives. With both noise scales 0 the audio equals transformers'.

A folder with one `model.onnx` (optimum's VITS export, transformers.js repos such as mms-tts ports) also runs: its
graph draws the noise itself (onnxruntime's RandomNormalLike, unseeded, scales fixed at export), so `seed` and the
noise options are refused there.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.limits import FLAGS
from onnxpipe.manifest import dtype_of_filename
from onnxpipe.options import check_number
from onnxpipe.session import OnnxSession, parse_device
from onnxpipe.tasks.text_to_audio import TextToAudioPipeline
from onnxpipe.text.vits_tokenizer import VitsTokenizer

PRIOR, WAVEFORM = "vits_prior", "vits_waveform"
#: text ids a limited call (a server's) takes when max_input_tokens is unset: ~2,000 characters, ~2-3 minutes of
#: speech; the real-size MMS prior then needs ~2 GB (its attention is quadratic in the ids)
LIMITED_MAX_IDS = 4096
NOISE_OPTIONS = ("seed", "noise_scale", "noise_scale_duration", "speaking_rate")


class VitsTextToAudioPipeline(TextToAudioPipeline):
    """VITS: one forward pass per text; output audio of shape (1, samples) as VitsModel's waveform."""

    OPTIONS = {**TextToAudioPipeline.OPTIONS, "noise_scale": None, "noise_scale_duration": None, "speaking_rate": None}

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        device_kind, _ = parse_device(self.device)
        #: one graph that draws its own noise (optimum / transformers.js) instead of onnxpipe's two
        self.single_graph = not self.folder.variants(PRIOR) and bool(self.folder.variants())
        stem = "model" if self.single_graph else PRIOR
        self.model_path = self.folder.onnx_file(dtype, device_kind, stem=stem)
        self.dtype = dtype_of_filename(self.model_path.name, stem)
        self.session = OnnxSession(self.model_path, self.device, intra_op_num_threads)
        self.waveform_session = None if self.single_graph else OnnxSession(
            self.folder.onnx_file(self.dtype, device_kind, stem=WAVEFORM), self.device, intra_op_num_threads
        )

    def setup(self) -> None:
        super().setup()
        self.tokenizer = VitsTokenizer(self.folder)
        config = self.folder.config
        self.sampling_rate = int(config.get("sampling_rate", 16000))
        #: waveform samples per prior frame (HiFi-GAN's upsampling)
        self.hop_length = int(np.prod(config.get("upsample_rates") or [8, 8, 2, 2]))
        self.config_noise = {
            "noise_scale": float(config.get("noise_scale", 0.667)),
            "noise_scale_duration": float(config.get("noise_scale_duration", 0.8)),
            "speaking_rate": float(config.get("speaking_rate", 1.0)),
        }

    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        given = [name for name in NOISE_OPTIONS if options[name] is not None]
        if self.single_graph and given:
            raise InvalidOptionError(
                f"{self.model_path.name} is a one-graph VITS export whose noise onnxruntime draws inside the graph "
                f"(unseeded, scales fixed at export), so {given} cannot apply; re-export the checkpoint with "
                "`onnxpipe export CHECKPOINT --task text-to-audio` for seeded noise and per-call noise scales."
            )
        for name in ("noise_scale", "noise_scale_duration"):
            check_number(name, options[name], minimum=0.0, optional=True, must="must be a number >= 0 or None")
        check_number("speaking_rate", options["speaking_rate"], positive=True, optional=True,
                     must="must be a number > 0 or None")

    def check_params(self, params: dict[str, Any]) -> None:
        pass  # PARAMS is empty: speaker_id (multi-speaker VITS) is refused by the base class's check

    def check_text_length(self, count: int) -> None:
        """Refuse a text of more ids than the call's limits allow: max_input_tokens, or (when that is unset but the
        call is limited at all, as a server's calls are) LIMITED_MAX_IDS: VITS has no position table, and its text
        encoder's attention grows with the square of the text (12,000 ids took 15 GB on the real-size model)."""
        if self.limits.max_input_tokens is not None or self.limits.max_audio_seconds is None:
            self.limits.check_input_tokens(count)
        elif count > LIMITED_MAX_IDS:
            raise InvalidInputError(
                f"the text is {count} ids long (characters and the blanks between them), above the {LIMITED_MAX_IDS} "
                f"a limited call takes without max_input_tokens ({FLAGS['max_input_tokens']}); VITS' memory grows with "
                "the square of the text: split it into sentences, or raise the limit."
            )

    def synthesize(self, text: str, params: dict[str, Any], rng: np.random.Generator, options: dict[str, Any]) -> np.ndarray:
        scales = {name: options[name] if options[name] is not None else value for name, value in self.config_noise.items()}
        ids = self.tokenizer.encode(text)
        if not ids:
            raise InvalidInputError(
                f"No character of {text!r:.80} is in this VITS model's vocabulary (after lower-casing); nothing to speak."
            )
        self.check_text_length(len(ids))
        input_ids = np.asarray([ids], dtype=np.int64)
        if self.waveform_session is None:  # one graph: its own noise
            name = self.session.output_named("waveform")
            waveform = self.session.run({"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}, [name])[name]
            return waveform.astype(np.float32, copy=False)
        duration_noise = rng.standard_normal((1, 2, len(ids))).astype(np.float32) * np.float32(scales["noise_scale_duration"])
        prior = self.session.run({
            "input_ids": input_ids,
            "attention_mask": np.ones_like(input_ids),
            "duration_noise": duration_noise,
            "length_scale": np.asarray(1.0 / scales["speaking_rate"], dtype=np.float32),
        })
        means, log_variances = prior["prior_means"], prior["prior_log_variances"]
        self.limits.check_output_audio(means.shape[-1] * self.hop_length, self.sampling_rate)
        noise = rng.standard_normal(means.shape).astype(np.float32)
        latents = means + noise * np.exp(log_variances) * np.float32(scales["noise_scale"])
        waveform = self.waveform_session.run(
            {"prior_latents": latents, "output_padding_mask": prior["output_padding_mask"]}
        )["waveform"]
        return waveform.astype(np.float32, copy=False)
