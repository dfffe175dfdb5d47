"""The house rules on imports, read from the source: no cycle between the project's own modules, no function-local
import of a project module (lazy imports are for heavy optional dependencies), and no import of another module's
`_private` name."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parents[1]
# Project modules that are imported inside a function on purpose: each imports a heavy optional dependency at its top
# (uvicorn and starlette, or ray), which `onnxpipe` commands other than `serve` must not load or need installed.
LAZY_FOR_OPTIONAL_DEPENDENCIES = {
    ("onnxpipe.serving.command", "onnxpipe.serving.server"),
    ("onnxpipe.serving.command", "onnxpipe.serving.ray_app"),
}
PACKAGES = {"onnxpipe": "runtime/onnxpipe", "onnxpipe_export": "export/onnxpipe_export", "onnxpipe_bench": "benchmarks/onnxpipe_bench"}


@dataclass(frozen=True)
class Import:
    """One import of a project module: who imports what (and which name), where, and whether inside a function."""

    source: str
    target: str
    name: Optional[str]
    line: int
    local: bool


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    modules = {}
    for package, folder in PACKAGES.items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> Optional[str]:
    """The project module a dotted name lives in (the name itself, or its closest parent), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _function_imports(tree: ast.AST) -> set[int]:
    return {
        id(node)
        for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))
    }


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """Every import of a project module in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = _function_imports(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _owner(alias.name, modules)
                if target:
                    yield Import(module, target, None, node.lineno, id(node) in local)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) if node.level else node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else _owner(base or "", modules)
                if target:
                    name = None if submodule in modules else alias.name
                    yield Import(module, target, name, node.lineno, id(node) in local)


def all_imports() -> list[Import]:
    modules = project_modules()
    return [i for module, path in modules.items() for i in imports_of(module, path, modules) if i.target != module]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set()).add(i.target)
        graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_analysis_sees_the_whole_project():
    modules = project_modules()
    assert {"onnxpipe.pipelines", "onnxpipe_export.api", "onnxpipe_bench.cli"} <= set(modules)
    assert len(all_imports()) > 200


def test_no_import_cycles():
    assert cycles(all_imports()) == []


def test_no_function_local_imports_of_project_modules():
    local = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if i.local and (i.source, i.target) not in LAZY_FOR_OPTIONAL_DEPENDENCIES
    ]
    assert local == []


def test_no_imports_of_private_names():
    private = [
        f"{i.source}:{i.line} imports {i.target}.{i.name}"
        for i in all_imports()
        if i.name and i.name.startswith("_") and not i.name.startswith("__")
    ]
    assert private == []
