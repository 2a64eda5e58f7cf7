"""The import layers of ``eventpipe``, checked on the source with the stdlib ``ast``.

Why: pure domain logic stays free of I/O, the framework below the runtime never names the runtime,
and the composition roots (runtime, CLI, web, test servers) sit on top where nothing imports them.
An upward import or an import cycle is how that shape erodes one "just this once" at a time.

Layers, low to high (a module may import its own layer and the layers below it):

0. ``eventpipe.errors``, ``eventpipe.pipeline``
1. ``eventpipe.config``, ``eventpipe.metadata``, ``eventpipe.kvstore``
2. ``eventpipe.queues``, ``eventpipe.tasks``, ``eventpipe.middleware``, ``eventpipe.schedules``,
   ``eventpipe.ops``, ``eventpipe.ingest``, ``eventpipe.notify``
3. ``eventpipe.runtime``, ``eventpipe.worker``, ``eventpipe.cli``, ``eventpipe.web``,
   ``eventpipe.testing`` and the package's own ``__init__`` (the public facade)

A module in no layer (a new package) is reported until it is added to ``LAYERS``. Every import counts: module level, inside functions, and under ``TYPE_CHECKING`` (unless what it
imports is a ``typing.Protocol``, which names a shape, not a module to depend on). Cycles between
modules are reported too. Run ``python tests/test_layers.py`` to print every violation as
``file:line``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "eventpipe"

LAYERS: list[tuple[str, ...]] = [
    ("eventpipe.errors", "eventpipe.pipeline"),
    ("eventpipe.config", "eventpipe.metadata", "eventpipe.kvstore"),
    ("eventpipe.queues", "eventpipe.tasks", "eventpipe.middleware", "eventpipe.schedules", "eventpipe.ops",
     "eventpipe.ingest", "eventpipe.notify"),
    ("eventpipe.runtime", "eventpipe.worker", "eventpipe.cli", "eventpipe.web", "eventpipe.testing", "eventpipe"),
]


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen in the importing module."""

    source: str  # importing module, e.g. eventpipe.tasks.api
    target: str  # imported module, e.g. eventpipe.runtime
    names: tuple[str, ...]  # names taken from the target by ``from target import ...``
    path: Path  # relative to the repository root
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (packages as their ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int | None:
    """The layer of a module: the one whose longest prefix matches, or None when not listed."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import below ``node`` with whether it sits under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), type_only)
        else:
            yield from _walk(child, type_only)


def imports_of(module: str, path: Path, modules: dict[str, Path], shown: Path) -> Iterator[Import]:
    """The package-internal imports of one module, resolved to module names (``shown``: its path
    as printed)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node, type_only in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield Import(module, _existing(alias.name, modules), (), shown, node.lineno, type_only)
            continue
        base = _absolute(module, is_package, node.module, node.level)
        if base != PACKAGE and not base.startswith(PACKAGE + "."):
            continue
        plain: list[str] = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in modules:  # ``from eventpipe.x import y`` where y is a module
                yield Import(module, sub, (), shown, node.lineno, type_only)
            else:
                plain.append(alias.name)
        if plain:
            yield Import(module, _existing(base, modules), tuple(plain), shown, node.lineno, type_only)


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    keep = len(parts) - level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{name}" if name else base


def _existing(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of the package."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _protocols(path: Path) -> set[str]:
    """Classes of a module that derive from ``Protocol`` (``typing.Protocol`` or ``Protocol``)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                target = base.value if isinstance(base, ast.Subscript) else base
                if (isinstance(target, ast.Name) and target.id == "Protocol") or (
                    isinstance(target, ast.Attribute) and target.attr == "Protocol"
                ):
                    out.add(node.name)
    return out


def all_imports(root: Path = ROOT) -> list[Import]:
    """Every internal import that counts: all of them, except type-only imports of Protocols."""
    modules = module_files(root)
    protocols = {name: _protocols(path) for name, path in modules.items()}
    out: list[Import] = []
    for module, path in modules.items():
        for imp in imports_of(module, path, modules, path.relative_to(root)):
            if imp.target == module:
                continue
            if imp.type_only and imp.names and set(imp.names) <= protocols.get(imp.target, set()):
                continue
            out.append(imp)
    return out


def upward_imports(imports: list[Import]) -> list[str]:
    """``file:line: a imports b`` for every import of a higher layer."""
    problems = []
    for imp in imports:
        low, high = layer_of(imp.source), layer_of(imp.target)
        if low is None:
            problems.append(f"{_where(imp)}: {imp.source} is in no layer; add it to LAYERS in tests/test_layers.py")
        elif high is not None and high > low:
            kind = "type-only import of" if imp.type_only else "imports"
            problems.append(f"{_where(imp)}: {imp.source} (layer {low}) {kind} {imp.target} (layer {high})")
    return problems


def cycles(imports: list[Import]) -> list[str]:
    """Each import cycle between modules, with the file:line of every edge on it."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    problems = []
    for component in _strongly_connected(edges):
        if len(component) < 2:
            continue
        members = set(component)
        cycle_edges = [
            f"{_where(imp)} ({src} -> {dst})"
            for src in sorted(members)
            for dst, imp in sorted(edges.get(src, {}).items())
            if dst in members
        ]
        problems.append("cycle between " + ", ".join(sorted(members)) + ":\n    " + "\n    ".join(cycle_edges))
    return problems


def _strongly_connected(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion limits are not a concern here)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def _where(imp: Import) -> str:
    return f"{imp.path}:{imp.line}"


def violations(root: Path = ROOT) -> list[str]:
    imports = all_imports(root)
    return upward_imports(imports) + cycles(imports)


def test_no_module_imports_a_higher_layer_and_no_cycles() -> None:
    problems = violations()
    assert not problems, "import layer violations:\n" + "\n".join(problems)


def test_the_check_sees_upward_imports_cycles_and_protocols(tmp_path: Path) -> None:
    """The checker itself, on a tiny package: it must catch what it claims to catch."""
    pkg = tmp_path / PACKAGE
    for sub in ("pipeline", "tasks"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "runtime.py").write_text("class Runtime: ...\n")
    (pkg / "tasks" / "context.py").write_text(
        "from typing import Protocol\nclass TaskContext(Protocol):\n    db: object\n"
    )
    (pkg / "pipeline" / "a.py").write_text("def f():\n    from eventpipe.tasks import api\n")
    (pkg / "tasks" / "api.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n"
        "    from eventpipe.runtime import Runtime\n    from eventpipe.tasks.context import TaskContext\n"
    )
    (pkg / "tasks" / "b.py").write_text("from .api import x\n")
    problems = violations(tmp_path)
    text = "\n".join(problems)
    assert "eventpipe/pipeline/a.py:2: eventpipe.pipeline.a (layer 0) imports eventpipe.tasks.api (layer 2)" in text
    assert "eventpipe/tasks/api.py:4: eventpipe.tasks.api (layer 2) type-only import of eventpipe.runtime (layer 3)" in text
    assert "tasks.context" not in text  # a Protocol under TYPE_CHECKING is allowed
    assert "cycle between eventpipe.tasks.api, eventpipe.tasks.b" in text
    assert len(problems) == 3, text


if __name__ == "__main__":
    found = violations()
    print("\n".join(found) or "no import layer violations")
    sys.exit(1 if found else 0)
