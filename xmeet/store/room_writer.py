# -*- test-case-name: tests.test_store,tests.test_rooms_redis -*-
"""
The writing half of the Redis room backend (L{xmeet.store.redis}): what a
node's own members do, stored in Redis and published to the other nodes
in the order they did it, without waiting for answers, so that a burst of
messages costs no round trip per message. Chat messages are batched into
one command for a few milliseconds; every other command first writes the
batch, so that Redis sees the node's writes in order.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from xmeet.core.events import RoomEvent, encode_event
from xmeet.core.history import ENTRY_OVERHEAD
from xmeet.store.redis_link import RedisLink
from xmeet.store.room_layout import LEAVE_SCRIPT, RECORD_SCRIPT, member_value

__all__ = ["RECORDS_PER_COMMAND", "RECORD_WINDOW", "STORED_TIMEOUT", "RoomWriter"]

RECORDS_PER_COMMAND = 128
"""
Chat messages recorded by one command at most, so that one script does
not hold Redis for long.
"""

RECORD_WINDOW = 0.002
"""
Seconds a node collects chat messages before recording them with one
command. A node in many small rooms has only a few messages per reactor
turn, and each command's cost (in the node and in the other nodes'
wake-ups) is paid per command: a couple of milliseconds of cross-node
latency buy fewer, fuller commands (bench/README.rst, finding 7).
"""


STORED_TIMEOUT = 1.0
"""
Seconds a new member's greeting waits at most for Redis to acknowledge
its membership (L{RoomWriter.stored}). A node that knows its link is
down greets at once; one whose Redis has stopped answering without the
link being lost yet greets after this bound, from memory, as it serves
then (PROTOCOL.md section 5).
"""


def _fire_once(waiting: Deferred[None]) -> None:
    if not waiting.called:
        waiting.callback(None)


class RoomWriter:
    """
    A node's writes to Redis for its rooms, through its L{RedisLink}.

    @param history_size: entries kept per room's history in Redis.
    @param history_bytes: bytes kept per room's history in Redis.
    """

    def __init__(
        self,
        clock: IReactorTime,
        link: RedisLink,
        node_id: str,
        history_size: int,
        history_bytes: int,
    ) -> None:
        self._clock = clock
        self._link = link
        self._node_id = node_id
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._local: dict[str, tuple[str, str, float]] = {}
        self._record_keys: list[str] = []
        self._record_values: list[str] = []
        self._recording: IDelayedCall | None = None

    def channel(self, xnest_id: str) -> str:
        """
        The pub/sub channel of a room.
        """
        return self._link.key("xnest", xnest_id)

    def send(self, *command: Any) -> Deferred[Any] | None:
        """
        Send a command after the chat messages waiting to be recorded.
        """
        self.flush()
        return self._link.send(*command)

    def register_local_members(self) -> None:
        """
        Store again every member of this node, after an outage.
        """
        for member_id, (xnest_id, nickname, joined) in self._local.items():
            self._store_member(xnest_id, member_id, nickname, joined)

    def _store_member(self, xnest_id: str, member_id: str, nickname: str, joined: float) -> None:
        value = member_value(nickname, self._node_id, joined)
        self.send("HSET", self._link.key("xnest", xnest_id, "members"), member_id, value)
        self.send("SADD", self._link.key("node", self._node_id, "xnests"), xnest_id)

    def remove_member(self, xnest_id: str, member_id: str) -> None:
        """
        Remove a member from a room's members (with L{LEAVE_SCRIPT}).
        """
        members = self._link.key("xnest", xnest_id, "members")
        meta = self._link.key("xnest", xnest_id, "meta")
        self.send("EVAL", LEAVE_SCRIPT, 2, members, meta, member_id)

    def publish(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        Store the event's effect and publish it on the room's channel, in
        the order the node's members acted.
        """
        if event.kind == "join":
            joined = self._clock.seconds()
            self._local[event.member] = (event.xnest, event.nickname, joined)
            self._store_member(event.xnest, event.member, event.nickname, joined)
        elif event.kind == "rename":
            known = self._local.get(event.member)
            if known is not None:
                self._local[event.member] = (event.xnest, event.nickname, known[2])
                self._store_member(event.xnest, event.member, event.nickname, known[2])
        elif event.kind == "leave":
            self._local.pop(event.member, None)
            self.remove_member(event.xnest, event.member)
        channel = self.channel(event.xnest)
        if history_entry is None:
            self.send("PUBLISH", channel, encode_event(event))
        else:
            self._record(event.xnest, history_entry, channel, encode_event(event))

    def stored(self) -> Deferred[None]:
        """
        Fires when Redis has answered a C{PING} sent after every write of
        this node so far: one connection answers in order, so those writes
        are done. At once when the link is down (the writes wait in the
        backlog), after L{STORED_TIMEOUT} at most when Redis is silent.
        """
        reply = self.send("PING") if self._link.connection is not None else None
        if reply is None:
            return succeed(None)
        done: Deferred[None] = Deferred()
        bound = self._clock.callLater(STORED_TIMEOUT, _fire_once, done)

        def answered(_: object) -> None:
            if bound.active():
                bound.cancel()
            _fire_once(done)

        reply.addBoth(answered)
        return done

    def _record(self, xnest_id: str, history_entry: str, channel: str, event: str) -> None:
        """
        Keep a chat message for at most L{RECORD_WINDOW}, when the messages
        kept meanwhile are recorded by one command (or sooner, before any
        other command of this node's rooms, so that Redis sees them in
        order).
        """
        if not self._record_keys:
            self._recording = self._clock.callLater(RECORD_WINDOW, self.flush)
        self._record_keys.append(self._link.key("xnest", xnest_id, "history"))
        self._record_keys.append(self._link.key("xnest", xnest_id, "history-bytes"))
        self._record_values.extend((history_entry, channel, event))
        if len(self._record_keys) == 2 * RECORDS_PER_COMMAND:
            self.flush()

    def flush(self) -> None:
        """
        Record the chat messages kept so far, with one command.
        """
        recording, self._recording = self._recording, None
        if recording is not None and recording.active():
            recording.cancel()
        keys, self._record_keys = self._record_keys, []
        values, self._record_values = self._record_values, []
        if keys:
            self._link.send(
                "EVAL",
                RECORD_SCRIPT,
                len(keys),
                *keys,
                self._history_size,
                self._history_bytes,
                ENTRY_OVERHEAD,
                *values,
            )
