"""A progress line on stderr: texts done of the total, texts/s over this run and the time left.

On a terminal the line is rewritten in place (at most 10 times a second); elsewhere (a log file, CI) a full line is
printed at most every `every_s` seconds, and always at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts texts embedded; `done` starts at the rows a resumed run finished before."""

    def __init__(self, total: int, done: int = 0, stream: Optional[TextIO] = None, enabled: bool = True,
                 every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.done = done
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.tty else every_s
        self.started = clock()
        self.first = done  # rows this run did not embed
        self.shown_at: Optional[float] = None

    def rate(self) -> float:
        """Texts per second embedded by this run so far."""
        elapsed = self.clock() - self.started
        return (self.done - self.first) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The progress line, e.g. `embed: 4,096/10,000 texts (41.0%), 812 texts/s, 0:07 left`."""
        share = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.rate()
        left = f", {_duration((self.total - self.done) / rate)} left" if rate > 0 and self.done < self.total else ""
        return f"embed: {self.done:,}/{self.total:,} texts ({share:.1f}%), {rate:,.0f} texts/s{left}"

    def update(self, texts: int) -> None:
        """Count `texts` more and show the line when it is time."""
        self.done += texts
        now = self.clock()
        if self.shown_at is None or now - self.shown_at >= self.interval:
            self.show(now)

    def show(self, now: Optional[float] = None) -> None:
        if not self.enabled:
            return
        self.shown_at = self.clock() if now is None else now
        self.stream.write(("\r" + self.line() + "\x1b[K") if self.tty else self.line() + "\n")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        """Show the final line (and end it on a terminal), with `note` after it."""
        if not self.enabled:
            return
        text = self.line() + (f"; {note}" if note else "")
        self.stream.write(f"\r{text}\x1b[K\n" if self.tty else text + "\n")
        self.stream.flush()
