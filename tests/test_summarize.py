"""
Tests for L{tests.summarize}, the last line of C{tests/run}: it counts
tests, not errors.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import reporter
from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase, Todo

from tests.summarize import outcomes, summarize

#: The output of a real trial run of three tests: one passes, one is
#: skipped, one raises and its clean-up raises too (trial's own summary:
#: C{FAILED (skips=1, errors=2, successes=1)}).
TWO_ERRORS = Path(__file__).parent / "data" / "trial-two-errors.txt"


class SavedOutputTests(TestCase):
    """
    A saved trial output with one test that has two errors.
    """

    def test_one_test_two_errors(self) -> None:
        """
        The test with two errors is one failed test.
        """
        self.assertEqual(summarize(TWO_ERRORS.read_text()), "trial: 1 passed, 1 failed, 1 skipped")

    def test_outcomes_by_id(self) -> None:
        """
        The report's blocks name tests by id.
        """
        prefix = "example.test_example.ExampleTests."
        self.assertEqual(
            outcomes(TWO_ERRORS.read_text()),
            {"[SKIPPED]": {prefix + "test_skipped"}, "[ERROR]": {prefix + "test_two_errors"}},
        )

    def test_script(self) -> None:
        """
        Run as C{tests/run} runs it, the script prints the summary.
        """
        script = Path(__file__).parent / "summarize.py"
        done = subprocess.run(
            [sys.executable, str(script), str(TWO_ERRORS)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.assertEqual(done.stdout, "trial: 1 passed, 1 failed, 1 skipped\n")

    def test_no_run(self) -> None:
        """
        Output without a run (trial could not start) is no test at all.
        """
        self.assertEqual(
            summarize("No module named nowhere\n"), "trial: 0 passed, 0 failed, 0 skipped"
        )


def _raise(error: Exception) -> Callable[[], None]:
    def raising() -> None:
        raise error

    return raising


#: What a generated test does; the same errors in several tests make trial
#: group them in one block naming several tests.
BEHAVIOURS: dict[str, Callable[[SynchronousTestCase], None]] = {
    "pass": lambda test: None,
    "fail": lambda test: test.fail("failed"),
    "error": lambda test: _raise(ValueError("raised"))(),
    "error with empty lines": lambda test: _raise(ValueError("one\n\n\nthree"))(),
    "skip": lambda test: _raise(SkipTest("skipped"))(),
    "expected failure": lambda test: test.fail("expected"),
    "unexpected success": lambda test: None,
}

CLEANUP_ERRORS = [
    _raise(RuntimeError("in clean-up")),
    _raise(RuntimeError("in clean-up, with\n\nan empty line")),
]

tests_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(BEHAVIOURS)), st.integers(0, 2)),
    max_size=8,
)


def _test_class(plan: list[tuple[str, int]]) -> type[SynchronousTestCase]:
    """
    A test case class with one test per entry of C{plan}: a behaviour and
    how many of its clean-ups raise.
    """
    methods: dict[str, Any] = {}
    for number, (behaviour, cleanup_errors) in enumerate(plan):

        def method(
            test: SynchronousTestCase, behaviour: str = behaviour, errors: int = cleanup_errors
        ) -> None:
            for cleanup in CLEANUP_ERRORS[:errors]:
                test.addCleanup(cleanup)
            BEHAVIOURS[behaviour](test)

        if behaviour in ("expected failure", "unexpected success"):
            method.todo = Todo("generated")  # type: ignore[attr-defined]
        methods[f"test_{number:02}"] = method
    return type("Generated", (SynchronousTestCase,), methods)


class GeneratedOutputTests(TestCase):
    """
    The summary of real trial reports of generated tests agrees with the
    results trial's reporter recorded.
    """

    @given(tests_strategy)
    def test_counts_tests(self, plan: list[tuple[str, int]]) -> None:
        """
        A test is failed once, whatever number of failures, errors and
        unexpected successes trial recorded for it; skipped when skipped
        and not failed; passed otherwise.
        """
        stream = io.StringIO()
        result = reporter.TreeReporter(stream)
        TestLoader().loadClass(_test_class(plan)).run(result)
        result.done()
        failed = {
            entry[0].id() for entry in result.failures + result.errors + result.unexpectedSuccesses
        }
        skipped = {test.id() for test, _ in result.skips} - failed
        passed = len(plan) - len(failed) - len(skipped)
        self.assertEqual(
            summarize(stream.getvalue()),
            f"trial: {passed} passed, {len(failed)} failed, {len(skipped)} skipped",
        )
