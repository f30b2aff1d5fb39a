# -*- test-case-name: tests.test_store,tests.test_xgate_redis -*-
"""
Reading live rooms again from Redis, for the Redis room backend
(L{xmeet.store.redis}): after an outage, when another node announces that
a room changed while it could not write, and once the pub/sub connection
is back. What happens in a room while it is being read again is noted
and added to the state read, so that the room loses none of it. Apart
from the backend because it is its own small protocol between nodes (the
C{resync} notice) with its own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from xmeet.core.events import RoomEvent, encode_event
from xmeet.core.room import history_entry
from xmeet.store.interfaces import IRoomListener, RemoteMember, RoomState
from xmeet.store.redis_link import RedisLink
from xmeet.store.room_writer import RoomWriter

__all__ = ["RoomResync", "caught_up"]


def caught_up(
    state: RoomState, meanwhile: list[tuple[RoomEvent, str | None]], own_node: str
) -> RoomState:
    """
    A room's state as read, plus what happened in the room while it was
    being read: messages the read missed, members who came, went or
    renamed since.
    """
    history = state.history
    known = set(history.page(0)) if history is not None else set()
    members = {member.id: member for member in state.members}
    for event, entry in meanwhile:
        if event.kind == "normal":
            if history is None or not state.store_history:
                continue
            entry = entry or history_entry(
                event.member, event.nickname, event.payload, event.send_time
            )
            if entry not in known:
                history.append(entry)
                known.add(entry)
        elif event.node == own_node:
            continue
        elif event.kind == "join" or (event.kind == "rename" and event.member in members):
            members[event.member] = RemoteMember(event.member, event.nickname, event.node)
        elif event.kind == "leave":
            members.pop(event.member, None)
    return RoomState(state.store_history, history, list(members.values()))


class RoomResync:
    """
    The rooms a node reads again, and the rooms it touched while Redis was
    away, which every node must read again once it is back.

    @param fetch: reads a room's state from Redis (C{None} when the room
        is not stored), given its id.
    @ivar meanwhile: per room being read again, the events noted since the
        read was sent, with their history entries.
    """

    def __init__(
        self,
        node_id: str,
        link: RedisLink,
        writer: RoomWriter,
        fetch: Callable[[str], Deferred[Any]],
    ) -> None:
        self._node_id = node_id
        self._link = link
        self._writer = writer
        self._fetch = fetch
        self._listener: IRoomListener | None = None
        self._touched_offline: set[str] = set()
        self.meanwhile: dict[str, list[tuple[RoomEvent, str | None]]] = {}

    def start(self, listener: IRoomListener) -> None:
        """
        Hand the rooms read again to C{listener}.
        """
        self._listener = listener

    def touched_offline(self, xnest_id: str) -> None:
        """
        This node wrote to a room while Redis was away.
        """
        self._touched_offline.add(xnest_id)

    def announce(self) -> None:
        """
        Tell every node hearing a room touched during the outage to read it
        again: Redis now holds what this node kept meanwhile.
        """
        touched, self._touched_offline = self._touched_offline, set()
        for xnest_id in sorted(touched):
            notice = RoomEvent("resync", self._node_id, xnest_id, "", "", "")
            self._writer.send("PUBLISH", self._writer.channel(xnest_id), encode_event(notice))

    def note(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        An event of a room, kept if the room is being read again.
        """
        meanwhile = self.meanwhile.get(event.xnest)
        if meanwhile is not None:
            meanwhile.append((event, history_entry))

    def read_all(self, xnest_ids: Iterable[str]) -> None:
        """
        Read every one of C{xnest_ids} again.
        """
        for xnest_id in xnest_ids:
            self.read_again(xnest_id)

    def read_again(self, xnest_id: str) -> None:
        """
        Read a live room's stored state again, noting what happens in the
        room while the read is on its way.
        """
        if self._link.connection is None:
            return
        self.meanwhile.setdefault(xnest_id, [])
        reading = self._fetch(xnest_id)
        reading.addCallbacks(
            self._read, self._read_failed, callbackArgs=(xnest_id,), errbackArgs=(xnest_id,)
        )

    def _read(self, state: RoomState | None, xnest_id: str) -> None:
        meanwhile = self.meanwhile.pop(xnest_id, [])
        if self._listener is not None and state is not None:
            self._listener.room_resync(xnest_id, caught_up(state, meanwhile, self._node_id))

    def _read_failed(self, failure: Failure, xnest_id: str) -> None:
        self.meanwhile.pop(xnest_id, None)
        self._link.failed(failure, "resync")
