"""Content negotiation for inference answers: the request's `Accept` header picks between an answer's file (PNG
bytes for image-to-image, WAV bytes for text-to-audio, as the Hugging Face Inference API answers those tasks) and
JSON (the same file as base64, and every other answer). Without a preference (no Accept, `*/*`) a single image or
audio answer comes back as bytes, everything else as JSON; an Accept the server cannot satisfy is a 406 that says
what it can give.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from starlette.responses import JSONResponse, Response

from onnxpipe.serving.media import JSON, PNG, WAV, binary_of
from onnxpipe.serving.protocol import RequestError

SERVED = (JSON, PNG, WAV)  # every media type an inference route may answer with
SYNONYMS = {"audio/x-wav": WAV, "audio/wave": WAV, "audio/vnd.wave": WAV}
VARY = {"Vary": "Accept"}


def parse_accept(header: Optional[str]) -> list[tuple[str, float]]:
    """(media range, q) pairs of an Accept header, lower-cased and without other parameters; an absent or empty
    header accepts anything. A q that is not a number counts as 0 (the range is ignored)."""
    if not header or not header.strip():
        return [("*/*", 1.0)]
    ranges = []
    for item in header.split(","):
        media, *params = [part.strip() for part in item.split(";")]
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
        media = media.lower()
        ranges.append((SYNONYMS.get(media, media), q))
    return ranges


def _match(offer: str, ranges: Sequence[tuple[str, float]]) -> tuple[float, int]:
    """(q, specificity) of the most specific range that matches `offer`: exact 3, `type/*` 2, `*/*` 1; (0, 0)
    when none does."""
    kind = offer.split("/")[0]
    best = (0.0, 0)
    for media, q in ranges:
        specificity = 3 if media == offer else 2 if media == f"{kind}/*" else 1 if media == "*/*" else 0
        if specificity > best[1]:
            best = (q, specificity)
    return best


def choose(accept: Optional[str], offers: Sequence[str]) -> Optional[str]:
    """The offer the header prefers: highest q, then the most specific match, then the order of `offers`; None when
    it accepts none of them."""
    ranges = parse_accept(accept)
    scored = [(*_match(offer, ranges), -i, offer) for i, offer in enumerate(offers)]
    q, _, _, offer = max(scored)
    return offer if q > 0 else None


def not_acceptable(accept: Optional[str], offers: Sequence[str], what: str) -> RequestError:
    """The 406 for an Accept header that allows none of `offers`, naming what the server can give."""
    return RequestError(
        406, "not_acceptable",
        f"the Accept header {accept!r} allows none of what {what} answers with: {', '.join(offers)}. "
        "Send Accept: application/json (images and audio as base64 in JSON), image/png (one image-to-image answer) "
        "or audio/wav (one text-to-audio answer), or */*.",
    )


def check_acceptable(accept: Optional[str]) -> None:
    """A 406 before any work when the header accepts nothing an inference route ever answers with."""
    if choose(accept, SERVED) is None:
        raise not_acceptable(accept, SERVED, "this server")


def respond(answer: Any, accept: Optional[str], model: str) -> Response:
    """The answer as the header asks: the bytes of the file it is (or holds as its audio) with that file's content
    type, or JSON. A 406 (RequestError) when the header accepts neither."""
    media = binary_of(answer)
    offers = (media.media_type, JSON) if media is not None else (JSON,)
    chosen = choose(accept, offers)
    if chosen is None:
        what = f"model {model!r}" + ("" if media is not None else " (this answer is JSON only: lists, labels, arrays)")
        raise not_acceptable(accept, offers, what)
    if chosen == JSON:
        return JSONResponse(answer, headers=VARY)
    return Response(media.data(), media_type=chosen, headers=VARY)
