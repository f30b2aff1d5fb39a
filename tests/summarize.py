# -*- test-case-name: tests.test_summarize -*-
"""
The one-line summary C{tests/run} prints after a trial run:
C{trial: N passed, N failed, N skipped}.

It counts tests, not errors. Trial's own summary line
(C{FAILED (failures=1, errors=1)}) counts every failure and error, so one
test that fails and then errors in its clean-up counts twice there. Here
a test counts once: trial's report names every test under each
C{[FAIL]}, C{[ERROR]} or C{[SUCCESS!?!]} block, and a test named under
any of them, however many times, is one failed test.

Usage: C{python3 tests/summarize.py TRIAL_OUTPUT_FILE}
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

__all__ = ["outcomes", "summarize"]

#: The line trial writes before each block of its report.
BLOCK_START = "=" * 79

#: The line trial writes after its report, before C{Ran N tests}.
REPORT_END = "-" * 79

#: The blocks whose tests failed.
FAILED = ("[FAIL]", "[ERROR]", "[SUCCESS!?!]")

RAN = re.compile(r"^Ran (\d+) tests? in ", re.M)


def _blocks(lines: list[str]) -> list[list[str]]:
    """
    The blocks of trial's report in C{lines}: each one's lines after the
    separator, from its C{[FLAVOR]} line to the last test id.
    """
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if line == BLOCK_START:
            current = []
            blocks.append(current)
        elif line == REPORT_END:
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _test_ids(block: list[str]) -> list[str]:
    """
    The ids of the tests a block names: trial writes the reason (which may
    hold empty lines of its own), an empty line, then one id a line.
    """
    last_empty = max(index for index, line in enumerate(block) if line == "")
    return [line for line in block[last_empty + 1 :] if line]


def outcomes(text: str) -> dict[str, set[str]]:
    """
    The ids of the tests named in the report of trial's output C{text}, by
    the flavor of their blocks (C{"[FAIL]"}, C{"[SKIPPED]"}, ...).
    """
    named: dict[str, set[str]] = defaultdict(set)
    for block in _blocks(text.splitlines()):
        if block and "" in block[1:]:
            named[block[0]].update(_test_ids(block))
    return dict(named)


def summarize(text: str) -> str:
    """
    C{trial: N passed, N failed, N skipped} for trial's output C{text}:
    a test is failed when any failure, error or unexpected success names
    it, skipped when it was skipped and did not fail, and passed otherwise
    (expected failures pass).
    """
    ran = RAN.findall(text)
    total = int(ran[-1]) if ran else 0
    named = outcomes(text)
    failed = set().union(*(named.get(flavor, set()) for flavor in FAILED))
    skipped = named.get("[SKIPPED]", set()) - failed
    passed = max(total - len(failed) - len(skipped), 0)
    return f"trial: {passed} passed, {len(failed)} failed, {len(skipped)} skipped"


def main(argv: list[str]) -> int:
    """
    Print the summary of the trial output in the file C{argv[1]}.
    """
    with open(argv[1], encoding="utf-8", errors="replace") as output:
        print(summarize(output.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
