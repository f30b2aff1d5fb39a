# -*- test-case-name: tests.test_core_history -*-
"""
A room's bounded chat history and its pages, and the byte budget of all
the histories a node keeps in memory.

Entries are kept already encoded as JSON objects, so that a page is a
join of strings: asking for history costs no re-encoding of old messages.

A history is bounded twice: in messages and in bytes. An entry costs its
size in UTF-8 plus L{ENTRY_OVERHEAD} (see L{entry_size}); the Redis
backend counts the same way, so a room keeps the same messages in both.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterable

__all__ = [
    "DEFAULT_HISTORY_BYTES",
    "DEFAULT_HISTORY_MEMORY",
    "ENTRY_OVERHEAD",
    "PAGE_SIZE",
    "History",
    "HistoryBudget",
    "entry_size",
]

PAGE_SIZE = 50

DEFAULT_HISTORY_BYTES = 1024 * 1024
"""
Bytes of history kept per room by default (C{--history-bytes}).
"""

DEFAULT_HISTORY_MEMORY = 256 * 1024 * 1024
"""
Bytes of history a node keeps in memory for all its rooms together by
default (C{--history-memory}).
"""

ENTRY_OVERHEAD = 64
"""
Bytes an entry costs beyond its text: roughly what CPython spends on a
string object's header and its slot in the deque. Counting it keeps a
flood of tiny messages from costing much more than its byte count says.
"""


def entry_size(entry: str) -> int:
    """
    What C{entry} costs a history: its UTF-8 size plus L{ENTRY_OVERHEAD}.
    An ASCII entry (most of them: JSON escapes little) is measured without
    encoding it.

    The UTF-8 size is close to what the text takes in CPython, except for
    a text mixing ASCII with characters beyond the BMP, which CPython keeps
    at 4 bytes a character: up to 4 times its count.
    """
    text_size = len(entry) if entry.isascii() else len(entry.encode("utf-8"))
    return text_size + ENTRY_OVERHEAD


class History:
    """
    The most recent entries of a room, at most C{maxlen} of them and at
    most C{max_bytes} bytes (by L{entry_size}) though always the newest
    one, oldest first in memory, served newest first in pages of
    L{PAGE_SIZE}.

    @ivar bytes: what the entries cost together, by L{entry_size}.
    """

    def __init__(
        self,
        maxlen: int,
        entries: Iterable[str] = (),
        max_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        self._maxlen = maxlen
        self._max_bytes = max_bytes
        self._entries: deque[str] = deque()
        self._budget: HistoryBudget | None = None
        self.bytes = 0
        for entry in entries:
            self.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry_json: str) -> None:
        """
        Add the newest entry, dropping the oldest past C{maxlen} entries or
        C{max_bytes}; then tell the node's budget, if the history counts
        against one, which may drop more (see L{HistoryBudget}).
        """
        if self._maxlen == 0:
            return
        self._entries.append(entry_json)
        grown = entry_size(entry_json)
        self.bytes += grown
        while len(self._entries) > self._maxlen or (
            self.bytes > self._max_bytes and len(self._entries) > 1
        ):
            grown -= self.drop_oldest()
        if self._budget is not None:
            self._budget.grew(grown)

    def drop_oldest(self) -> int:
        """
        Forget the oldest entry; return the bytes freed. The budget is not
        told: this is how it reclaims bytes.
        """
        freed = entry_size(self._entries.popleft())
        self.bytes -= freed
        return freed

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


class HistoryBudget:
    """
    The bytes of every history a node keeps in memory, bounded together by
    C{limit}: those of its live rooms (with members on this node) and of
    its idle rooms (kept by the in-memory backend after their last member
    left), each keyed by room id.

    When the histories together grow past C{limit}:

      1. the least recently used idle rooms are forgotten, whole, until
         the total is within the limit;
      2. if the live rooms alone are still over it, the largest live
         histories lose their oldest entries (the largest first, which is
         where a flood goes) until the total is 1/16 under the limit, so
         that this costs one pass over the live rooms per 1/16 of the
         budget written, not one per message. A live history may then be
         left empty: the budget holds whatever clients do.

    @ivar total: bytes of all the histories counted, by L{entry_size}.
    """

    def __init__(self, limit: int = DEFAULT_HISTORY_MEMORY) -> None:
        self.limit = limit
        self.total = 0
        self._live: dict[str, History] = {}
        self._idle: OrderedDict[str, History] = OrderedDict()

    @property
    def idle_rooms(self) -> int:
        """
        How many idle rooms keep their history.
        """
        return len(self._idle)

    def go_live(self, xnest_id: str, history: History) -> None:
        """
        Count C{history} as live room C{xnest_id}'s, instead of any history
        the room had before (a resynchronised room gets a new one).
        """
        self.release(xnest_id)
        self._live[xnest_id] = history
        self._count(history)

    def release(self, xnest_id: str) -> History | None:
        """
        Stop counting room C{xnest_id}'s history, live or idle; return it.
        """
        history = self._live.pop(xnest_id, None)
        if history is None:
            history = self._idle.pop(xnest_id, None)
        if history is not None:
            history._budget = None
            self.total -= history.bytes
        return history

    def keep_idle(self, xnest_id: str, history: History) -> None:
        """
        Keep C{history} as idle room C{xnest_id}'s, the most recently used.
        """
        self.release(xnest_id)
        self._idle[xnest_id] = history
        self._count(history)

    def idle(self, xnest_id: str) -> History | None:
        """
        Idle room C{xnest_id}'s history, without refreshing its place.
        """
        return self._idle.get(xnest_id)

    def forget_least_recent_idle(self) -> str:
        """
        Forget the least recently used idle room; return its id.
        """
        xnest_id = next(iter(self._idle))
        self.release(xnest_id)
        return xnest_id

    def grew(self, grown: int) -> None:
        """
        A counted history grew by C{grown} bytes (negative: shrank).
        """
        self.total += grown
        if grown > 0 and self.total > self.limit:
            self._reclaim()

    def _count(self, history: History) -> None:
        history._budget = self
        self.grew(history.bytes)

    def _reclaim(self) -> None:
        while self._idle and self.total > self.limit:
            self.forget_least_recent_idle()
        if self.total > self.limit:
            self._trim_live(self.limit - self.limit // 16)

    def _trim_live(self, target: int) -> None:
        largest = [
            (-history.bytes, order, history)
            for order, history in enumerate(self._live.values())
            if len(history)
        ]
        heapq.heapify(largest)
        while largest and self.total > target:
            _, order, history = heapq.heappop(largest)
            self.total -= history.drop_oldest()
            if len(history):
                heapq.heappush(largest, (-history.bytes, order, history))
