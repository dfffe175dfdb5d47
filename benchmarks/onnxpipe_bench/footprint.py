"""Installed footprint of an engine: the bytes on disk of every installed distribution in its dependency closure.

Measured in the current environment with importlib.metadata: start from the engine's top-level distributions,
follow `Requires-Dist` (markers evaluated for this interpreter, no extras), and add up the size of each file a
distribution's RECORD lists. This is what a virtual environment holding only that closure would contain,
minus pip/setuptools and the interpreter, which every environment has alike.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

# the top-level distributions of each engine
ENGINE_ROOTS: dict[str, tuple[str, ...]] = {
    "onnxpipe": ("onnxpipe",),
    "transformers": ("torch", "transformers"),
    "optimum": ("optimum-onnx", "onnxruntime"),
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Footprint:
    """The closure of some distributions: their total size and which required ones are not installed."""

    roots: tuple[str, ...]
    size_bytes: int = 0
    distributions: dict[str, int] = field(default_factory=dict)  # normalized name -> bytes
    missing: list[str] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        """Total size in MB (10^6 bytes)."""
        return self.size_bytes / 1e6


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution) -> list[str]:
    """Names of the distributions `dist` requires here (markers evaluated, extras off)."""
    names = []
    for text in dist.requires or []:
        try:
            from packaging.requirements import Requirement

            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            names.append(requirement.name)
        except ImportError:  # no packaging: keep requirements that have no marker at all
            if ";" not in text:
                match = _NAME.match(text)
                if match:
                    names.append(match.group(1))
        except Exception:  # an unparsable requirement line: skip it rather than guess
            continue
    return names


def distribution_size(dist: metadata.Distribution) -> int:
    """Bytes on disk of the files listed in a distribution's RECORD (files that no longer exist count 0)."""
    total = 0
    for path in dist.files or []:
        try:
            located = dist.locate_file(path)
            total += located.stat().st_size  # type: ignore[union-attr]
        except (OSError, AttributeError):
            continue
    return total


def closure(roots: Iterable[str]) -> Footprint:
    """The installed dependency closure of `roots` and its size."""
    roots = tuple(roots)
    result = Footprint(roots)
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = normalize(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            result.missing.append(name)
            continue
        size = distribution_size(dist)
        result.distributions[name] = size
        result.size_bytes += size
        todo.extend(_requirements(dist))
    result.missing.sort()
    return result


def engine_footprint(kind: str) -> Optional[Footprint]:
    """The footprint of an engine kind, or None when its top-level distributions are not all installed."""
    footprint = closure(ENGINE_ROOTS[kind])
    if any(normalize(root) in footprint.missing for root in footprint.roots):
        return None
    return footprint
