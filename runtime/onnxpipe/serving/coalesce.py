"""Generic dynamic batching: single-item requests with equal parameters become one list call of the pipeline.

Nothing here knows a task. Every pipeline answers a list input with one result per item, but a single input's
answer is not always that item's result: text-classification wraps a lone string's result in a list, as
transformers does. So the first request of each kind (its parameter names and the shape of its input) is run
alone, as a direct call would run it, and once more as a two-item list; comparing the two answers tells whether
that kind's answer is the item's result ("unwrap"), the result in a list ("wrap"), or neither, in which case
that kind is always run alone. New tasks need no change here.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import AllCancelled, CancelToken, cancel_scope
from onnxpipe.errors import CancelledError
from onnxpipe.serving.media import is_audio_answer, is_pil_image, png, wav_answer

UNWRAP, WRAP, ALONE = "unwrap", "wrap", "alone"
_PROBES_BEFORE_ALONE = 3  # a kind whose probe disagrees this many times is run alone from then on
_MAX_RULES = 4096


def _catchable(exc: BaseException) -> bool:
    """What a call may hand back to its request: any error, including the Rust tokenizers' PanicException (a
    BaseException), but not an interpreter exit."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


_PLAIN = (float, int, str, bool, type(None))


def jsonable(value: Any) -> Any:
    """`value` with numpy arrays and scalars turned into lists and Python numbers, PIL images into base64 PNG
    strings and audio answers' samples into base64 WAV strings (media.EncodedMedia: what JSON can carry, and what a
    route may send back as bytes instead)."""
    if is_pil_image(value):
        return png(value)
    if is_audio_answer(value):
        return wav_answer(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) in _PLAIN for v in value):  # a vector of Python numbers: nothing to convert
            return value if isinstance(value, list) else list(value)
        return [jsonable(v) for v in value]
    return value


def close(a: Any, b: Any, tol: float = 1e-4) -> bool:
    """Same structure, same strings and ints, floats within `tol` (relative above 1): batching pads, which
    changes float rounding slightly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (bool, str)) or isinstance(b, (bool, str)) or a is None or b is None:
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return type(a) is type(b) and a == b


def shape_of(value: Any) -> str:
    """A short description of an input's structure (types and dict keys, not values), e.g. `{context:str,question:str}`."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{shape_of(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


@dataclass
class Job:
    """One request's pipeline call: `pipe(inputs, **params)`. `single` inputs (not a list) may be coalesced."""

    inputs: Any
    params: dict[str, Any]
    key: str = ""  # the parameters, canonical: jobs with equal keys may share a call
    kind: tuple[str, str] = ("", "")  # (parameter names, input shape): the wrap rule is learned per kind
    size: int = 0  # length of the input as JSON: a task-free proxy for its token count
    single: bool = True
    enqueued: float = field(default_factory=time.monotonic)
    cancel: CancelToken = field(default_factory=CancelToken, compare=False, repr=False)  # set when its request gives up

    def __post_init__(self) -> None:
        self.key = json.dumps(self.params, sort_keys=True, default=repr)
        self.single = not isinstance(self.inputs, (list, tuple))
        self.kind = (",".join(sorted(self.params)), shape_of(self.inputs))
        self.size = len(json.dumps(self.inputs, default=repr))


class Outcome:
    """A job's answer or the exception its call raised."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: Optional[BaseException] = None):
        self.value, self.error = value, error


# A pipeline call costs about as much as this many more characters of input (measured on 2 cores: ~1.6 ms of fixed
# cost against ~0.03 ms per character on all-MiniLM-L6-v2 int8, ~11 ms against ~0.15 ms on bert-base): the price of a
# call, in the unit of padding.
CALL_COST_CHARS = 64
CALL_COST_TOKENS = 16  # the same price in tokens (about 4 characters per token in English)


def padding_runs(jobs: Sequence[Job], indices: Sequence[int], limit: int, call_cost: int = CALL_COST_CHARS,
                 sizes: Optional[Sequence[int]] = None, max_tokens: Optional[int] = None) -> list[list[int]]:
    """Split `indices` into runs of at most `limit` jobs of similar input size, choosing the cuts that minimize
    sum(run length x longest input in the run) + call_cost per run: padding against the fixed cost of a call.

    `sizes` (one per index, e.g. token counts) replaces the jobs' JSON sizes; with `max_tokens`, a run of several
    jobs also keeps run length x its longest size within that budget (a token budget, as TEI's --max-batch-tokens):
    a long input then runs with few others and short ones fill a run."""
    size_of = dict(zip(indices, sizes)) if sizes is not None else {i: jobs[i].size for i in indices}
    order = sorted(indices, key=lambda i: size_of[i])
    lengths = [size_of[i] for i in order]
    best = [0.0] + [math.inf] * len(order)  # best[j]: cheapest split of the first j jobs
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j - 1, max(0, j - limit) - 1, -1):  # the last run is order[i:j], padded to lengths[j - 1]
            if max_tokens is not None and j - i > 1 and (j - i) * lengths[j - 1] > max_tokens:
                break  # longer runs only pad more
            cost = best[i] + (j - i) * lengths[j - 1] + call_cost
            if cost <= best[j]:  # on a tie the longer run (smaller i, seen last) wins
                best[j], cut[j] = cost, i
    runs, j = [], len(order)
    while j > 0:
        runs.append(order[cut[j] : j])
        j = cut[j]
    return runs[::-1]


def token_counts(pipe: Any, inputs: Sequence[Any]) -> Optional[list[int]]:
    """Each input's token count by the pipeline's own tokenizer (text inputs of text pipelines), or None where the
    inputs are not plain texts or the pipeline has no tokenizer (the caller then keeps counting jobs)."""
    tokenizer = getattr(getattr(pipe, "encoder", None), "tokenizer", None)
    if tokenizer is None or not all(isinstance(item, str) for item in inputs):
        return None
    try:
        return [len(encoding.ids) for encoding in tokenizer.encode_batch(list(inputs))]
    except Exception:  # noqa: BLE001 - a text the tokenizer refuses: the call itself reports it to its request
        return None


class Coalescer:
    """Runs a batch of jobs on one pipeline with as few calls as the answers allow; thread-safe."""

    def __init__(
        self,
        pipe: Any,
        max_batch_size: int = 32,
        on_call: Optional[Callable[[int, float], None]] = None,
        on_probe: Optional[Callable[[str], None]] = None,
        max_batch_tokens: Optional[int] = None,
    ):
        self.pipe = pipe
        self.max_batch_size = max_batch_size
        #: padded tokens one call may hold (text inputs); None: calls are bounded by max_batch_size only
        self.max_batch_tokens = max_batch_tokens
        self.on_call = on_call or (lambda n, seconds: None)
        self.on_probe = on_probe or (lambda rule: None)
        self.rules: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.failed_probes: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def rule(self, kind: tuple[str, str]) -> Optional[str]:
        """The learned rule of a kind of request, or None before its first probe."""
        with self.lock:
            rule = self.rules.get(kind)
            if rule is not None:
                self.rules.move_to_end(kind)
            return rule

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """One outcome per job, in order. Coalesced calls that fail are retried one job at a time, so an error
        reaches only the request that caused it."""
        outcomes: list[Optional[Outcome]] = [None] * len(jobs)
        groups: dict[str, list[int]] = {}
        wrap: dict[int, bool] = {}
        for i, job in enumerate(jobs):
            if not job.single or self.max_batch_size == 1:
                outcomes[i] = self._call_alone(job)
                continue
            rule = self.rule(job.kind)
            if rule is None:
                outcomes[i] = self._probe(job)
                rule = self.rule(job.kind)
            if rule in (UNWRAP, WRAP) and outcomes[i] is None:
                groups.setdefault(job.key, []).append(i)
                wrap[i] = rule == WRAP
            elif outcomes[i] is None:
                outcomes[i] = self._call_alone(job)
        for indices in groups.values():
            sizes = token_counts(self.pipe, [jobs[i].inputs for i in indices]) if self.max_batch_tokens else None
            budget = {} if sizes is None else {"sizes": sizes, "max_tokens": self.max_batch_tokens, "call_cost": CALL_COST_TOKENS}
            for run in padding_runs(jobs, indices, self.max_batch_size, **budget):
                for i, outcome in zip(run, self._call_together([jobs[i] for i in run], [wrap[i] for i in run])):
                    outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    # -- calls ---------------------------------------------------------------------------------
    def _timed(self, inputs: Any, params: dict[str, Any], jobs: Sequence[Job]) -> Any:
        """The pipeline call, cancelled (onnxpipe.cancellation) once every one of `jobs` is."""
        started = time.perf_counter()
        try:
            with cancel_scope(jobs[0].cancel if len(jobs) == 1 else AllCancelled([job.cancel for job in jobs])):
                return self.pipe(inputs, **params)
        finally:
            self.on_call(len(jobs), time.perf_counter() - started)

    def _call_alone(self, job: Job) -> Outcome:
        try:
            return Outcome(jsonable(self._timed(job.inputs, job.params, [job])))
        except BaseException as exc:  # noqa: BLE001 - handed to the request that caused it
            if not _catchable(exc):
                raise
            return Outcome(error=exc)

    def _call_together(self, jobs: Sequence[Job], wrap: Sequence[bool]) -> list[Outcome]:
        if len(jobs) == 1:
            return [self._call_alone(jobs[0])]
        params = {**jobs[0].params, "batch_size": len(jobs)}
        try:
            results = self._timed([job.inputs for job in jobs], params, jobs)
        except BaseException as exc:  # noqa: BLE001 - find out which request it was
            if not _catchable(exc):
                raise
            if isinstance(exc, CancelledError):  # every request of the call gave up: nobody to retry for
                return [Outcome(error=exc) for _ in jobs]
            return [self._call_alone(job) for job in jobs]
        if not isinstance(results, list) or len(results) != len(jobs):
            return [self._call_alone(job) for job in jobs]
        return [Outcome([jsonable(r)] if w else jsonable(r)) for r, w in zip(results, wrap)]

    def _probe(self, job: Job) -> Outcome:
        """Answer `job` with a direct call, then learn its kind's rule from a two-item call of the same input."""
        outcome = self._call_alone(job)
        if outcome.error is not None:
            return outcome  # nothing learned: the input or the parameters are bad
        try:
            with cancel_scope(job.cancel):
                pair = jsonable(self.pipe([job.inputs, job.inputs], **{**job.params, "batch_size": 2}))
        except BaseException as exc:  # noqa: BLE001 - this kind cannot be batched
            if not _catchable(exc):
                raise
            if isinstance(exc, CancelledError):  # the request gave up: nothing learned
                return outcome
            pair = None
        rule = None
        if isinstance(pair, list) and len(pair) == 2:
            if close(outcome.value, pair[0]):
                rule = UNWRAP
            elif close(outcome.value, [pair[0]]):
                rule = WRAP
        with self.lock:
            if rule is None:
                self.failed_probes[job.kind] = self.failed_probes.get(job.kind, 0) + 1
                if self.failed_probes[job.kind] >= _PROBES_BEFORE_ALONE:
                    rule = ALONE
            if rule is not None:
                self.rules[job.kind] = rule
                while len(self.rules) > _MAX_RULES:
                    self.rules.popitem(last=False)
        self.on_probe(rule or "undecided")
        return outcome
