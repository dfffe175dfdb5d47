"""The option checks every task uses, written once: each raises InvalidOptionError naming the option, what it must
be and the value it got ("top_k must be a positive int or None (all labels), got 0.").

A bool is an int to Python; none of the integer or number checks accepts True or False, as transformers' own
checks would fail on them later with a less useful message. `must` overrides the "must be ..." part of a
message where a task says more (a default, what None means).
"""

from __future__ import annotations

from typing import Any, Collection, Optional

from onnxpipe.errors import InvalidOptionError
from onnxpipe.maths import FUNCTIONS


def is_int(value: Any) -> bool:
    """A Python int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A Python int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fail(name: str, must: str, value: Any) -> None:
    """Raise the house's message: "{name} {must}, got {value!r}."."""
    raise InvalidOptionError(f"{name} {must}, got {value!r}.")


def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = False, must: Optional[str] = None) -> Any:
    """`value` if it is an int >= minimum (or None when optional); else InvalidOptionError
    "{name} must be an int >= {minimum}, got ..."."""
    if value is None and optional:
        return value
    if not is_int(value) or value < minimum:
        fail(name, must or f"must be an int >= {minimum}", value)
    return value


def check_number(
    name: str, value: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None, positive: bool = False,
    optional: bool = False, must: Optional[str] = None,
) -> Any:
    """`value` if it is an int or float (within [minimum, maximum], > 0 when positive; None when optional); else
    InvalidOptionError "{name} must be a number, got ..."."""
    if value is None and optional:
        return value
    if (
        not is_number(value) or (minimum is not None and not value >= minimum)
        or (maximum is not None and not value <= maximum) or (positive and not value > 0)
    ):  # written so that NaN fails every bound
        fail(name, must or "must be a number", value)
    return value


def check_bool(name: str, value: Any, *, optional: bool = False, must: Optional[str] = None) -> Any:
    """`value` if it is True or False (or None when optional); else InvalidOptionError
    "{name} must be True or False" ("True, False or None" when optional)."""
    if value is None and optional:
        return value
    if not isinstance(value, bool):
        fail(name, must or ("must be True, False or None" if optional else "must be True or False"), value)
    return value


def check_choice(name: str, value: Any, choices: Collection[Any], *, must: Optional[str] = None) -> Any:
    """`value` if it is one of `choices` (by ==, as `in` tests); else "{name} must be one of a, b, c, got ..."."""
    if value not in choices:
        fail(name, must or f"must be one of {', '.join(map(str, choices))}", value)
    return value


def check_top_k(top_k: Any, none_means: str) -> None:
    """Raise InvalidOptionError unless `top_k` is None or a positive int; `none_means` says what None does."""
    check_int("top_k", top_k, optional=True, must=f"must be a positive int or None ({none_means})")


def check_timeout(options: dict[str, Any]) -> None:
    """Check `timeout`, the URL fetch timeout of image and audio inputs (transformers' `timeout`)."""
    check_number("timeout", options["timeout"], positive=True, optional=True,
                 must="must be a positive number of seconds or None")


def check_function_to_apply(options: dict[str, Any]) -> None:
    """Normalize `function_to_apply` (a name or transformers' enum) to a maths.FUNCTIONS key; None keeps the model's
    default."""
    function = options["function_to_apply"]
    if function is None:
        return
    name = getattr(function, "value", getattr(function, "name", function))
    if not isinstance(name, str) or name.lower() not in FUNCTIONS:
        raise InvalidOptionError(
            f"function_to_apply must be one of {', '.join(FUNCTIONS)} (or None for the model's default), got {function!r}."
        )
    options["function_to_apply"] = name.lower()


def check_seconds_pair(name: str, value: Any, must: str) -> None:
    """Raise InvalidOptionError unless `value` is None, seconds >= 0, or a [left, right] pair of them."""
    sides = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if value is not None and (len(sides) != 2 or any(not is_number(s) or s < 0 for s in sides)):
        fail(name, must, value)
