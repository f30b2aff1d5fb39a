# -*- test-case-name: tests.test_core_history -*-
"""
A room's bounded chat history and its pages.

Entries are kept already encoded as JSON objects, so that a page is a
join of strings: asking for history costs no re-encoding of old messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["PAGE_SIZE", "History"]

PAGE_SIZE = 50


class History:
    """
    The most recent C{maxlen} entries of a room, oldest first in memory,
    served newest first in pages of L{PAGE_SIZE}.
    """

    def __init__(self, maxlen: int, entries: Iterable[str] = ()) -> None:
        self._entries: deque[str] = deque(entries, maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry_json: str) -> None:
        """
        Add the newest entry, dropping the oldest past C{maxlen}.
        """
        self._entries.append(entry_json)

    def page(self, cursor: int) -> list[str]:
        """
        Page C{cursor}, newest first: page 0 is the L{PAGE_SIZE} most recent
        entries; a page past the end is empty.
        """
        newest_index = len(self._entries) - 1 - cursor * PAGE_SIZE
        if newest_index < 0:
            return []
        oldest_index = max(newest_index - PAGE_SIZE + 1, 0)
        entries = self._entries
        return [entries[index] for index in range(newest_index, oldest_index - 1, -1)]

    def page_json(self, cursor: int) -> str:
        """
        Page C{cursor} as a JSON array.
        """
        return "[" + ",".join(self.page(cursor)) + "]"
