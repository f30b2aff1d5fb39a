# -*- test-case-name: tests.test_store,tests.test_xgate_redis,tests.test_cluster -*-
"""
The backend of a cluster node: rooms mirrored to Redis, events fanned out
through Redis pub/sub (PROTOCOL.md section 5), through txredisapi.

Key layout, every key and channel under the configured prefix C{P}:

  - C{P xnest:ID:history}: list of history entries, newest first, trimmed
    to the history size and to the history bytes (each entry counted as
    its UTF-8 size plus L{ENTRY_OVERHEAD}, as in memory), keeping at least
    the newest;
  - C{P xnest:ID:history-bytes}: what the entries of that list cost, kept
    by the script that writes it (counted again from the list when
    missing);
  - C{P xnest:ID:members}: hash, member id to C{[nickname, node, joined]};
  - C{P xnest:ID:meta}: hash, C{store_history} = C{"0"} for rooms created
    without history (absent for ordinary rooms);
  - C{P node:NODE:xnests}: set of rooms where NODE has (had) members;
  - C{P node:NODE:alive}: the node's heartbeat, expiring after the node
    timeout;
  - C{P node:NODE:reaper}: who is removing a dead NODE's members;
  - C{P nodes}: set of node ids;
  - channel C{P xnest:ID}: the room's events, subscribed to by the nodes
    where the room is live.

A node applies its own members' actions locally at once and writes to
Redis without waiting for answers, so a burst of messages costs no round
trip per message. While Redis is away the writes wait in a bounded
backlog, replayed in order when it returns; the outage is logged once.
The connections, the heartbeat and the backlog are the node's
L{RedisLink}, which the IM backend shares (L{RedisRoomBackend.link}).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from xmeet.core.events import EventError, RoomEvent, decode_event, encode_event, event_prefixes
from xmeet.core.history import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_MEMORY,
    ENTRY_OVERHEAD,
    History,
    HistoryBudget,
)
from xmeet.core.room import Room, history_entry
from xmeet.store.interfaces import IRoomBackend, IRoomListener, RemoteMember, RoomState
from xmeet.store.redis_link import (
    READ_TIMEOUT,
    ILinkClient,
    RedisAddress,
    RedisLink,
    parse_redis_url,
)

__all__ = [
    "READ_TIMEOUT",
    "STORED_TIMEOUT",
    "RedisAddress",
    "RedisRoomBackend",
    "parse_redis_url",
]

log = Logger()

_LEAVE_SCRIPT = """
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
"""
"""
Remove a member; the last one out also removes the room's settings, so a
room exists, as in memory, while it has members or history: a room
without history is created anew by its next member.
"""


_RECORD_SCRIPT = """
local size = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local overhead = tonumber(ARGV[3])
for i = 1, #KEYS / 2 do
  local list, counter = KEYS[2 * i - 1], KEYS[2 * i]
  local at = 4 + (i - 1) * 3
  local entry = ARGV[at]
  if redis.call('EXISTS', counter) == 0 then
    local bytes = 0
    for _, old in ipairs(redis.call('LRANGE', list, 0, -1)) do
      bytes = bytes + #old + overhead
    end
    redis.call('SET', counter, bytes)
  end
  local length = redis.call('LPUSH', list, entry)
  local bytes = redis.call('INCRBY', counter, #entry + overhead)
  while length > 1 and (length > size or bytes > max_bytes) do
    local oldest = redis.call('RPOP', list)
    bytes = redis.call('DECRBY', counter, #oldest + overhead)
    length = length - 1
  end
  redis.call('PUBLISH', ARGV[at + 1], ARGV[at + 2])
end
"""
"""
Keep events in their rooms' histories, bounded in entries and in bytes,
and publish them: KEYS are, per room, the history list and its byte
count; ARGV the history size, the history bytes and L{ENTRY_OVERHEAD},
then, per room, the entry, the channel and the event. The oldest entries
go one by one (C{RPOP}), to keep the count exact; in a steady room that is
one per message. One command for all the chat messages of a few milliseconds:
each txredisapi command costs a node several Deferreds and a reply to
parse, so a busy room's Redis work grows with its commands, not its
messages.
"""

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
its membership (L{RedisRoomBackend.stored}). A node that knows its link is
down greets at once; one whose Redis has stopped answering without the
link being lost yet greets after this bound, from memory, as it serves
then (PROTOCOL.md section 5).
"""


def _member_value(nickname: str, node: str, joined: float) -> str:
    return json.dumps([nickname, node, joined], ensure_ascii=False)


def _remote_members(fields: Any, exclude_node: str | None = None) -> list[RemoteMember]:
    """
    The members hash as remote members in joining order; malformed values
    are skipped.
    """
    found = []
    for member_id, value in (fields or {}).items():
        try:
            nickname, node, joined = json.loads(value)
        except (TypeError, ValueError):
            continue
        if node != exclude_node:
            found.append((joined, RemoteMember(member_id, nickname, node)))
    found.sort(key=lambda pair: pair[0])
    return [member for _, member in found]


def _caught_up(
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


def _fire_once(waiting: Deferred[None]) -> None:
    if not waiting.called:
        waiting.callback(None)


@implementer(IRoomBackend, ILinkClient)
class RedisRoomBackend:
    """
    Rooms in Redis, shared by every node using the same Redis and prefix.

    @param clock: the reactor's time, for heartbeats and timeouts.
    @param reactor: the reactor that connects to Redis.
    @param now_text: the current C{send_time}, for the C{leave} events of
        members of dead nodes.
    @param node_timeout: seconds of silence after which a node is dead.
    @param backlog_limit: writes kept while Redis is away; beyond it the
        oldest are dropped (and counted).
    @param history_bytes: bytes of history kept per room, in Redis and in
        memory.
    @param history_memory: bytes of history this node keeps in memory for
        its live rooms together (L{HistoryBudget}).
    """

    def __init__(
        self,
        clock: IReactorTime,
        reactor: IReactorTCP,
        address: RedisAddress,
        prefix: str,
        node_id: str,
        history_size: int,
        node_timeout: float,
        now_text: Callable[[], str],
        backlog_limit: int = 10000,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        history_memory: int = DEFAULT_HISTORY_MEMORY,
    ) -> None:
        self.node_id = node_id
        self.history_budget = HistoryBudget(history_memory)
        self._history_bytes = history_bytes
        self.link = RedisLink(clock, reactor, address, prefix, node_id, node_timeout, backlog_limit)
        self._clock = clock
        self._history_size = history_size
        self._node_timeout = node_timeout
        self._now_text = now_text
        self._listener: IRoomListener | None = None
        self._room_channels = self._key("xnest", "")
        self._own_events = event_prefixes(node_id)
        self._channels: set[str] = set()
        self._loading: dict[str, list[RoomEvent]] = {}
        self._resyncing: dict[str, list[tuple[RoomEvent, str | None]]] = {}
        self._local: dict[str, tuple[str, str, float]] = {}
        self._touched_offline: set[str] = set()
        self._subscribed_on: Any = None
        self._record_keys: list[str] = []
        self._record_values: list[str] = []
        self._recording: Any = None
        self._reaper = LoopingCall(self._reap)
        self._reaper.clock = clock

    @property
    def connected(self) -> bool:
        """
        Whether the node reaches Redis now: its commands and its pub/sub
        connection are both up.
        """
        return self.link.fully_connected

    @property
    def backlog(self) -> int:
        """
        Writes waiting for Redis to come back.
        """
        return self.link.backlog

    @property
    def errors(self) -> int:
        """
        Failed Redis commands so far.
        """
        return self.link.errors

    @property
    def latency(self) -> float:
        """
        Seconds the last room read took.
        """
        return self.link.latency

    def status(self) -> dict[str, object]:
        """
        The link to Redis: connected or not, writes waiting, errors so far
        and the latency of the last room read.
        """
        return {
            "backend": "redis",
            "connected": self.connected,
            "backlog": self.link.backlog,
            "dropped": self.link.dropped,
            "errors": self.errors,
            "latency": round(self.latency, 6),
        }

    def _key(self, *parts: str) -> str:
        return self.link.key(*parts)

    def _channel(self, xnest_id: str) -> str:
        return self._key("xnest", xnest_id)

    def start(self, listener: IRoomListener) -> None:
        """
        Connect (retrying with backoff until Redis answers) and start the
        heartbeat and the search for dead nodes.
        """
        self._listener = listener
        self.link.attach(self)
        self.link.start()
        self._reaper.start(self._node_timeout / 2, now=False)

    def link_up(self) -> None:
        """
        Redis is back (the link replayed the backlog): register this node's
        members again, and have every node read again the rooms touched
        meanwhile.
        """
        self._register_local_members()
        touched, self._touched_offline = self._touched_offline, set()
        self._announce_resync(touched)
        self._resync_live()

    def _announce_resync(self, xnest_ids: set[str]) -> None:
        """
        Tell every node hearing one of C{xnest_ids} to read it again: it now
        holds what we kept during the outage.
        """
        for xnest_id in sorted(xnest_ids):
            notice = RoomEvent("resync", self.node_id, xnest_id, "", "", "")
            self._send("PUBLISH", self._channel(xnest_id), encode_event(notice))

    def subscriber_up(self, subscriber: Any) -> None:
        """
        Subscribe to every live room's channel, and once Redis confirms it,
        read those rooms again. One command per channel: txredisapi answers
        a command with its first confirmation, so the others of a
        several-channel C{SUBSCRIBE} would answer the next commands (the IM
        backend's, the next room's) early.
        """
        subscribing = [
            subscriber.subscribe(channel).addErrback(self._failed, "subscribe")
            for channel in sorted(self._channels)
        ]
        gatherResults(subscribing).addCallback(self._subscribed, subscriber)

    def _subscribed(self, ignored: object, subscriber: Any) -> None:
        self._subscribed_on = subscriber
        self._resync_live()

    def _resync_live(self) -> None:
        """
        Read every live room again, once commands reach Redis and the
        rooms' channels are subscribed: a read before the subscription
        could miss both another node's writes after it and that node's
        notice to read again (L{_announce_resync}), leaving the room behind
        for good.
        """
        if self.link.subscriber is None or self._subscribed_on is not self.link.subscriber:
            return
        for xnest_id in self._live_channels():
            self._resync(xnest_id)

    def _live_channels(self) -> list[str]:
        start = len(self._key("xnest", ""))
        return [channel[start:] for channel in self._channels]

    def _failed(self, failure: Failure, what: str) -> None:
        self.link.failed(failure, what)

    def _send(self, *command: Any) -> Deferred[Any] | None:
        self._write_records()
        return self.link.send(*command)

    def _register_local_members(self) -> None:
        for member_id, (xnest_id, nickname, joined) in self._local.items():
            self._store_member(xnest_id, member_id, nickname, joined)

    def _store_member(self, xnest_id: str, member_id: str, nickname: str, joined: float) -> None:
        value = _member_value(nickname, self.node_id, joined)
        self._send("HSET", self._key("xnest", xnest_id, "members"), member_id, value)
        self._send("SADD", self._key("node", self.node_id, "xnests"), xnest_id)

    def publish(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        Store the event's effect and publish it on the room's channel, in
        the order the node's members acted.
        """
        if self.link.connection is None:
            self._touched_offline.add(event.xnest)
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
            members = self._key("xnest", event.xnest, "members")
            meta = self._key("xnest", event.xnest, "meta")
            self._send("EVAL", _LEAVE_SCRIPT, 2, members, meta, event.member)
        channel = self._channel(event.xnest)
        if history_entry is None:
            self._send("PUBLISH", channel, encode_event(event))
        else:
            self._record(event.xnest, history_entry, channel, encode_event(event))
        self._note_during_resync(event, history_entry)

    def stored(self) -> Deferred[None]:
        """
        Fires when Redis has answered a C{PING} sent after every write of
        this node so far: one connection answers in order, so those writes
        are done. At once when the link is down (the writes wait in the
        backlog), after L{STORED_TIMEOUT} at most when Redis is silent.
        """
        reply = self._send("PING") if self.link.connection is not None else None
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
        other command of this backend, so that Redis sees them in order).
        """
        if not self._record_keys:
            self._recording = self._clock.callLater(RECORD_WINDOW, self._write_records)
        self._record_keys.append(self._key("xnest", xnest_id, "history"))
        self._record_keys.append(self._key("xnest", xnest_id, "history-bytes"))
        self._record_values.extend((history_entry, channel, event))
        if len(self._record_keys) == 2 * RECORDS_PER_COMMAND:
            self._write_records()

    def _write_records(self) -> None:
        recording, self._recording = self._recording, None
        if recording is not None and recording.active():
            recording.cancel()
        keys, self._record_keys = self._record_keys, []
        values, self._record_values = self._record_values, []
        if keys:
            self.link.send(
                "EVAL",
                _RECORD_SCRIPT,
                len(keys),
                *keys,
                self._history_size,
                self._history_bytes,
                ENTRY_OVERHEAD,
                *values,
            )

    def _note_during_resync(self, event: RoomEvent, history_entry: str | None) -> None:
        meanwhile = self._resyncing.get(event.xnest)
        if meanwhile is not None:
            meanwhile.append((event, history_entry))

    def channel_message(self, channel: str, message: str) -> None:
        """
        An event on a room channel; other channels of the link are not ours,
        and this node's own events, which pub/sub hands back, are dropped
        before they are parsed.
        """
        if not channel.startswith(self._room_channels) or message.startswith(self._own_events):
            return
        try:
            event = decode_event(message)
        except EventError as error:
            log.warn("ignoring a malformed room event: {error}", error=error)
            return
        if self._listener is None:
            return
        if event.kind == "resync":
            if event.xnest not in self._loading:
                self._resync(event.xnest)
            return
        buffered = self._loading.get(event.xnest)
        if buffered is not None:
            buffered.append(event)
        else:
            self._note_during_resync(event, None)
            self._listener.room_event(event)

    def load(self, xnest_id: str, store_history: bool, history_size: int) -> Deferred[RoomState]:
        """
        Subscribe to the room's channel, then read its state; events that
        arrive meanwhile are applied once the room is live, those already
        in the state skipped.
        """
        channel = self._channel(xnest_id)
        self._channels.add(channel)
        self._loading[xnest_id] = []
        result: Deferred[RoomState] = Deferred()
        if self.link.connection is None:
            self._loaded(RoomState(store_history), xnest_id, result)
            return result
        subscribed = (
            self.link.subscriber.subscribe(channel)
            if self.link.subscriber is not None
            else succeed(None)
        )
        reading = subscribed.addCallback(
            lambda _: self._state(xnest_id, history_size, store_history)
        )
        reading.addTimeout(READ_TIMEOUT, self._clock)
        reading.addErrback(self._read_failed, xnest_id, RoomState(store_history))
        reading.addCallback(self._loaded, xnest_id, result)
        return result

    def _read_failed(self, failure: Failure, xnest_id: str, fallback: Any) -> Any:
        self._failed(failure, f"read of xnest {xnest_id!r}")
        return fallback

    def _loaded(self, state: RoomState, xnest_id: str, result: Deferred[RoomState]) -> None:
        buffered = self._loading.pop(xnest_id, [])
        result.callback(state)
        known = set(state.history.page(0)) if state.history is not None else set()
        for event in buffered:
            if event.kind == "normal" and (
                history_entry(event.member, event.nickname, event.payload, event.send_time) in known
            ):
                continue
            assert self._listener is not None
            self._listener.room_event(event)

    @inlineCallbacks
    def _state(self, xnest_id: str, history_size: int, store_history: bool) -> Any:
        meta = self._key("xnest", xnest_id, "meta")
        if not store_history:
            self._send("HSETNX", meta, "store_history", "0")
        state = yield self._fetch(xnest_id, history_size)
        size = history_size if store_history else 0
        return state or RoomState(store_history, History(size, max_bytes=self._history_bytes))

    @inlineCallbacks
    def _fetch(self, xnest_id: str, history_size: int) -> Any:
        self._write_records()
        started = self._clock.seconds()
        replies = yield gatherResults(
            [
                self.link.connection.hget(self._key("xnest", xnest_id, "meta"), "store_history"),
                self.link.connection.lrange(
                    self._key("xnest", xnest_id, "history"), 0, history_size - 1
                ),
                self.link.connection.hgetall(self._key("xnest", xnest_id, "members")),
            ],
            consumeErrors=True,
        )
        self.link.latency = self._clock.seconds() - started
        flag, entries, members = replies
        if flag is None and not entries and not members:
            return None
        store_history = flag != "0"
        size = history_size if store_history else 0
        history = History(size, reversed(entries or []), self._history_bytes)
        return RoomState(store_history, history, _remote_members(members, self.node_id))

    def unload(self, room: Room) -> None:
        """
        Stop hearing the room; Redis keeps its history.
        """
        channel = self._channel(room.xnest_id)
        self._channels.discard(channel)
        if self.link.subscriber is not None:
            self.link.subscriber.unsubscribe(channel).addErrback(self._failed, "unsubscribe")

    def peek(self, xnest_id: str, history_size: int) -> Deferred[RoomState | None]:
        """
        A room's state read from Redis; C{None} when Redis is away.
        """
        if self.link.connection is None:
            return succeed(None)
        reading: Deferred[Any] = self._fetch(xnest_id, history_size)
        reading.addTimeout(READ_TIMEOUT, self._clock)
        return reading.addErrback(self._read_failed, xnest_id, None)

    def _resync(self, xnest_id: str) -> None:
        """
        Read a live room's stored state again. What happens in the room
        while the read is on its way is noted, and added to the state read,
        so that the room loses none of it.
        """
        if self.link.connection is None:
            return
        self._resyncing.setdefault(xnest_id, [])
        reading: Deferred[Any] = self._fetch(xnest_id, self._history_size)
        reading.addCallbacks(
            self._resynced, self._resync_failed, callbackArgs=(xnest_id,), errbackArgs=(xnest_id,)
        )

    def _resynced(self, state: RoomState | None, xnest_id: str) -> None:
        meanwhile = self._resyncing.pop(xnest_id, [])
        if self._listener is not None and state is not None:
            self._listener.room_resync(xnest_id, _caught_up(state, meanwhile, self.node_id))

    def _resync_failed(self, failure: Failure, xnest_id: str) -> None:
        self._resyncing.pop(xnest_id, None)
        self._failed(failure, "resync")

    @inlineCallbacks
    def _reap(self) -> Any:
        """
        Remove the members of nodes whose heartbeat expired; a lock makes
        one node do it.
        """
        if self.link.connection is None:
            return
        try:
            nodes = yield self.link.connection.execute_command("SMEMBERS", self._key("nodes"))
            for node in nodes or ():
                if node == self.node_id:
                    continue
                alive = yield self.link.connection.execute_command(
                    "EXISTS", self._key("node", node, "alive")
                )
                if alive:
                    continue
                reaper = self._key("node", node, "reaper")
                timeout_ms = int(self._node_timeout * 1000)
                claimed = yield self.link.connection.execute_command(
                    "SET", reaper, self.node_id, "NX", "PX", timeout_ms
                )
                if claimed:
                    log.info("node {node} is silent: removing its members", node=node)
                    yield self._remove_node(node)
        except Exception:
            self._failed(Failure(), "search for dead nodes")

    @inlineCallbacks
    def _remove_node(self, node: str) -> Any:
        xnests = yield self.link.connection.execute_command(
            "SMEMBERS", self._key("node", node, "xnests")
        )
        for xnest_id in xnests or ():
            members_key = self._key("xnest", xnest_id, "members")
            fields = yield self.link.connection.hgetall(members_key)
            for member in _remote_members(fields):
                if member.node != node:
                    continue
                meta = self._key("xnest", xnest_id, "meta")
                self._send("EVAL", _LEAVE_SCRIPT, 2, members_key, meta, member.id)
                event = RoomEvent(
                    "leave", node, xnest_id, member.id, member.nickname, self._now_text()
                )
                self._send("PUBLISH", self._channel(xnest_id), encode_event(event))
        self._send("DEL", self._key("node", node, "xnests"), self._key("node", node, "alive"))
        yield self.link.connection.execute_command("SREM", self._key("nodes"), node)

    @inlineCallbacks
    def stop(self) -> Any:
        """
        Remove this node's members (the other nodes tell theirs who left)
        and disconnect.
        """
        self._write_records()
        self.link.leaving()
        if self._reaper.running:
            self._reaper.stop()
        if self.link.connected:
            try:
                cleanup = self._remove_node(self.node_id)
                cleanup.addTimeout(READ_TIMEOUT, self._clock)
                yield cleanup
            except Exception:
                self._failed(Failure(), "removing this node's members")
        yield self.link.stop()
