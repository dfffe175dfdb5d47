"""The step-by-step progress display of an export, shown on an interactive terminal only."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


class Progress:
    """A tqdm bar with one tick per export step; does nothing when disabled or when tqdm is missing."""

    DESCRIPTION = "onnxpipe export"

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is part of the export extra, but the display is optional
                return
            self._bar = tqdm(
                total=total,
                desc=self.DESCRIPTION,
                unit="step",
                file=sys.stderr,
                leave=False,
                bar_format="{desc} {n_fmt}/{total_fmt} |{bar:20}| [{elapsed}]",
            )

    @staticmethod
    def wanted(quiet: bool) -> bool:
        """Show progress unless quiet or stderr is not a terminal (a pipe, a log file, a test)."""
        return not quiet and sys.stderr.isatty()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Show `name` as the current step, and tick when it ends."""
        if self._bar is not None:
            self._bar.set_description_str(f"{self.DESCRIPTION}: {name}")
        yield
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
