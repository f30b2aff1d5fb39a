"""
Tests for L{xmeet.core.history}.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.history import PAGE_SIZE, History


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
