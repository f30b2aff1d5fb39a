# -*- test-case-name: tests.test_store -*-
"""
The backend of a node on its own: rooms without members keep their history
in memory, in a least-recently-used map bounded in rooms and, with the
live rooms' histories, in bytes (L{HistoryBudget}), so clients inventing
room ids or sending large messages cannot exhaust memory.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from xmeet.core.events import RoomEvent
from xmeet.core.history import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_MEMORY, History, HistoryBudget
from xmeet.core.room import Room
from xmeet.store.interfaces import IRoomBackend, IRoomListener, RoomState

__all__ = ["MemoryRoomBackend"]

log = Logger()


@implementer(IRoomBackend)
class MemoryRoomBackend:
    """
    Rooms of one process. There are no other nodes: published events only
    need no storing beyond the live room itself.
    """

    def __init__(
        self,
        node_id: str,
        max_idle_rooms: int,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        history_memory: int = DEFAULT_HISTORY_MEMORY,
    ) -> None:
        self.node_id = node_id
        self._max_idle = max_idle_rooms
        self._history_bytes = history_bytes
        self.history_budget = HistoryBudget(history_memory)

    @property
    def idle_rooms(self) -> int:
        """
        How many empty rooms keep their history.
        """
        return self.history_budget.idle_rooms

    def start(self, listener: IRoomListener) -> None:
        """
        Nothing to hear: no other node exists.
        """

    def load(self, xnest_id: str, store_history: bool, history_size: int) -> Deferred[RoomState]:
        """
        The idle room's kept state, or a new room's.
        """
        history = self.history_budget.release(xnest_id)
        if history is not None:
            return succeed(RoomState(True, history))
        size = history_size if store_history else 0
        return succeed(RoomState(store_history, History(size, max_bytes=self._history_bytes)))

    def unload(self, room: Room) -> None:
        """
        Keep an emptied room's history, if it has any, as the most recently
        used idle room; forget the least recently used beyond the bound.
        Only rooms that store history have any, so an idle room is one.
        """
        if not len(room.history):
            return
        self.history_budget.keep_idle(room.xnest_id, room.history)
        while self.history_budget.idle_rooms > self._max_idle:
            forgotten = self.history_budget.forget_least_recent_idle()
            log.debug("idle xnest {xnest!r} forgotten", xnest=forgotten)

    def publish(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        The live room already holds everything; nobody else is told.
        """

    def stored(self) -> Deferred[None]:
        """
        At once: everything is here.
        """
        return succeed(None)

    def peek(self, xnest_id: str, history_size: int) -> Deferred[RoomState | None]:
        """
        An idle room's state, without refreshing its place in the LRU.
        """
        history = self.history_budget.idle(xnest_id)
        return succeed(None if history is None else RoomState(True, history))

    def stop(self) -> Deferred[None]:
        """
        Nothing to leave.
        """
        return succeed(None)

    def status(self) -> dict[str, object]:
        """
        Always connected: everything is here.
        """
        return {"backend": "memory", "connected": True, "idle_xnests": self.idle_rooms}
