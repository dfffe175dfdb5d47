"""Cancelling a running pipeline call from another thread: a `CancelToken` and the scope it applies to.

    token = CancelToken()
    with cancel_scope(token):          # in the thread that calls the pipeline
        pipe(inputs)                   # raises onnxpipe.errors.CancelledError soon after token.cancel()

`token.cancel()` may be called from any thread. The generation loops (greedy, sampling, beam search) check the
token of the current scope before and after every decoder step, and `Pipeline.run_pieces` between model runs,
so a call stops within one step or one batch. The scope is a context variable: it follows the call into the
threads onnxpipe starts itself (`stream()`), and it is not an option, so it never sticks to a pipeline.
`onnxpipe serve` gives each request's jobs a token and cancels it at the request's deadline (504), when the
client goes away (streams), and on a forced shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from contextvars import ContextVar
from typing import Iterator, Optional, Sequence

from onnxpipe.errors import CancelledError

_CANCEL_LOCK = threading.Lock()  # cancel() keeps the first reason when two threads cancel at once


class CancelToken:
    """A thread-safe cancellation flag; `reason` says why it was set (it ends the CancelledError's message).

    A plain attribute, not a threading.Event: nobody waits on it (calls poll it between steps), and the server
    makes one per request, where an Event's lock and condition cost ~10 us each time."""

    __slots__ = ("_set", "reason")

    def __init__(self) -> None:
        self._set = False
        self.reason = "the call was cancelled"

    def cancel(self, reason: Optional[str] = None) -> None:
        """Ask the calls running under this token to stop (idempotent; the first reason is kept)."""
        with _CANCEL_LOCK:
            if not self._set:
                if reason:
                    self.reason = reason
                self._set = True

    @property
    def cancelled(self) -> bool:
        return self._set

    def raise_if_cancelled(self) -> None:
        """CancelledError when the token was cancelled."""
        if self.cancelled:
            raise CancelledError(self.reason)


class AllCancelled(CancelToken):
    """Cancelled when every one of `tokens` is (a call shared by several requests stops only when all of them
    gave up), or when cancelled itself."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: Sequence[CancelToken]) -> None:
        super().__init__()
        self.tokens = list(tokens)

    @property
    def cancelled(self) -> bool:
        if self._set:
            return True
        if self.tokens and all(t.cancelled for t in self.tokens):
            self.reason = self.tokens[0].reason
            return True
        return False


_current: ContextVar[Optional[CancelToken]] = ContextVar("onnxpipe_cancel_token", default=None)


@contextlib.contextmanager
def cancel_scope(token: Optional[CancelToken]) -> Iterator[Optional[CancelToken]]:
    """Run the pipeline calls inside the `with` block under `token` (None: not cancellable)."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def current_token() -> Optional[CancelToken]:
    """The token of the current scope, or None."""
    return _current.get()


def raise_if_cancelled() -> None:
    """CancelledError when the current scope's token was cancelled; nothing outside a scope."""
    token = _current.get()
    if token is not None:
        token.raise_if_cancelled()
