# -*- test-case-name: tests.test_store -*-
"""
The backend of a node on its own: rooms without members keep their history
in memory, in a least-recently-used map of bounded size, so clients
inventing room ids cannot exhaust memory.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from xmeet.core.events import RoomEvent
from xmeet.core.history import History
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

    def __init__(self, node_id: str, max_idle_rooms: int) -> None:
        self.node_id = node_id
        self._max_idle = max_idle_rooms
        self._idle: OrderedDict[str, RoomState] = OrderedDict()

    @property
    def idle_rooms(self) -> int:
        """
        How many empty rooms keep their history.
        """
        return len(self._idle)

    def start(self, listener: IRoomListener) -> None:
        """
        Nothing to hear: no other node exists.
        """

    def load(self, xnest_id: str, store_history: bool, history_size: int) -> Deferred[RoomState]:
        """
        The idle room's kept state, or a new room's.
        """
        state = self._idle.pop(xnest_id, None)
        if state is None:
            state = RoomState(store_history, History(history_size if store_history else 0))
        return succeed(state)

    def unload(self, room: Room) -> None:
        """
        Keep an emptied room's history, if it has any, as the most recently
        used idle room; forget the least recently used beyond the bound.
        """
        if not len(room.history):
            return
        self._idle[room.xnest_id] = RoomState(room.store_history, room.history)
        while len(self._idle) > self._max_idle:
            forgotten, _ = self._idle.popitem(last=False)
            log.debug("idle xnest {xnest!r} forgotten", xnest=forgotten)

    def publish(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        The live room already holds everything; nobody else is told.
        """

    def peek(self, xnest_id: str, history_size: int) -> Deferred[RoomState | None]:
        """
        An idle room's state, without refreshing its place in the LRU.
        """
        return succeed(self._idle.get(xnest_id))

    def stop(self) -> Deferred[None]:
        """
        Nothing to leave.
        """
        return succeed(None)

    def status(self) -> dict[str, object]:
        """
        Always connected: everything is here.
        """
        return {"backend": "memory", "connected": True, "idle_xnests": len(self._idle)}
