"""VITS / MMS-TTS character tokenizer (transformers' VitsTokenizer), read from vocab.json and tokenizer_config.json.

VitsTokenizer has no tokenizer.json: it lower-cases the text (keeping vocabulary entries as written), drops the
characters outside the vocabulary, splits the text on its added tokens (pad and unk), maps each character to its id
and, with add_blank, puts the pad id between characters and at both ends of each piece. Checkpoints that phonemize
(phonemize=true: espeak through the phonemizer package) are refused; uroman romanisation is not applied, as in
transformers when the uroman package is not installed.
"""

from __future__ import annotations

import re
from typing import Any

from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.model_folder import ModelFolder


class VitsTokenizer:
    """Text -> input ids exactly as transformers' VitsTokenizer (phonemize=False) encodes them."""

    def __init__(self, folder: ModelFolder):
        config = folder.read_json("tokenizer_config.json")
        self.encoder: dict[str, int] = folder.read_json("vocab.json")
        if not self.encoder:
            folder.require("vocab.json", "holds VITS' character vocabulary")
        if config.get("phonemize", True):
            raise MissingModelFileError(
                f"{folder.path}: this VITS tokenizer phonemizes its input (phonemize=true, espeak through the "
                "phonemizer package), which onnxpipe does not run; use a checkpoint with phonemize=false (MMS-TTS)."
            )
        self.add_blank = bool(config.get("add_blank", True))
        self.normalize = bool(config.get("normalize", True))
        self.language = config.get("language")
        self.pad_id = 0  # VitsTokenizer inserts id 0 as the blank, whatever the pad token is
        self.unk_id = self.encoder.get(_content(config.get("unk_token", "<unk>")))
        added = {_content(t["content"]) for t in (config.get("added_tokens_decoder") or {}).values()}
        added |= {_content(config.get(name)) for name in ("pad_token", "unk_token") if config.get(name)}
        self.added = {token: self.encoder[token] for token in added if token in self.encoder}
        self.words = list(self.encoder) + [t for t in self.added if t not in self.encoder]
        longest_first = sorted(self.added, key=len, reverse=True)
        self.splitter = re.compile("|".join(map(re.escape, longest_first))) if longest_first else None

    def encode(self, text: str) -> list[int]:
        """The input ids of one text ([] when nothing of it is in the vocabulary)."""
        if self.normalize:
            text = self._lower(text)
        if self.language == "ron":
            text = text.replace("ț", "ţ")
        if self.normalize:
            text = "".join(c for c in text if c in self.encoder).strip()
        ids: list[int] = []
        for piece, is_added in self._pieces(text):
            if is_added:
                ids.append(self.added[piece])
                continue
            chars = [self.encoder.get(c, self.unk_id) for c in piece]
            if any(i is None for i in chars):
                raise InvalidInputError(f"The text has characters outside the VITS vocabulary and it has no unk token: {piece!r:.80}.")
            if self.add_blank:
                spread = [self.pad_id] * (2 * len(chars) + 1)
                spread[1::2] = chars
                chars = spread
            ids.extend(chars)
        return ids

    def _lower(self, text: str) -> str:
        """VitsTokenizer.normalize_text: lower-case, but keep a vocabulary entry that matches as written."""
        out, i = [], 0
        while i < len(text):
            word = next((w for w in self.words if text.startswith(w, i)), None)
            if word is not None:
                out.append(word)
                i += len(word)
            else:
                out.append(text[i].lower())
                i += 1
        return "".join(out)

    def _pieces(self, text: str) -> list[tuple[str, bool]]:
        """The text split on the added tokens (as the slow tokenizer's trie does), empty pieces dropped."""
        if self.splitter is None:
            return [(text, False)] if text else []
        pieces, start = [], 0
        for match in self.splitter.finditer(text):
            if match.start() > start:
                pieces.append((text[start:match.start()], False))
            pieces.append((match.group(), True))
            start = match.end()
        if start < len(text):
            pieces.append((text[start:], False))
        return pieces


def _content(token: Any) -> str:
    """A special token's text, whether tokenizer_config.json stores it as a string or an AddedToken dict."""
    return token["content"] if isinstance(token, dict) else str(token)
