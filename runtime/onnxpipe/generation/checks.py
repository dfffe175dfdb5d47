"""Checks of generation option values, with transformers' rules where it has them (GenerationConfig.validate,
the logits processors' constructors), raising InvalidOptionError that names the value and the fix."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool, check_int, check_number, is_int, is_number


def check_values(values: dict[str, Any]) -> dict[str, Any]:
    """Every value normalized (token lists as tuples, numbers as floats) and checked; InvalidOptionError
    names the first bad one and what it must be."""
    v = dict(values)
    _int(v, "max_length", minimum=1)
    _int(v, "max_new_tokens", minimum=1, optional=True, message="must be greater than 0")
    _int(v, "min_length", minimum=0)
    _int(v, "min_new_tokens", minimum=0, optional=True)
    _int(v, "num_beams", minimum=1)
    _int(v, "num_return_sequences", minimum=1)
    _int(v, "no_repeat_ngram_size", minimum=0, optional=True)
    for key in ("pad_token_id", "bos_token_id", "decoder_start_token_id", "forced_bos_token_id", "seed"):
        _int(v, key, minimum=0, optional=True)
    if v["early_stopping"] not in (True, False, "never"):
        raise InvalidOptionError(f"early_stopping must be True, False or 'never', got {v['early_stopping']!r}.")
    for key in ("do_sample", "use_cache", "renormalize_logits", "remove_invalid_values", "max_length_from_call"):
        check_bool(key, v[key])
    v["eos_token_id"] = _token_list(v["eos_token_id"], "eos_token_id")
    v["forced_eos_token_id"] = _token_list(v["forced_eos_token_id"], "forced_eos_token_id")
    v["suppress_tokens"] = _token_list(v["suppress_tokens"], "suppress_tokens", allow_int=False)
    v["begin_suppress_tokens"] = _token_list(v["begin_suppress_tokens"], "begin_suppress_tokens", allow_int=False)
    v["bad_words_ids"] = _word_lists(v["bad_words_ids"])
    v["sequence_bias"] = _sequence_bias(v["sequence_bias"])
    v["stop_strings"] = _stop_strings(v["stop_strings"])
    v["exponential_decay_length_penalty"] = _decay(v["exponential_decay_length_penalty"])
    _float(v, "length_penalty")
    _float(v, "max_time", optional=True, positive=True)
    if v["repetition_penalty"] is not None:
        _float(v, "repetition_penalty", positive=True)
    if v["num_return_sequences"] != 1:
        if v["num_beams"] == 1 and not v["do_sample"]:
            raise InvalidOptionError(
                f"num_return_sequences={v['num_return_sequences']} needs do_sample=True or num_beams > 1 "
                "(greedy search returns one sequence per input)."
            )
        if v["num_beams"] > 1 and v["num_return_sequences"] > v["num_beams"]:
            raise InvalidOptionError(
                f"num_return_sequences ({v['num_return_sequences']}) has to be smaller or equal to num_beams "
                f"({v['num_beams']})."
            )
    if v["do_sample"]:
        _check_sampling(v)
    return v


def _check_sampling(v: dict[str, Any]) -> None:
    temperature = v["temperature"]
    if temperature is not None:
        if not is_number(temperature) or not temperature > 0:
            extra = " For greedy decoding set do_sample=False." if temperature == 0 else ""
            raise InvalidOptionError(f"temperature must be a strictly positive float with do_sample=True, got {temperature!r}.{extra}")
        v["temperature"] = float(temperature)
    if v["top_k"] is not None and v["top_k"] != 0:
        _int(v, "top_k", minimum=1, message="must be a strictly positive integer (0 or None disables it)")
    if v["top_p"] is not None:
        _float(v, "top_p")
        if not 0.0 <= v["top_p"] <= 1.0:
            raise InvalidOptionError(f"top_p must be in [0, 1], got {v['top_p']!r}.")
    if v["typical_p"] is not None:
        _float(v, "typical_p")
        if not 0.0 < v["typical_p"] <= 1.0:
            raise InvalidOptionError(f"typical_p must be in (0, 1] (1.0 turns it off), got {v['typical_p']!r}.")
    for key in ("epsilon_cutoff", "eta_cutoff"):
        if v[key] is not None:
            _float(v, key)
            if not 0.0 <= v[key] < 1.0:
                raise InvalidOptionError(f"{key} must be in [0, 1) (0 turns it off), got {v[key]!r}.")
    if v["min_p"] is not None:
        _float(v, "min_p")
        if not 0.0 <= v["min_p"] <= 1.0:
            raise InvalidOptionError(f"min_p must be in [0, 1], got {v['min_p']!r}.")


def _int(v: dict, key: str, *, minimum: int, optional: bool = False, message: Optional[str] = None) -> None:
    if v[key] is not None and not is_int(v[key]):  # e.g. 1e9, a float: say that, not the bound's message
        message = f"must be an integer >= {minimum} (a whole number, not {type(v[key]).__name__})"
    check_int(key, v[key], minimum=minimum, optional=optional, must=message or f"must be an integer >= {minimum}")


def _float(v: dict, key: str, *, optional: bool = False, positive: bool = False) -> None:
    value = check_number(key, v[key], optional=optional)
    if value is None:
        return
    if positive and not value > 0:
        raise InvalidOptionError(f"{key} must be strictly positive, got {value!r}.")
    v[key] = float(value)


def _token_list(value: Any, key: str, allow_int: bool = True) -> Optional[tuple[int, ...]]:
    if value is None:
        return None
    if allow_int and is_int(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(is_int(t) and t >= 0 for t in value):
        form = "a token id or a list of token ids" if allow_int else "a list of token ids"
        raise InvalidOptionError(f"{key} must be {form} (non-negative integers), got {value!r}.")
    return tuple(value)


def _word_lists(value: Any) -> Optional[tuple[tuple[int, ...], ...]]:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(seq, (list, tuple)) and len(seq) > 0
        and all(is_int(t) and t >= 0 for t in seq)
        for seq in value
    )
    if not ok:
        raise InvalidOptionError(
            f"bad_words_ids must be a non-empty list of non-empty lists of token ids, got {value!r}."
        )
    return tuple(tuple(seq) for seq in value)


def _sequence_bias(value: Any) -> Optional[tuple[tuple[tuple[int, ...], float], ...]]:
    if value is None:
        return None
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    ok = isinstance(pairs, (list, tuple)) and len(pairs) > 0 and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], (list, tuple)) and len(p[0]) > 0
        and all(is_int(t) and t >= 0 for t in p[0]) and is_number(p[1])
        for p in pairs
    )
    if not ok:
        raise InvalidOptionError(
            f"sequence_bias must be a non-empty list of [[token ids], bias] pairs (or a dict of tuples), got {value!r}."
        )
    return tuple((tuple(ids), float(bias)) for ids, bias in pairs)


def _stop_strings(value: Any) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(s, str) and s for s in value):
        raise InvalidOptionError(f"stop_strings must be a non-empty string or list of strings, got {value!r}.")
    return tuple(value)


def _decay(value: Any) -> Optional[tuple[int, float]]:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and is_int(value[0]) and value[0] >= 0 and is_number(
        value[1]) and value[1] > 0
    if not ok:
        raise InvalidOptionError(
            "exponential_decay_length_penalty must be (start_index, decay_factor): a non-negative int and a "
            f"positive number, got {value!r}."
        )
    return (value[0], float(value[1]))
