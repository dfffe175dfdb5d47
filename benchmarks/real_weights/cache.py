"""Where the real-weight folders live and how each is built once: under a file lock, into a temporary folder that is
renamed into place only when complete, so concurrent callers (several helpers, pytest-xdist) never see half a folder."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
# ONNXPIPE_REAL_WEIGHTS moves the default (tests and benchmarks share one cache: builds take a minute)
DEFAULT_WORK = Path(os.environ.get("ONNXPIPE_REAL_WEIGHTS") or ROOT / "out" / "real")
DONE = "real_weights.json"  # written last into every finished folder; its presence is the cache hit


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """Return `folder`, first running `build(tmp)` to fill it when it has no DONE stamp (the builder writes DONE)."""
    folder = Path(folder)
    if (folder / DONE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / DONE).is_file():  # another process finished it while we waited
            return folder
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            build(tmp)
            if not (tmp / DONE).is_file():
                raise RuntimeError(f"the builder of {folder.name} did not write {DONE}")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
