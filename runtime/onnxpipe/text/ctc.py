"""Greedy CTC decoding as transformers' Wav2Vec2CTCTokenizer does it, read from the folder's vocab.json.

Wav2Vec2CTCTokenizer is a slow (Python) tokenizer with no tokenizer.json, so the runtime decodes from its own
files: vocab.json (optionally nested per language), tokenizer_config.json (pad / word delimiter tokens, casing,
added tokens) and special_tokens_map.json. Decoding collapses repeated tokens, drops the pad (blank) token,
turns the word delimiter into a space and strips; offsets count logit frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Mapping, Optional, Sequence

from onnxpipe.errors import MissingModelFileError
from onnxpipe.text.tokenizer import clean_up_tokenization, token_content


@dataclass(frozen=True)
class CTCVocabulary:
    """id -> token, the blank (pad) token, the word delimiter and the casing rule of a CTC tokenizer."""

    tokens: Mapping[int, str]
    pad_token: str = "<pad>"
    unk_token: str = "<unk>"
    word_delimiter_token: Optional[str] = "|"
    replace_word_delimiter_char: str = " "
    do_lower_case: bool = False
    clean_up_tokenization_spaces: bool = False

    @classmethod
    def from_files(cls, vocab: Mapping[str, Any], config: Mapping[str, Any], special: Mapping[str, Any], where: str) -> CTCVocabulary:
        """Build from parsed vocab.json, tokenizer_config.json and special_tokens_map.json."""
        target = config.get("target_lang")
        encoder = vocab
        if target is not None:
            if target not in vocab:
                raise MissingModelFileError(f"{where}: tokenizer_config.json names target_lang {target!r}, which vocab.json lacks.")
            encoder = vocab[target]
        if not all(isinstance(v, int) for v in encoder.values()):
            raise MissingModelFileError(
                f"{where}: vocab.json is nested per language; set target_lang in tokenizer_config.json to one of its keys."
            )
        tokens = {int(i): t for t, i in encoder.items()}
        for index, entry in (config.get("added_tokens_decoder") or {}).items():  # added tokens win, as in transformers
            tokens[int(index)] = token_content(entry)

        def pick(name: str, default: Optional[str]) -> Optional[str]:
            for source in (special, config):
                if name in source:
                    return token_content(source[name])
            return default

        return cls(
            tokens=tokens,
            pad_token=pick("pad_token", "<pad>"),
            unk_token=pick("unk_token", "<unk>"),
            word_delimiter_token=pick("word_delimiter_token", "|"),
            replace_word_delimiter_char=config.get("replace_word_delimiter_char", " "),
            do_lower_case=bool(config.get("do_lower_case", False)),
            clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        )

    def decode(self, ids: Sequence[int], with_offsets: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """(text, char offsets) of a frame-wise id sequence: repeats collapsed, blanks dropped, delimiters -> spaces.

        Each char offset is {"char", "start_offset", "end_offset"} in logit frames (empty unless with_offsets)."""
        tokens = [self.tokens.get(int(i), self.unk_token) for i in ids]
        groups = [(token, len(list(run))) for token, run in groupby(tokens)]
        chars: list[dict[str, Any]] = []
        start = 0
        for token, count in groups:
            if token != self.pad_token:
                char = self.replace_word_delimiter_char if token == self.word_delimiter_token else token
                chars.append({"char": char, "start_offset": start, "end_offset": start + count})
            start += count
        text = "".join(c["char"] for c in chars).strip()
        if self.do_lower_case:
            text = text.lower()
        if self.clean_up_tokenization_spaces:
            text = clean_up_tokenization(text)
        return text, (chars if with_offsets else [])

    def word_offsets(self, chars: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Group char offsets into words split at the delimiter character, as Wav2Vec2CTCTokenizer._get_word_offsets."""
        words: list[dict[str, Any]] = []
        word, start, end, in_word = "", 0, 0, False
        for offset in chars:
            is_space = offset["char"] == self.replace_word_delimiter_char
            if is_space:
                if in_word:
                    words.append({"word": word, "start_offset": start, "end_offset": end})
                in_word = False
            elif in_word:
                word, end = word + offset["char"], offset["end_offset"]
            else:
                word, start, end, in_word = offset["char"], offset["start_offset"], offset["end_offset"], True
        if in_word:
            words.append({"word": word, "start_offset": start, "end_offset": end})
        return words
