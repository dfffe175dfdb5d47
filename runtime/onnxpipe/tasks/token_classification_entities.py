"""Turning per-token label scores into transformers' token-classification entities, rule for rule.

Mirrors `TokenClassificationPipeline.gather_pre_entities`, `aggregate*`, `group_entities` and
`aggregate_overlapping_entities` of transformers 4.57, with the Rust tokenizer standing in for the
fast tokenizer: tokens come from `id_to_token` (transformers' convert_ids_to_tokens) and grouped words
from the tokenizer's decoder (transformers' convert_tokens_to_string). Scores stay numpy float32 here,
as in transformers, so that ties and averages round the same way; the pipeline converts them at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

STRATEGIES = ("none", "simple", "first", "average", "max")
WORD_STRATEGIES = ("first", "average", "max")


@dataclass(frozen=True)
class TokenText:
    """What aggregation needs from the tokenizer: token strings, their decoding, the unknown token, and
    whether the model marks word continuations (WordPiece's "##"), which is how transformers tells subwords."""

    tokenizer: Any  # tokenizers.Tokenizer
    unk_id: Optional[int]

    @property
    def word_aware(self) -> bool:
        """True when the tokenizer model has a continuing-subword prefix (transformers' test, verbatim)."""
        return bool(getattr(self.tokenizer.model, "continuing_subword_prefix", None))

    def token(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(token_id)

    def join(self, tokens: Sequence[str]) -> str:
        """transformers' fast convert_tokens_to_string: the decoder on the token strings, else spaces."""
        decoder = self.tokenizer.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)


def gather_pre_entities(
    sentence: str,
    input_ids: Sequence[int],
    scores: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    special_tokens_mask: Sequence[int],
    text: TokenText,
) -> list[dict]:
    """One record per non-special token: its token string, label scores, character span, index in the
    window, and whether it continues the previous word."""
    word_aware = text.word_aware
    pre_entities = []
    for idx, token_scores in enumerate(scores):
        if special_tokens_mask[idx]:
            continue
        token_id = int(input_ids[idx])
        word = text.token(token_id)
        start, end = (int(v) for v in offsets[idx])
        word_ref = sentence[start:end]
        if word_aware:
            is_subword = len(word) != len(word_ref)
        else:
            # transformers' fallback for byte-level BPE and SentencePiece: a token glued to the previous character
            is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
        if token_id == text.unk_id:
            word = word_ref
            is_subword = False
        pre_entities.append(
            {"word": word, "scores": token_scores, "start": start, "end": end, "index": idx, "is_subword": is_subword}
        )
    return pre_entities


def aggregate(pre_entities: list[dict], strategy: str, id2label: Mapping[int, str], text: TokenText) -> list[dict]:
    """Label each token (none, simple) or each word (first, average, max); group entities unless none."""
    if strategy in ("none", "simple"):
        entities = []
        for pre in pre_entities:
            label = int(pre["scores"].argmax())
            entities.append(
                {
                    "entity": id2label[label],
                    "score": pre["scores"][label],
                    "index": pre["index"],
                    "word": pre["word"],
                    "start": pre["start"],
                    "end": pre["end"],
                }
            )
    else:
        entities = aggregate_words(pre_entities, strategy, id2label, text)
    if strategy == "none":
        return entities
    return group_entities(entities, text)


def aggregate_word(entities: list[dict], strategy: str, id2label: Mapping[int, str], text: TokenText) -> dict:
    """One word's label: its first token's (first), its most confident token's (max) or the mean scores' (average)."""
    word = text.join([entity["word"] for entity in entities])
    if strategy == "first":
        scores = entities[0]["scores"]
    elif strategy == "max":
        scores = max(entities, key=lambda entity: entity["scores"].max())["scores"]
    elif strategy == "average":
        scores = np.nanmean(np.stack([entity["scores"] for entity in entities]), axis=0)
    else:
        raise ValueError(f"word aggregation takes {WORD_STRATEGIES}, got {strategy!r}")
    label = int(scores.argmax())
    return {
        "entity": id2label[label],
        "score": scores[label],
        "word": word,
        "start": entities[0]["start"],
        "end": entities[-1]["end"],
    }


def aggregate_words(pre_entities: list[dict], strategy: str, id2label: Mapping[int, str], text: TokenText) -> list[dict]:
    """Gather subword tokens into words so a word never gets two labels."""
    words: list[dict] = []
    group: list[dict] = []
    for entity in pre_entities:
        if group and not entity["is_subword"]:
            words.append(aggregate_word(group, strategy, id2label, text))
            group = []
        group.append(entity)
    if group:
        words.append(aggregate_word(group, strategy, id2label, text))
    return words


def get_tag(entity_name: str) -> tuple[str, str]:
    """("B" or "I", tag) of a label; a label without a B-/I- prefix counts as a continuation ("I")."""
    if entity_name.startswith("B-"):
        return "B", entity_name[2:]
    if entity_name.startswith("I-"):
        return "I", entity_name[2:]
    return "I", entity_name


def group_sub_entities(entities: list[dict], text: TokenText) -> dict:
    """One entity group from adjacent entities: the first's tag, the mean score, the decoded words."""
    score = np.nanmean([entity["score"] for entity in entities])
    return {
        "entity_group": entities[0]["entity"].split("-", 1)[-1],
        "score": np.mean(score),
        "word": text.join([entity["word"] for entity in entities]),
        "start": entities[0]["start"],
        "end": entities[-1]["end"],
    }


def group_entities(entities: list[dict], text: TokenText) -> list[dict]:
    """Merge runs of adjacent entities with the same tag; a B- label always starts a new group."""
    groups: list[dict] = []
    run: list[dict] = []
    for entity in entities:
        if run:
            bi, tag = get_tag(entity["entity"])
            _, last_tag = get_tag(run[-1]["entity"])
            if not (tag == last_tag and bi != "B"):
                groups.append(group_sub_entities(run, text))
                run = []
        run.append(entity)
    if run:
        groups.append(group_sub_entities(run, text))
    return groups


def aggregate_overlapping_entities(entities: list[dict]) -> list[dict]:
    """De-duplicate entities from overlapping stride windows: sorted by start, of two overlapping entities
    keep the longer, or on equal length the higher-scored (transformers' rule)."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda x: x["start"])
    kept = []
    previous = entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length = entity["end"] - entity["start"]
            previous_length = previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            kept.append(previous)
            previous = entity
    kept.append(previous)
    return kept
