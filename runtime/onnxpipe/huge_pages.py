"""Back a new onnxruntime session's weights with transparent huge pages (Linux).

onnxruntime keeps weights and pre-packed kernels in ordinary heap memory, which Linux maps in 4 KiB pages unless
the program asks for huge pages (the common THP setting is `madvise`). A request that follows an idle gap then
pays a page-table walk for most of the pages it touches: on the 2-core reference machine a bert-base int8 call
took 61 ms after a 50 ms gap and 91 ms after 200 ms, against 36 and 45 ms once the session's memory was
collapsed into 2 MiB pages (see the README's levers). `collapse_session_memory` does that collapse in a
background thread, so the session is usable at once and the first call is not delayed by the copy.

Set ONNXPIPE_HUGE_PAGES=0 to turn it off. Nothing happens on other systems, on kernels without MADV_COLLAPSE
(before 6.1) or when THP is `never`. Only memory mapped while the session was built is collapsed, which is almost
all weights: the resident size of a bert-base int8 process moved from 255 to 258 MB.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Optional, Sequence

HUGE_PAGE = 2 << 20
MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
ENV = "ONNXPIPE_HUGE_PAGES"

Range = tuple[int, int]


def enabled() -> bool:
    """Whether collapsing can work here: Linux, THP not `never`, and not turned off with ONNXPIPE_HUGE_PAGES=0."""
    if not sys.platform.startswith("linux") or os.environ.get(ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as setting:
            return "[never]" not in setting.read()
    except OSError:
        return False


def parse_anonymous_regions(maps_text: str) -> list[Range]:
    """The private, writable, anonymous regions (heap and unnamed mappings) of a /proc/PID/maps text."""
    regions = []
    for line in maps_text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("rw") or not fields[1].endswith("p"):
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name not in ("", "[heap]"):
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        regions.append((low, high))
    return regions


def anonymous_regions() -> list[Range]:
    """This process's private anonymous regions now; empty when /proc cannot be read."""
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            return parse_anonymous_regions(maps.read())
    except OSError:
        return []


def new_huge_ranges(before: Sequence[Range], after: Sequence[Range]) -> list[Range]:
    """The whole 2 MiB pages of `after` that no region of `before` overlaps: memory mapped in between."""
    old = sorted(before)
    ranges = []
    for low, high in sorted(after):
        pieces = [(low, high)]
        for old_low, old_high in old:
            pieces = [
                part
                for start, end in pieces
                for part in ((start, min(end, old_low)), (max(start, old_high), end))
                if part[1] > part[0]
            ]
        for start, end in pieces:
            start = -(-start // HUGE_PAGE) * HUGE_PAGE
            end = end // HUGE_PAGE * HUGE_PAGE
            if end > start:
                ranges.append((start, end))
    return ranges


def collapse(ranges: Sequence[Range]) -> int:
    """Ask the kernel to back `ranges` with huge pages now (MADV_COLLAPSE); returns the bytes it accepted."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    done = 0
    for start, end in ranges:
        # MADV_HUGEPAGE first: kernels that refuse MADV_COLLAPSE still let khugepaged collapse the range later
        libc.madvise(start, end - start, MADV_HUGEPAGE)
        if libc.madvise(start, end - start, MADV_COLLAPSE) == 0:
            done += end - start
    return done


class HugePageWatch:
    """Records the anonymous regions before a session is built; `collapse_new` then collapses what it mapped.

    OnnxSession calls `collapse_new` after its first `run`, so the copy does not delay the first result (cold start).
    """

    def __init__(self) -> None:
        self.active = enabled()
        self.before = anonymous_regions() if self.active else []
        self.thread: Optional[threading.Thread] = None
        self.collapsed_bytes = 0
        self._lock = threading.Lock()
        self._started = False

    def collapse_new(self) -> None:
        """Collapse the regions mapped since construction, in a daemon thread (the session is usable meanwhile).
        Only the first call does anything, also when several threads finish their first run at once."""
        with self._lock:
            if not self.active or self._started:
                return
            self._started = True
        ranges = new_huge_ranges(self.before, anonymous_regions())
        if not ranges:
            return

        def work() -> None:
            try:  # lowest priority: on a busy machine the copy waits for the inference threads, not the other way
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError:
                pass
            self.collapsed_bytes = collapse(ranges)

        self.thread = threading.Thread(target=work, name="onnxpipe-huge-pages", daemon=True)
        self.thread.start()
