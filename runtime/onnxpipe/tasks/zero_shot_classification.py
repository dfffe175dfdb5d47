"""zero-shot-classification: an NLI model scores each candidate label as a hypothesis about the sequence.

Every (sequence, "This example is {label}.") pair goes through the sequence-classification graph;
the entailment logits become the label scores, exactly as transformers' pipeline computes them.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.maths import softmax
from onnxpipe.options import check_bool
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.tokenizer import EncodedBatch

DEFAULT_TEMPLATE = "This example is {}."


def parse_labels(labels: Any) -> list[str]:
    """Candidate labels as a list: a string is split on commas (blank pieces dropped), as transformers does."""
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
        raise InvalidOptionError(
            f"candidate_labels must be a list of strings or one comma-separated string, got {labels!r:.100}."
        )
    if len(labels) == 0:
        raise InvalidOptionError(
            "You must include at least one label: candidate_labels is empty "
            "(pass e.g. candidate_labels=['sports', 'politics'] or 'sports, politics')."
        )
    return list(labels)


def hypotheses(labels: list[str], template: Any) -> list[str]:
    """One hypothesis per label; InvalidOptionError when the template has no {} slot or cannot be formatted."""
    if not isinstance(template, str):
        raise InvalidOptionError(f"hypothesis_template must be a string with a {{}} slot, got {template!r:.100}.")
    try:
        filled = [template.format(label) for label in labels]
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise InvalidOptionError(
            f'The hypothesis_template "{template}" cannot be formatted with a label ({type(exc).__name__}: {exc}); '
            "it takes exactly one positional slot such as {} or {0}, e.g. 'This example is {}.'"
        ) from None
    if filled[0] == template:
        raise InvalidOptionError(
            f'The provided hypothesis_template "{template}" was not able to be formatted with the target labels. '
            "Make sure the passed template includes formatting syntax such as {} where the label should go."
        )
    return filled


def _sequences_and_labels(sequences: Any, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """(inputs, options) of a call: transformers takes candidate_labels as the second positional argument too."""
    if len(args) == 1 and "candidate_labels" not in kwargs:
        kwargs["candidate_labels"] = args[0]
    elif args:
        raise InvalidOptionError(
            f"Unable to understand extra arguments {args!r:.100}: pass candidate_labels= (and other options) by name."
        )
    return sequences, kwargs


class ZeroShotClassificationPipeline(TextPipeline):
    """Rank candidate labels for texts with an NLI model; options as in transformers: candidate_labels,
    hypothesis_template, multi_label (and the deprecated multi_class), batch_size (over the pairs)."""

    OPTIONS = {
        "candidate_labels": None,
        "hypothesis_template": DEFAULT_TEMPLATE,
        "multi_label": False,
        "multi_class": None,
        **TOKENIZER_OPTIONS,
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.entailment_id = self._entailment_id()
        self.logits_name = self.session.output_named("logits")

    def _entailment_id(self) -> int:
        """The id of the first label starting with "entail" (any case), as transformers finds it.

        transformers only warns and scores with the last logit when there is none; that ranks labels by an
        arbitrary class, so here it is an error.
        """
        config = self.folder.config
        label2id = config.get("label2id") or {v: k for k, v in (config.get("id2label") or {}).items()}
        for label, index in label2id.items():
            if str(label).lower().startswith("entail"):
                return int(index)
        raise InvalidOptionError(
            f"zero-shot-classification needs an NLI model whose config.json label2id has an entailment label "
            f"(a name starting with 'entail', any case); {self.folder.path} has labels {sorted(label2id)}. "
            "Use a model fine-tuned on NLI (e.g. MNLI), or fix label2id/id2label in its config.json."
        )

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """One string or a list of strings; candidate_labels may also come as the second argument."""
        return _sequences_and_labels(*args, **kwargs)

    def check_call(self, options: dict[str, Any]) -> None:
        if options["candidate_labels"] is None:
            raise InvalidOptionError(
                "zero-shot-classification needs candidate_labels, e.g. candidate_labels=['sports', 'politics'] "
                "(in the call or in pipeline(...))."
            )

    def check_item(self, item: Any) -> str:
        if not isinstance(item, str) or not item:
            raise InvalidInputError(
                "zero-shot-classification takes a non-empty string or a list of them; got "
                f"{type(item).__name__}: {item!r:.80}."
            )
        return item

    def run_items(self, items: Sequence[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        """Every (sequence, hypothesis) pair through the NLI graph, then the labels ranked per sequence."""
        labels = options["candidate_labels"]
        pairs = [(item, hypothesis) for item in items for hypothesis in hypotheses(labels, options["hypothesis_template"])]
        logits = np.stack(self.run_pieces(self.prepare(pairs, options), options)).reshape(len(items), len(labels), -1)
        return [self._rank(item, labels, rows, options["multi_label"]) for item, rows in zip(items, logits)]

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        if options["multi_class"] is not None:
            warnings.warn(
                "The `multi_class` argument has been deprecated and renamed to `multi_label`.", UserWarning, stacklevel=4
            )
            options["multi_label"] = options["multi_class"]
            options["multi_class"] = None
        if options["multi_label"] is None:
            options["multi_label"] = False
        check_bool("multi_label", options["multi_label"])
        if options["candidate_labels"] is not None:
            options["candidate_labels"] = parse_labels(options["candidate_labels"])
            hypotheses(options["candidate_labels"], options["hypothesis_template"])
        elif not isinstance(options["hypothesis_template"], str):
            hypotheses(["label"], options["hypothesis_template"])

    def prepare(self, pairs: list[tuple[str, str]], options: dict[str, Any]) -> list:
        """Tokenize (premise, hypothesis) pairs, truncating only the premise (transformers' ONLY_FIRST)."""
        limit = self.encoder.model_max_length if options["max_length"] is None else options["max_length"]
        premises, hypotheses_ = zip(*pairs)
        try:
            encodings = self.encoder.tokenize(
                premises, hypotheses_, options["truncation"], options["max_length"], strategy="only_first"
            )
        except InvalidInputError:
            raise
        except Exception as exc:  # the Rust tokenizer cannot truncate the premise enough: the hypothesis alone is too long
            raise InvalidInputError(self._too_long_hypothesis(pairs, limit)) from exc
        return encodings

    def _too_long_hypothesis(self, pairs: list[tuple[str, str]], limit: Optional[int]) -> str:
        plain = self.encoder.configured(None)
        for premise, hypothesis in pairs:
            enc = plain.encode(premise, hypothesis)
            if limit is not None and len(enc) > limit:
                kept = sum(1 for s in enc.sequence_ids if s != 0)
                if kept >= limit:
                    return (
                        f"The hypothesis {hypothesis!r:.120} takes {kept} tokens with the special tokens, which leaves "
                        f"no room for the sequence within the model's limit of {limit}; shorten the candidate label "
                        "or the hypothesis_template."
                    )
        return f"A (sequence, hypothesis) pair could not be truncated to {limit} tokens; shorten the candidate labels."

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        return outputs[self.logits_name][row].astype(np.float32)

    def _rank(self, sequence: str, labels: list[str], logits: np.ndarray, multi_label: bool) -> dict[str, Any]:
        """transformers' scores: softmax of the entailment logits over the labels, or, with multi_label or a single
        label, softmax of [contradiction, entailment] per label (contradiction is class 0, or the last class
        when entailment is 0)."""
        entailment = self.entailment_id
        if multi_label or len(labels) == 1:
            contradiction = -1 if entailment == 0 else 0
            scores = softmax(logits[:, [contradiction, entailment]])[:, 1]
        else:
            scores = softmax(logits[:, entailment])
        order = list(reversed(scores.argsort()))  # transformers' order, ties included
        return {"sequence": sequence, "labels": [labels[i] for i in order], "scores": scores[order].tolist()}
