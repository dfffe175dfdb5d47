"""Where a string input of an image or audio pipeline may point: a local file, an http(s) URL, or only inline data.

A pipeline built for a server must not let a request make it read the server's files or fetch URLs on its
behalf; `MediaSources.inline_only()` turns both off so strings must carry the data itself (base64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from onnxpipe.errors import InvalidInputError

URL_PREFIXES = ("http://", "https://")


@dataclass(frozen=True)
class MediaSources:
    """Which kinds of string reference a pipeline follows (both by default, as transformers does)."""

    files: bool = True
    urls: bool = True

    @classmethod
    def inline_only(cls) -> MediaSources:
        """Neither files nor URLs: only bytes, arrays, PIL images and base64 strings."""
        return cls(files=False, urls=False)

    def check_url(self, text: str) -> None:
        """Raise InvalidInputError when `text` is an http(s) URL and URLs are turned off."""
        if not self.urls and text.lower().startswith(URL_PREFIXES):
            raise InvalidInputError(
                f"URL inputs are turned off for this pipeline (got {text[:100]!r}); send the data itself "
                "(base64 in JSON), or start the server with --allow-media-urls."
            )

    def may_read_files(self) -> bool:
        """Whether a string may name a local file. When not, the string is never even looked up on disk."""
        return self.files


#: the default (files and URLs, as transformers): a module-level instance, usable as a default argument
FILES_AND_URLS = MediaSources()


def describe(sources: MediaSources) -> str:
    """The string forms a pipeline with these sources takes, for error messages."""
    forms = [name for name, on in (("a file path", sources.files), ("an http(s) URL", sources.urls)) if on]
    return ", ".join([*forms, "a base64 string"])


def fetch_url(url: str, timeout: Optional[float], kind: str, instead: str) -> bytes:
    """The bytes at an http(s) URL (10 s timeout unless given); InvalidInputError saying this machine may be
    offline and what to pass `instead` (e.g. "its file path or bytes")."""
    import urllib.error  # imported here: urllib.request and http.client add ~35 ms to every cold start
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10.0 if timeout is None else timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Cannot fetch {kind} {url!r} ({exc}): this machine may be offline. Download the {kind} elsewhere "
            f"and pass {instead} instead."
        ) from exc
