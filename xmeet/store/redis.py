# -*- test-case-name: tests.test_store,tests.test_xgate_redis,tests.test_cluster -*-
"""
The backend of a cluster node: rooms mirrored to Redis, events fanned out
through Redis pub/sub (PROTOCOL.md section 5), through txredisapi.

What it keeps in Redis, and how, is L{xmeet.store.room_layout}.

A node applies its own members' actions locally at once and writes to
Redis without waiting for answers (L{RoomWriter}), so a burst of messages
costs no round trip per message. While Redis is away the writes wait in a
bounded backlog, replayed in order when it returns; the outage is logged
once, and the rooms touched meanwhile are read again by every node
(L{RoomResync}). The members of nodes that die silently are removed by
the others (L{NodeReaper}). The connections, the heartbeat and the backlog
are the node's L{RedisLink}, which the IM backend shares
(L{RedisRoomBackend.link}). This backend is the facade the room service
talks to: it loads and unloads rooms, hears their channels, and hands
the rest to those collaborators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from xmeet.core.events import EventError, RoomEvent, decode_event, event_prefixes
from xmeet.core.history import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_MEMORY, History, HistoryBudget
from xmeet.core.room import Room, history_entry
from xmeet.store.interfaces import IRoomBackend, IRoomListener, RoomState
from xmeet.store.redis_link import (
    READ_TIMEOUT,
    ILinkClient,
    RedisAddress,
    RedisLink,
    parse_redis_url,
)
from xmeet.store.room_layout import read_room
from xmeet.store.room_reaper import NodeReaper
from xmeet.store.room_resync import RoomResync
from xmeet.store.room_writer import RoomWriter

__all__ = [
    "READ_TIMEOUT",
    "RedisAddress",
    "RedisRoomBackend",
    "parse_redis_url",
]

log = Logger()


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
    @ivar writer: this node's writes (L{RoomWriter}).
    @ivar resync: the rooms read again (L{RoomResync}).
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
        self.writer = RoomWriter(clock, self.link, node_id, history_size, history_bytes)
        self.resync = RoomResync(
            node_id, self.link, self.writer, lambda xnest_id: self._fetch(xnest_id, history_size)
        )
        self._reaper = NodeReaper(clock, self.link, self.writer, node_id, node_timeout, now_text)
        self._clock = clock
        self._listener: IRoomListener | None = None
        self._room_channels = self.link.key("xnest", "")
        self._own_events = event_prefixes(node_id)
        self._channels: set[str] = set()
        self._loading: dict[str, list[RoomEvent]] = {}
        self._subscribed_on: Any = None

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

    def _channel(self, xnest_id: str) -> str:
        return self.link.key("xnest", xnest_id)

    def start(self, listener: IRoomListener) -> None:
        """
        Connect (retrying with backoff until Redis answers) and start the
        heartbeat and the search for dead nodes.
        """
        self._listener = listener
        self.link.attach(self)
        self.link.start()
        self.resync.start(listener)
        self._reaper.start()

    def link_up(self) -> None:
        """
        Redis is back (the link replayed the backlog): register this node's
        members again, and have every node read again the rooms touched
        meanwhile.
        """
        self.writer.register_local_members()
        self.resync.announce()
        self._resync_live()

    def subscriber_up(self, subscriber: Any) -> None:
        """
        Subscribe to every live room's channel, and once Redis confirms it,
        read those rooms again. One command per channel: txredisapi answers
        a command with its first confirmation, so the others of a
        several-channel C{SUBSCRIBE} would answer the next commands (the IM
        backend's, the next room's) early.
        """
        subscribing = [
            subscriber.subscribe(channel).addErrback(self.link.failed, "subscribe")
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
        notice to read again (L{RoomResync.announce}), leaving the room
        behind for good.
        """
        if self.link.subscriber is None or self._subscribed_on is not self.link.subscriber:
            return
        self.resync.read_all(self._live_channels())

    def _live_channels(self) -> list[str]:
        start = len(self._room_channels)
        return [channel[start:] for channel in self._channels]

    def publish(self, event: RoomEvent, history_entry: str | None) -> None:
        """
        Store the event's effect and publish it on the room's channel, in
        the order the node's members acted.
        """
        if self.link.connection is None:
            self.resync.touched_offline(event.xnest)
        self.writer.publish(event, history_entry)
        self.resync.note(event, history_entry)

    def stored(self) -> Deferred[None]:
        """
        Fires when Redis has answered a C{PING} sent after every write of
        this node so far: one connection answers in order, so those writes
        are done. At once when the link is down (the writes wait in the
        backlog), after L{xmeet.store.room_writer.STORED_TIMEOUT} at most when
        Redis is silent.
        """
        return self.writer.stored()

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
                self.resync.read_again(event.xnest)
            return
        buffered = self._loading.get(event.xnest)
        if buffered is not None:
            buffered.append(event)
        else:
            self.resync.note(event, None)
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
        self.link.failed(failure, f"read of xnest {xnest_id!r}")
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
        meta = self.link.key("xnest", xnest_id, "meta")
        if not store_history:
            self.writer.send("HSETNX", meta, "store_history", "0")
        state = yield self._fetch(xnest_id, history_size)
        size = history_size if store_history else 0
        return state or RoomState(store_history, History(size, max_bytes=self._history_bytes))

    @inlineCallbacks
    def _fetch(self, xnest_id: str, history_size: int) -> Any:
        self.writer.flush()
        started = self._clock.seconds()
        state = yield read_room(
            self.link.connection,
            self.link.key,
            xnest_id,
            history_size,
            self._history_bytes,
            self.node_id,
        )
        self.link.latency = self._clock.seconds() - started
        return state

    def unload(self, room: Room) -> None:
        """
        Stop hearing the room; Redis keeps its history.
        """
        channel = self._channel(room.xnest_id)
        self._channels.discard(channel)
        if self.link.subscriber is not None:
            self.link.subscriber.unsubscribe(channel).addErrback(self.link.failed, "unsubscribe")

    def peek(self, xnest_id: str, history_size: int) -> Deferred[RoomState | None]:
        """
        A room's state read from Redis; C{None} when Redis is away.
        """
        if self.link.connection is None:
            return succeed(None)
        reading: Deferred[Any] = self._fetch(xnest_id, history_size)
        reading.addTimeout(READ_TIMEOUT, self._clock)
        return reading.addErrback(self._read_failed, xnest_id, None)

    @inlineCallbacks
    def stop(self) -> Any:
        """
        Remove this node's members (the other nodes tell theirs who left)
        and disconnect.
        """
        self.writer.flush()
        self.link.leaving()
        self._reaper.stop()
        if self.link.connected:
            try:
                cleanup = self._reaper.remove_node(self.node_id)
                cleanup.addTimeout(READ_TIMEOUT, self._clock)
                yield cleanup
            except Exception:
                self.link.failed(Failure(), "removing this node's members")
        yield self.link.stop()
