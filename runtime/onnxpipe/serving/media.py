"""Images and audio in requests and answers, without the web stack.

Answers: a PIL image becomes its PNG file and an audio answer (`{"audio": array, "sampling_rate": int}`, transformers'
text-to-audio output) its WAV file, both held as `EncodedMedia`, a base64 string that remembers its media type. It
goes into JSON as it is (the base64 the Hugging Face Inference API puts in JSON), and a route can hand the file's
bytes back instead when the client asks for them (negotiation.py). Requests: a body that is an image or audio file
itself (what `huggingface_hub.InferenceClient` sends for image inputs without parameters) is read as the input.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Optional

import numpy as np

from onnxpipe.audio.wav_write import wav_bytes

PNG, WAV, JSON = "image/png", "audio/wav", "application/json"
# the first bytes of the media files a raw request body may be, for bodies sent without a media Content-Type
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF",
         b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\x1aE\xdf\xa3")
RAW_CONTENT_TYPES = ("image/", "audio/", "video/", "application/octet-stream")


class EncodedMedia(str):
    """A file as a base64 string (what JSON carries) that also knows its media type and gives back its bytes."""

    media_type: str

    def __new__(cls, data: bytes, media_type: str) -> EncodedMedia:
        text = super().__new__(cls, base64.b64encode(data).decode("ascii"))
        text.media_type = media_type
        return text

    def __reduce__(self) -> tuple:  # pickles (Ray) as the file and its type
        return (EncodedMedia, (self.data(), self.media_type))

    def data(self) -> bytes:
        """The file's bytes."""
        return base64.b64decode(self)


def is_pil_image(value: Any) -> bool:
    """A PIL image, told without importing Pillow (text-only servers need not have it)."""
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "mode")


def is_audio_answer(value: Any) -> bool:
    """transformers' text-to-audio output: exactly `{"audio": array, "sampling_rate": int}`."""
    return (isinstance(value, dict) and value.keys() == {"audio", "sampling_rate"}
            and isinstance(value["audio"], np.ndarray) and isinstance(value["sampling_rate"], (int, np.integer)))


def png(image: Any) -> EncodedMedia:
    """A PIL image as its PNG file (how answers carry segmentation masks, depth pictures and upscaled images, as
    the Hugging Face Inference API carries masks)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return EncodedMedia(buffer.getvalue(), PNG)


def wav_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """An audio answer with its samples as a WAV file (32-bit float, lossless): `{"audio": EncodedMedia,
    "sampling_rate": int}`, the Inference API's text-to-speech output shape."""
    rate = int(answer["sampling_rate"])
    return {"audio": EncodedMedia(wav_bytes(answer["audio"], rate), WAV), "sampling_rate": rate}


def binary_of(answer: Any) -> Optional[EncodedMedia]:
    """The one file an answer is (an image-to-image answer) or holds as its audio (a text-to-audio answer), which may
    be served as bytes; None for answers that are JSON only (lists, depth maps with their arrays, labels...)."""
    if isinstance(answer, EncodedMedia):
        return answer
    if isinstance(answer, dict) and answer.keys() == {"audio", "sampling_rate"} and isinstance(answer["audio"], EncodedMedia):
        return answer["audio"]
    return None


def raw_media_input(body: bytes, content_type: Optional[str]) -> Optional[str]:
    """The input of a request whose body is an image or audio file itself (as a base64 string, which every media
    pipeline reads), or None for a JSON body. A body counts as a file when its Content-Type says image/*, audio/*,
    video/* or application/octet-stream, or when it starts like a known media file (huggingface_hub labels raw bytes
    application/json)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type.startswith(RAW_CONTENT_TYPES) or body.startswith(MAGIC):
        return base64.b64encode(body).decode("ascii")
    return None
