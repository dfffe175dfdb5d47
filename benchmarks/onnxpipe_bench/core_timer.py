"""The timer every engine's pipeline carries inside a worker: it wraps the engine's inference call (onnxruntime's
`run`, the torch model's forward) and adds up the time spent in it, and counts decoder steps for generation."""

from __future__ import annotations

import time
from typing import Any, Callable


class CoreTimer:
    """Wraps an object's method so that every call adds its duration to `seconds`; calls of methods wrapped with
    `count=True` (a generation model's decoder step) add up in `calls`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.counts = False  # whether any wrapped method counts calls (the worker then reports them)

    def reset(self) -> None:
        """Start a new pipeline call."""
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, owner: Any, method: str, count: bool = False) -> None:
        """Replace `owner.method` by a timed (and, with `count`, counted) version on that instance only."""
        original: Callable[..., Any] = getattr(owner, method)
        self.counts = self.counts or count

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += count

        setattr(owner, method, timed)
