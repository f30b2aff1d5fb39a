"""
Tests for L{xmeet.core.history}.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.history import (
    ENTRY_OVERHEAD,
    PAGE_SIZE,
    History,
    HistoryBudget,
    entry_size,
)


def _filled(count: int, maxlen: int = 1000) -> History:
    history = History(maxlen)
    for number in range(count):
        history.append(json.dumps(number))
    return history


class HistoryTests(SynchronousTestCase):
    """
    Bounded history served newest first in pages of 50.
    """

    def test_pages(self) -> None:
        """
        120 entries: pages of 50, 50, 20, then empty, newest first.
        """
        history = _filled(120)
        pages = [[json.loads(e) for e in history.page(cursor)] for cursor in range(4)]
        self.assertEqual(pages[0], list(range(119, 69, -1)))
        self.assertEqual(pages[1], list(range(69, 19, -1)))
        self.assertEqual(pages[2], list(range(19, -1, -1)))
        self.assertEqual(pages[3], [])

    def test_bounded(self) -> None:
        """
        Only the newest C{maxlen} entries are kept.
        """
        history = _filled(30, maxlen=25)
        self.assertEqual(len(history), 25)
        self.assertEqual(json.loads(history.page_json(0)), list(range(29, 4, -1)))

    def test_zero(self) -> None:
        """
        A history of size 0 keeps nothing.
        """
        history = _filled(10, maxlen=0)
        self.assertEqual(history.page_json(0), "[]")

    @given(st.integers(0, 400), st.integers(1, 300), st.integers(0, 12))
    def test_page_property(self, count: int, maxlen: int, cursor: int) -> None:
        """
        Page C{cursor} is the matching slice of the kept entries, reversed.
        """
        history = _filled(count, maxlen)
        kept = list(range(count))[-maxlen:]
        newest_first = kept[::-1]
        expected = newest_first[cursor * PAGE_SIZE : (cursor + 1) * PAGE_SIZE]
        self.assertEqual(json.loads(history.page_json(cursor)), expected)


def _entry(number: int, size: int) -> str:
    """
    A JSON entry of C{size} bytes (by L{entry_size}) carrying C{number}.
    """
    head = json.dumps([number, ""])
    return json.dumps([number, "x" * (size - ENTRY_OVERHEAD - len(head))])


def _numbers(history: History) -> list[int]:
    return [json.loads(entry)[0] for entry in history.page(0)]


class HistoryBytesTests(SynchronousTestCase):
    """
    A history is bounded in bytes as well as in entries.
    """

    def test_entry_size(self) -> None:
        """
        An entry costs its UTF-8 size plus the overhead, ASCII or not.
        """
        self.assertEqual(entry_size('"abc"'), 5 + ENTRY_OVERHEAD)
        self.assertEqual(entry_size('"\u00e9\u4e2d"'), 7 + ENTRY_OVERHEAD)

    def test_bounded_in_bytes(self) -> None:
        """
        Past C{max_bytes}, the oldest entries go, whatever C{maxlen} allows.
        """
        history = History(1000, max_bytes=3000)
        for number in range(10):
            history.append(_entry(number, 1000))
        self.assertEqual(_numbers(history), [9, 8, 7])
        self.assertEqual(history.bytes, 3000)

    def test_keeps_the_newest(self) -> None:
        """
        An entry larger than C{max_bytes} is kept alone.
        """
        history = History(1000, [_entry(1, 500)], max_bytes=1000)
        history.append(_entry(2, 1500))
        self.assertEqual(_numbers(history), [2])

    def test_initial_entries_bounded(self) -> None:
        """
        Entries given to the constructor are bounded in bytes too.
        """
        history = History(1000, [_entry(number, 1000) for number in range(5)], max_bytes=2500)
        self.assertEqual(_numbers(history), [4, 3])

    @given(st.lists(st.integers(ENTRY_OVERHEAD + 10, 3000), max_size=60), st.integers(1, 20))
    def test_bytes_property(self, sizes: list[int], maxlen: int) -> None:
        """
        The kept entries are the longest newest run within both bounds (at
        least the newest one), and C{bytes} is their cost.
        """
        history = History(maxlen, max_bytes=4000)
        for number, size in enumerate(sizes):
            history.append(_entry(number, size))
        expected: list[int] = []
        total = 0
        for number in range(len(sizes) - 1, -1, -1):
            if len(expected) == maxlen or (expected and total + sizes[number] > 4000):
                break
            expected.append(number)
            total += sizes[number]
        self.assertEqual(_numbers(history)[:PAGE_SIZE], expected[:PAGE_SIZE])
        self.assertEqual(history.bytes, total)


class HistoryBudgetTests(SynchronousTestCase):
    """
    The histories of a node together are bounded by its budget.
    """

    def test_counts_live_and_idle(self) -> None:
        """
        The total is the bytes of every history counted, as they grow.
        """
        budget = HistoryBudget(100_000)
        live = History(100, [_entry(1, 1000)])
        budget.go_live("a", live)
        budget.keep_idle("b", History(100, [_entry(2, 2000)]))
        live.append(_entry(3, 500))
        self.assertEqual(budget.total, 3500)
        self.assertIs(budget.release("a"), live)
        live.append(_entry(4, 500))
        self.assertEqual(budget.total, 2000)

    def test_idle_least_recent_first(self) -> None:
        """
        Over the budget, the least recently used idle rooms are forgotten
        first, whole; live rooms keep everything.
        """
        budget = HistoryBudget(9000)
        for name in "abcd":
            budget.keep_idle(name, History(100, [_entry(1, 1000), _entry(2, 1000)]))
        budget.keep_idle("a", budget.release("a") or History(0))
        live = History(100)
        budget.go_live("live", live)
        for number in range(4):
            live.append(_entry(number, 1000))
        self.assertIsNone(budget.idle("b"))
        self.assertIsNone(budget.idle("c"))
        self.assertIsNotNone(budget.idle("d"))
        self.assertIsNotNone(budget.idle("a"))
        self.assertEqual(len(live), 4)
        self.assertEqual(budget.total, 8000)

    def test_live_largest_trimmed(self) -> None:
        """
        With live rooms alone over the budget, the largest histories lose
        their oldest entries until the total is 1/16 under the budget.
        """
        budget = HistoryBudget(16_000)
        big, small = History(1000), History(1000)
        budget.go_live("big", big)
        budget.go_live("small", small)
        for number in range(4):
            small.append(_entry(number, 1000))
        for number in range(13):
            big.append(_entry(number, 1000))
        self.assertEqual(len(small), 4)
        self.assertEqual(len(big), 11)
        self.assertEqual(budget.total, 15_000)

    def test_live_rooms_may_be_emptied(self) -> None:
        """
        Many live rooms of one large entry each are trimmed too: the budget
        holds whatever clients do.
        """
        budget = HistoryBudget(10_000)
        rooms = [History(1000) for _ in range(30)]
        for number, history in enumerate(rooms):
            budget.go_live(str(number), history)
            history.append(_entry(number, 1000))
            self.assertLessEqual(budget.total, 10_000)
        self.assertEqual(budget.total, sum(history.bytes for history in rooms))

    @given(
        st.lists(
            st.tuples(st.sampled_from("abcdef"), st.sampled_from(["live", "idle", "write"])),
            max_size=80,
        )
    )
    def test_bounded_property(self, steps: list[tuple[str, str]]) -> None:
        """
        Whatever rooms do, the total is the sum of the counted histories
        and within the budget.
        """
        budget = HistoryBudget(8000)
        histories: dict[str, History] = {}
        for number, (name, step) in enumerate(steps):
            history = histories.setdefault(name, History(100, max_bytes=3000))
            if step == "live":
                budget.go_live(name, history)
            elif step == "idle":
                budget.release(name)
                budget.keep_idle(name, history)
            else:
                history.append(_entry(number, 700))
            self.assertLessEqual(budget.total, 8000)
        counted = [h for name, h in histories.items() if budget._live.get(name) is h]
        counted += [h for name, h in histories.items() if budget.idle(name) is h]
        self.assertEqual(budget.total, sum(history.bytes for history in counted))
