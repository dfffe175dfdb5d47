"""The input forms question-answering accepts, as transformers' QuestionAnsweringArgumentHandler reads them.

`question=..., context=...` keywords (str + str, list + str, list + list), one `{"question", "context"}`
dict, a list of dicts, two positional strings, objects with `question_text`/`context_text` (SquadExample),
the deprecated `X=`/`data=` keywords, and generators (answered lazily). Each form becomes a list of
(question, context) string pairs; every bad form raises an error that says what to pass instead.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable
from typing import Any, Iterator, Union

from onnxpipe.errors import InvalidInputError

#: keyword arguments that carry inputs rather than options
INPUT_KEYS = ("question", "context", "X", "data")
_USAGE = "pass question='...', context='...' or a {'question': ..., 'context': ...} dict (or a list of those)"


class MissingQuestionOrContextError(InvalidInputError, KeyError):
    """A dict input without its 'question' or 'context' key; a KeyError too, as transformers raises."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def parse_inputs(args: tuple, inputs: dict[str, Any]) -> Union[list[tuple[str, str]], Iterator[tuple[str, str]]]:
    """The (question, context) pairs of one call: a list, or a lazy iterator when a generator was passed."""
    if args and any(key in inputs for key in ("question", "context")):
        raise InvalidInputError(
            f"question-answering got inputs both positionally and as question=/context= keywords; {_USAGE}, not both."
        )
    if len(args) == 1:
        given = args[0]
    elif len(args) == 2 and all(isinstance(arg, str) for arg in args):
        given = [{"question": args[0], "context": args[1]}]
    elif args:
        given = list(args)
    elif "X" in inputs or "data" in inputs:
        name = "X" if "X" in inputs else "data"
        warnings.warn(
            f"Passing inputs as `{name}=` is deprecated (as in transformers); use question= and context=.",
            FutureWarning,
            stacklevel=4,  # parse_inputs <- QuestionAnsweringPipeline.split_inputs <- Pipeline.__call__ <- the caller
        )
        given = inputs[name]
    elif "question" in inputs and "context" in inputs:
        given = _from_keywords(inputs["question"], inputs["context"])
    else:
        missing = [key for key in ("question", "context") if key not in inputs]
        raise InvalidInputError(f"question-answering needs both question= and context=; {' and '.join(missing)} missing. {_USAGE}.")

    if isinstance(given, types.GeneratorType):
        return (normalize(item) for item in given)
    if isinstance(given, dict):
        given = [given]
    elif isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise InvalidInputError(
            f"question-answering cannot read a lone {type(given).__name__} {given!r:.60}: it needs a question and "
            f"a context; {_USAGE}."
        )
    return [normalize(item) for item in given]


def _from_keywords(question: Any, context: Any) -> list[dict[str, Any]]:
    """Pair up question= and context= the way transformers does."""
    if isinstance(question, (list, tuple)) and isinstance(context, str):
        return [{"question": q, "context": context} for q in question]
    if isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
        if len(question) != len(context):
            raise InvalidInputError(
                f"Questions and contexts don't have the same lengths ({len(question)} questions, {len(context)} "
                "contexts); pass one context per question, or a single context string for all of them."
            )
        return [{"question": q, "context": c} for q, c in zip(question, context)]
    if isinstance(question, str) and isinstance(context, str):
        return [{"question": question, "context": context}]
    raise InvalidInputError(
        f"question-answering cannot pair question={type(question).__name__} with context={type(context).__name__}: "
        "pass two strings, a list of questions with one context string, or two lists of the same length "
        "(for one question over many contexts, repeat it: question=[q] * len(contexts))."
    )


def normalize(item: Any) -> tuple[str, str]:
    """One input as a (question, context) pair of non-empty strings."""
    if hasattr(item, "question_text") and hasattr(item, "context_text"):  # transformers' SquadExample
        fields = {"question": item.question_text, "context": item.context_text}
    elif isinstance(item, dict):
        for key in ("question", "context"):
            if key not in item:
                raise MissingQuestionOrContextError(
                    f"You need to provide a dictionary with keys {{question:..., context:...}}; got keys {sorted(map(str, item))}."
                )
        extra = sorted(map(str, set(item) - {"question", "context"}))
        if extra:
            raise InvalidInputError(f"A question-answering dict takes only 'question' and 'context'; got extra keys {extra}.")
        fields = item
    else:
        raise InvalidInputError(
            f"{item!r:.60} ({type(item).__name__}) is not a question-answering input; {_USAGE}."
        )
    for key in ("question", "context"):
        value = fields[key]
        if value is None:
            raise InvalidInputError(f"`{key}` cannot be None; pass a string.")
        if not isinstance(value, str):
            raise InvalidInputError(f"`{key}` must be a string, got {type(value).__name__}: {value!r:.60}.")
        if not value:
            raise InvalidInputError(f"`{key}` cannot be empty; pass a non-empty string.")
    return fields["question"], fields["context"]
