"""
No two modules of xmeet import each other, directly or through others,
not even for types: the import graph, C{TYPE_CHECKING} imports included,
has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import xmeet


def _modules(root: Path) -> dict[str, Path]:
    """
    Every module of the package at C{root}, by dotted name.
    """
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """
    The modules of C{known} that C{module} imports anywhere in its text.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names += [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """
    Which modules each module of the package at C{root} imports.
    """
    known = _modules(root)
    return {module: _imported(module, path, known) for module, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    The strongly connected components of more than one module.
    """
    found: list[list[str]] = []
    for start in sorted(graph):
        reach = _reachable(graph, start)
        component = sorted(m for m in reach if start in _reachable(graph, m))
        if len(component) > 1 and component not in found:
            found.append(component)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen = {start}
    frontier = [start]
    while frontier:
        for target in graph[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


class ImportGraphTests(SynchronousTestCase):
    def test_finds_cycles(self) -> None:
        """
        The check sees a cycle through a third module.
        """
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        self.assertEqual(cycles(graph), [["a", "b", "c"]])

    def test_no_cycle(self) -> None:
        """
        xmeet's modules import one another in one direction only.
        """
        graph = import_graph(Path(xmeet.__file__).parent)
        self.assertIn("xmeet.engineio.socket", graph["xmeet.engineio.server"])
        self.assertEqual(cycles(graph), [])
