"""
The shape of the IM modules (issue 12): no module over L{MAX_MODULE_LINES}
lines, no class over L{MAX_CLASS_LINES}, and no two modules importing each
other, even only for type checking. Run as a script, it prints the figures
for every module of C{xmeet}.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

__all__ = ["IMLayoutTests", "classes", "cycles", "imports", "modules"]

MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300
ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "xmeet"

#: The IM modules, as globs under C{xmeet/}.
IM_MODULES = ("im/*.py", "core/im.py", "core/conversation.py", "store/im_*.py", "handlers/im_*.py")


def modules() -> dict[str, Path]:
    """
    Every module of C{xmeet}, by dotted name.
    """
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = name.split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """
    The modules of C{xmeet} that module C{name} imports, anywhere in it
    (under C{TYPE_CHECKING} too).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node, path)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def cycles(known: dict[str, Path]) -> Iterator[tuple[str, str]]:
    """
    Every pair of modules that import each other.
    """
    graph = {name: imports(name, path, known) for name, path in known.items()}
    for name, targets in graph.items():
        for target in targets:
            if name < target and name in graph.get(target, set()):
                yield name, target


def classes(path: Path) -> Iterator[tuple[str, int]]:
    """
    Every top-level class of a module and its length in lines.
    """
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield node.name, (node.end_lineno or node.lineno) - start + 1


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


class IMLayoutTests(SynchronousTestCase):
    """
    The IM modules keep the sizes and the import graph issue 12 asks for.
    """

    def setUp(self) -> None:
        self.known = modules()
        self.im = sorted({path for glob in IM_MODULES for path in PACKAGE.glob(glob)})

    def test_globs_find_modules(self) -> None:
        """
        The globs name the IM package and the IM modules around it.
        """
        names = {path.relative_to(PACKAGE).as_posix() for path in self.im}
        self.assertTrue({"im/service.py", "core/im.py", "store/im_redis.py"} <= names)

    def test_module_sizes(self) -> None:
        """
        No IM module is over L{MAX_MODULE_LINES} lines.
        """
        large = {path.name: _lines(path) for path in self.im if _lines(path) > MAX_MODULE_LINES}
        self.assertEqual(large, {})

    def test_class_sizes(self) -> None:
        """
        No IM class is over L{MAX_CLASS_LINES} lines.
        """
        large = [
            (path.name, name, length)
            for path in self.im
            for name, length in classes(path)
            if length > MAX_CLASS_LINES
        ]
        self.assertEqual(large, [])

    def test_no_import_cycles(self) -> None:
        """
        No IM module and another import each other.
        """
        im = {name for name, path in self.known.items() if path in self.im}
        self.assertEqual([pair for pair in cycles(self.known) if set(pair) & im], [])

    def test_cycles_found(self) -> None:
        """
        The cycle finder sees a cycle under C{TYPE_CHECKING}, relative
        imports included.
        """
        directory = Path(self.mktemp())
        (directory / "xmeet").mkdir(parents=True)
        (directory / "xmeet" / "a.py").write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
        )
        (directory / "xmeet" / "b.py").write_text("from xmeet import a\n")
        known = {"xmeet.a": directory / "xmeet" / "a.py", "xmeet.b": directory / "xmeet" / "b.py"}
        self.assertEqual(list(cycles(known)), [("xmeet.a", "xmeet.b")])


def main() -> None:
    """
    Print every module over 300 lines, the largest classes, and every
    pair of modules importing each other.
    """
    known = modules()
    sizes = sorted(((_lines(path), name) for name, path in known.items()), reverse=True)
    print("largest modules:", *(f"  {lines} {name}" for lines, name in sizes[:8]), sep="\n")
    found = sorted(
        (
            (length, f"{name}.{cls}")
            for name, path in known.items()
            for cls, length in classes(path)
        ),
        reverse=True,
    )
    print("largest classes:", *(f"  {lines} {name}" for lines, name in found[:8]), sep="\n")
    print("modules importing each other:", *(f"  {a} <-> {b}" for a, b in cycles(known)), sep="\n")


if __name__ == "__main__":
    sys.exit(main())
