# -*- test-case-name: tests.test_layout -*-
"""
House rules of the source tree that readers and tools rely on: every
module of xmeet, and the twistd plugin, starts with a C{test-case-name}
line naming test modules that exist (C{trial --testmodule} and editors
run them from the module).
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

__all__ = ["TestCaseNameTests"]

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"# -\*- test-case-name: (\S+) -\*-")


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
