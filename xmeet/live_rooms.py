# -*- test-case-name: tests.test_rooms,tests.test_rooms_redis -*-
"""
The xnests live on one node, for the room service (L{xmeet.rooms}): an
xnest is live while the node has members in it, and the node then keeps
its L{Room}. Taking an xnest live asks the backend for its state (its
history, the members on other nodes), which in a cluster takes a round
trip; members joining meanwhile wait for the same load. Apart from the
service because this bookkeeping of loads and unloads is its own
concern, which the service's joining, leaving and broadcasting rely on.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmeet.config import Settings
from xmeet.core.history import History
from xmeet.core.room import Member, Room
from xmeet.store.interfaces import IRoomBackend, RoomState

__all__ = ["LiveRooms"]

log = Logger()


class LiveRooms:
    """
    The L{Room} of every xnest with members on this node.
    """

    def __init__(self, settings: Settings, backend: IRoomBackend) -> None:
        self._settings = settings
        self._backend = backend
        self._live: dict[str, Room] = {}
        self._loading: dict[str, list[Deferred[Room]]] = {}
        self._emptied_while_loading: set[str] = set()

    def __len__(self) -> int:
        return len(self._live)

    def get(self, xnest_id: str) -> Room | None:
        """
        The L{Room} of C{xnest_id} if the xnest is live here.
        """
        return self._live.get(xnest_id)

    def take_live(self, xnest_id: str, store_history: bool) -> Deferred[Room]:
        """
        The L{Room} of C{xnest_id}, loaded from the backend if the xnest is
        not live yet (C{store_history} matters only for a new xnest).
        """
        room = self._live.get(xnest_id)
        if room is not None:
            return succeed(room)
        waiting = self._loading.get(xnest_id)
        result: Deferred[Room] = Deferred()
        if waiting is not None:
            waiting.append(result)
            return result
        self._loading[xnest_id] = [result]
        loading = self._backend.load(xnest_id, store_history, self._settings.history_size)
        loading.addCallback(self._loaded, xnest_id)
        loading.addErrback(self._load_failed, xnest_id, store_history)
        return result

    def _loaded(self, state: RoomState, xnest_id: str) -> None:
        history = state.history
        if history is None:
            size = self._settings.history_size if state.store_history else 0
            history = History(size, max_bytes=self._settings.history_bytes)
        self._backend.history_budget.go_live(xnest_id, history)
        room = Room(xnest_id, history, state.store_history)
        for remote in state.members:
            room.add(Member(remote.id, remote.nickname))
        self._live[xnest_id] = room
        for waiter in self._loading[xnest_id]:
            waiter.callback(room)
        del self._loading[xnest_id]
        if xnest_id in self._emptied_while_loading:
            self._emptied_while_loading.discard(xnest_id)
            if not room.local:
                self.take_offline(room)

    def take_offline(self, room: Room) -> None:
        """
        The last local member of C{room} is gone: stop keeping it live.

        While the room's load is still being handed to the members waiting
        for it, a member that gave up first (its connection ended during
        the load) must not take the room offline under the next one: the
        decision waits for the end of L{_loaded}.
        """
        if room.xnest_id in self._loading:
            self._emptied_while_loading.add(room.xnest_id)
            return
        del self._live[room.xnest_id]
        self._backend.history_budget.release(room.xnest_id)
        self._backend.unload(room)

    def _load_failed(self, failure: Failure, xnest_id: str, store_history: bool) -> None:
        log.failure("loading xnest {xnest!r} failed; starting it empty", failure, xnest=xnest_id)
        self._loaded(RoomState(store_history), xnest_id)
