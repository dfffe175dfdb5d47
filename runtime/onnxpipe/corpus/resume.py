"""The sidecar of an unfinished `onnxpipe embed`: `OUTPUT.partial/` holds the finished parts and `progress.json`
(what the run was asked to do and how many parts are done). A rerun with the same arguments on the same input file
continues after the last finished part; chunks are cut at the same rows and sorted the same way, so the output is
the one an uninterrupted run writes. Another command meeting the sidecar is refused, naming what differs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpipe.corpus.errors import CorpusStateError
from onnxpipe.corpus.writers import part_path

STATE_FILE = "progress.json"


def sidecar(output: Path) -> Path:
    """The folder beside `output` that holds an unfinished run."""
    return output.with_name(output.name + ".partial")


def input_stamp(path: Path) -> dict[str, Any]:
    """What identifies the input file's contents cheaply: its resolved path, size and modification time."""
    stat = path.stat()
    return {"input": str(path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}


@dataclass
class RunState:
    """The sidecar folder and how far its run got."""

    folder: Path
    settings: dict[str, Any]
    parts_done: int = 0

    def save(self) -> None:
        """Write progress.json atomically."""
        tmp = self.folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"settings": self.settings, "parts_done": self.parts_done}, indent=1))
        os.replace(tmp, self.folder / STATE_FILE)

    def part_done(self, index: int) -> None:
        """Record that part `index` (and every one before it) is written."""
        self.parts_done = index + 1
        self.save()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def open_run(output: Path, settings: dict[str, Any], kind: str, overwrite: bool, restart: bool) -> RunState:
    """The run state for `output`: resumed from its sidecar when the settings match, new otherwise.

    CorpusStateError when the output exists (and not `overwrite`) or the sidecar holds another command's run (and
    not `restart`)."""
    folder = sidecar(output)
    if folder.exists() and restart:
        shutil.rmtree(folder)
    if not folder.exists():
        if output.exists() and not overwrite:
            raise CorpusStateError(f"{output} already exists; pass --overwrite to replace it.")
        folder.mkdir(parents=True)
        state = RunState(folder, settings)
        state.save()
        return state
    try:
        saved = json.loads((folder / STATE_FILE).read_text())
        old, parts_done = saved["settings"], int(saved["parts_done"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorpusStateError(f"{folder} holds an unfinished run whose {STATE_FILE} cannot be read ({exc}); "
                               "pass --restart to discard it and start over.") from exc
    if old != settings:
        changed = sorted(k for k in {*old, *settings} if old.get(k) != settings.get(k))
        shown = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
        raise CorpusStateError(f"{folder} holds an unfinished run of another command ({shown}). Rerun with the same "
                               "arguments on the unchanged input to resume it, or pass --restart to discard it.")
    # trust only parts that are there (a part is renamed into place once whole)
    done = next((i for i in range(parts_done) if not part_path(folder, i, kind).exists()), parts_done)
    return RunState(folder, settings, done)
