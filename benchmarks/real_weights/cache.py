"""Where the real-weight folders live and how each is built once: under a file lock, into a temporary folder that is
renamed into place only when complete, so concurrent callers (several helpers, pytest-xdist) never see half a folder."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
# ONNXPIPE_REAL_WEIGHTS moves the default (tests and benchmarks share one cache: builds take a minute)
DEFAULT_WORK = Path(os.environ.get("ONNXPIPE_REAL_WEIGHTS") or ROOT / "out" / "real")
DONE = "real_weights.json"  # written last into every finished folder; its presence is the cache hit


def stamp(folder: Path) -> dict[str, Any]:
    """The DONE stamp of a finished folder (what it was built from), or {} when it is not finished."""
    try:
        return json.loads((Path(folder) / DONE).read_text())
    except (OSError, ValueError):
        return {}


def build_once(folder: Path, build: Callable[[Path], dict[str, Any]], revision: int) -> Path:
    """Return `folder`, first filling it with `build(tmp)` (which returns the stamp to write) when it has no DONE
    stamp of this builder `revision`; bump the revision when a builder changes what it writes."""
    folder = Path(folder)
    if stamp(folder).get("revision") == revision:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp(folder).get("revision") == revision:  # another process finished it while we waited
            return folder
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            info = build(tmp)
            for path in tmp.iterdir():
                path.chmod(0o644)  # safetensors writes its file 0600; other users of the machine read the folder too
            (tmp / DONE).write_text(json.dumps({**info, "revision": revision}, indent=2) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
