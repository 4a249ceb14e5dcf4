"""The import graph of `coral`: layers point one way, no module cycles, no module over 600 lines.

Read from the source with `ast`: every `import` and `from ... import` anywhere in a file counts,
including those under `if TYPE_CHECKING:` and inside functions (a cycle hidden in a function is
still a cycle for whoever reads the code). Relative imports are resolved.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coral"
MAX_LINES = 600

# DESIGN.md §1, lowest first: "Lower layers never import higher ones". `coral` itself and
# `coral.errors` sit below every layer. The front ends share the top rank: `coral browse` and
# `coral serve` are CLI commands that start the TUI and the web server.
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("delta",),
    ("storage",),
    ("version_control",),
    ("training",),
    ("integrations",),
    ("experiments",),
    ("registry",),
    ("remotes",),
    ("porcelain",),
    ("utils",),
    ("cli", "tui", "web"),
]
BASE = {"coral", "coral.errors"}

# Known violations, each to be deleted here once fixed (`test_allow_list_is_current` says when).
ALLOWED_EDGES: set[tuple[str, str]] = set()
ALLOWED_LONG: set[str] = set()


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def modules() -> dict[str, Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = Module(".".join(parts), path, is_package)
    return out


def _owner(name: str, known: dict[str, Module]) -> str | None:
    """The module `name` lives in: itself, or its longest known prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _imported(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _owner(alias.name, known)
                if target is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                target = full if full in known else _owner(source, known)
                if target is not None:
                    yield target, node.lineno


def import_edges() -> list[Edge]:
    known = modules()
    edges: dict[tuple[str, str], Edge] = {}
    for module in known.values():
        for target, line in _imported(module, known):
            if target != module.name and (module.name, target) not in edges:
                edges[(module.name, target)] = Edge(module.name, target, line)
    return sorted(edges.values(), key=lambda e: (e.source, e.target))


def rank(module: str) -> int:
    if module in BASE:
        return -1
    top = module.split(".")[1]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"coral/{top}/ is in no layer: add it to LAYERS (DESIGN.md §1)")


def upward_edges(edges: list[Edge]) -> list[Edge]:
    return [e for e in edges if rank(e.target) > rank(e.source)]


def cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle (a path that ends where it starts) per strongly connected component."""
    graph: dict[str, list[str]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e.target)
        graph.setdefault(e.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(min(c), c, graph) for c in components]


def _cycle_through(start: str, component: set[str], graph: dict[str, list[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside `component` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in component:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def long_modules() -> dict[str, int]:
    out = {}
    for name, module in modules().items():
        n = len(module.path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            out[name] = n
    return out


def _checked(edges: list[Edge]) -> list[Edge]:
    return [e for e in edges if (e.source, e.target) not in ALLOWED_EDGES]


def test_lower_layers_never_import_higher_ones() -> None:
    bad = upward_edges(_checked(import_edges()))
    assert not bad, "imports of a higher layer (DESIGN.md §1):\n" + "\n".join(map(str, bad))


def test_no_import_cycles() -> None:
    found = cycles(_checked(import_edges()))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_module_over_600_lines() -> None:
    bad = {m: n for m, n in long_modules().items() if m not in ALLOWED_LONG}
    assert not bad, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{m} ({n})" for m, n in sorted(bad.items())
    )


def test_allow_list_is_current() -> None:
    """An allowed violation that is gone must leave the allow-list (so it cannot come back)."""
    edges = {(e.source, e.target) for e in import_edges()}
    stale = sorted(ALLOWED_EDGES - edges) + sorted(ALLOWED_LONG - set(long_modules()))
    assert not stale, f"fixed, delete from the allow-list in {Path(__file__).name}: {stale}"


def test_the_checks_see_what_they_should(tmp_path: Path) -> None:
    """The graph builder itself: TYPE_CHECKING, function-local and relative imports count."""
    edges = {(e.source, e.target) for e in import_edges()}
    assert ("coral.version_control.repository", "coral.version_control.merge") in edges  # local
    assert ("coral.remotes.lazy", "coral.storage.pack_store") in edges  # TYPE_CHECKING
    assert rank("coral.errors") < rank("coral.core.weight_tensor") < rank("coral.cli.main")
    a, b, c = "coral.x.a", "coral.x.b", "coral.x.c"
    loop = cycles([Edge(a, b, 1), Edge(b, c, 1), Edge(c, a, 1), Edge(c, "coral.x.d", 1)])
    assert loop == [[a, b, c, a]]
    source = tmp_path / "a.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from ..y import Thing\n"
        "def f():\n    import coral.x.c.inner\n"
    )
    known = {n: Module(n, source, False) for n in (a, b, c, "coral.y")}
    assert sorted(t for t, _ in _imported(known[a], known)) == [b, c, "coral.y"]
