# -*- test-case-name: tests.test_layout -*-
"""
House rules of the source tree that readers and tools rely on: every
module of xmeet, and the twistd plugin, starts with a C{test-case-name}
line naming test modules that exist (C{trial --testmodule} and editors
run them from the module); and the shape issue 12 asks for, so that each
module stays one idea a reader can hold: no module over
L{MAX_MODULE_LINES} lines, no class over L{MAX_CLASS_LINES}, and no two
modules importing each other, even only for type checking. Run as a
script, it prints the figures for every module of C{xmeet}.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

__all__ = ["PackageShapeTests", "TestCaseNameTests", "classes", "cycles", "imports", "modules"]

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"# -\*- test-case-name: (\S+) -\*-")
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300
PACKAGE = ROOT / "xmeet"


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


def header_problems(path: Path) -> list[str]:
    """
    What is wrong with the C{test-case-name} line of C{path}: nothing, or
    its absence, or each test module it names that does not exist.
    """
    where = path.relative_to(ROOT)
    first = path.read_text("utf-8").split("\n", 1)[0]
    match = HEADER.fullmatch(first)
    if match is None:
        return [f"{where}: no test-case-name line"]
    return [
        f"{where}: {name} does not exist"
        for name in match.group(1).split(",")
        if not (ROOT / (name.replace(".", "/") + ".py")).is_file()
    ]


class TestCaseNameTests(SynchronousTestCase):
    """
    The C{test-case-name} lines.
    """

    def test_every_module_names_existing_tests(self) -> None:
        modules = sorted((ROOT / "xmeet").rglob("*.py"))
        modules.append(ROOT / "twisted" / "plugins" / "xmeet_plugin.py")
        problems = [problem for path in modules for problem in header_problems(path)]
        self.assertEqual(problems, [])


class PackageShapeTests(SynchronousTestCase):
    """
    Every module of C{xmeet} keeps the sizes and the import graph issue 12
    asks for; a failure names the offending modules and classes.
    """

    def setUp(self) -> None:
        self.known = modules()

    def test_modules_found(self) -> None:
        """
        The package's modules are found, in subpackages too.
        """
        self.assertTrue(
            {"xmeet.tap", "xmeet.im.service", "xmeet.store.im_redis"} <= set(self.known)
        )

    def test_module_sizes(self) -> None:
        """
        No module is over L{MAX_MODULE_LINES} lines.
        """
        large = {
            name: _lines(path)
            for name, path in self.known.items()
            if _lines(path) > MAX_MODULE_LINES
        }
        self.assertEqual(large, {})

    def test_class_sizes(self) -> None:
        """
        No class is over L{MAX_CLASS_LINES} lines.
        """
        large = {
            f"{name}.{cls}": length
            for name, path in self.known.items()
            for cls, length in classes(path)
            if length > MAX_CLASS_LINES
        }
        self.assertEqual(large, {})

    def test_no_import_cycles(self) -> None:
        """
        No two modules import each other.
        """
        self.assertEqual(list(cycles(self.known)), [])

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

    def test_sizes_measured(self) -> None:
        """
        A class is measured from its first decorator to its last line.
        """
        path = Path(self.mktemp())
        path.write_text("x = 1\n\n\n@decorated\nclass C:\n    a = 1\n    b = 2\n")
        self.assertEqual((_lines(path), list(classes(path))), (7, [("C", 4)]))


def main() -> None:
    """
    Print the largest modules and classes, and every pair of modules
    importing each other.
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
