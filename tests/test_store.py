"""
One behaviour, two room backends: L{MemoryRoomBackend} in this process and
L{RedisRoomBackend} against the real Redis on 127.0.0.1:6379 (with a key
prefix of the test's own, removed afterwards).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.cluster_support import redis_cleanup, unique_prefix
from tests.xgate_client import wait_until
from xmeet.core.events import RoomEvent
from xmeet.core.history import DEFAULT_HISTORY_BYTES, History, entry_size
from xmeet.core.room import Room, history_entry
from xmeet.store.interfaces import IRoomBackend, IRoomListener, RoomState
from xmeet.store.memory import MemoryRoomBackend
from xmeet.store.redis import RedisRoomBackend, parse_redis_url
from xmeet.store.room_writer import RECORDS_PER_COMMAND

HISTORY = 100


@implementer(IRoomListener)
class Listener:
    """
    Keeps what the backend tells.
    """

    def __init__(self) -> None:
        self.events: list[RoomEvent] = []
        self.resyncs: list[tuple[str, RoomState]] = []

    def room_event(self, event: RoomEvent) -> None:
        self.events.append(event)

    def room_resync(self, xnest_id: str, state: RoomState) -> None:
        self.resyncs.append((xnest_id, state))


class _PendingSubscriber:
    """
    A pub/sub connection whose subscriptions Redis has not confirmed
    until L{confirm}.
    """

    def __init__(self) -> None:
        self.channels: list[str] = []
        self._pending: list[defer.Deferred[None]] = []

    def subscribe(self, channel: str) -> defer.Deferred[None]:
        self.channels.append(channel)
        self._pending.append(defer.Deferred())
        return self._pending[-1]

    def confirm(self) -> None:
        for pending in self._pending:
            pending.callback(None)


class BackendBehaviour:
    """
    What every room backend does; mixed into a C{TestCase} that provides
    C{make_backend(node_id)} returning a started backend (or a Deferred of
    one).
    """

    def make_backend(self, node_id: str, history_bytes: int = DEFAULT_HISTORY_BYTES) -> Any:
        raise NotImplementedError

    @defer.inlineCallbacks
    def _backend(self, node_id: str = "node-a") -> Any:
        backend = yield self.make_backend(node_id)
        return backend

    def _room(self, state: RoomState, xnest_id: str) -> Room:
        history = state.history if state.history is not None else History(0)
        return Room(xnest_id, history, state.store_history)

    @defer.inlineCallbacks
    def test_interface(self):  # type: ignore[no-untyped-def]
        """
        The backend provides L{IRoomBackend} and reports its status.
        """
        backend = yield self._backend()
        verifyObject(IRoomBackend, backend)
        status = backend.status()
        self.assertTrue(status["connected"])
        self.assertIn(status["backend"], ("memory", "redis"))

    @defer.inlineCallbacks
    def test_new_room(self):  # type: ignore[no-untyped-def]
        """
        An unknown room loads empty with the asked history setting; peeking
        at it knows nothing.
        """
        backend = yield self._backend()
        state = yield backend.load("fresh", False, HISTORY)
        self.assertFalse(state.store_history)
        self.assertEqual(state.history.page(0) if state.history else [], [])
        self.assertEqual(list(state.members), [])
        other = yield backend.peek("never-seen", HISTORY)
        self.assertIsNone(other)

    @defer.inlineCallbacks
    def test_history_outlives_the_room(self):  # type: ignore[no-untyped-def]
        """
        What was said stays when the room empties: peek and the next load
        both see it, newest first.
        """
        backend = yield self._backend()
        state = yield backend.load("room", True, HISTORY)
        room = self._room(state, "room")
        for number in range(3):
            entry = room.record("m.1", "alice", f"text {number}", "2026-1-1 0:0:0")
            event = RoomEvent(
                "normal",
                backend.node_id,
                "room",
                "m.1",
                "alice",
                "2026-1-1 0:0:0",
                f"text {number}",
            )
            backend.publish(event, entry)
        backend.unload(room)
        expected = [history_entry("m.1", "alice", f"text {n}", "2026-1-1 0:0:0") for n in (2, 1, 0)]
        peeked = yield backend.peek("room", HISTORY)
        self.assertEqual(peeked.history.page(0), expected)
        again = yield backend.load("room", True, HISTORY)
        self.assertEqual(again.history.page(0), expected)

    @defer.inlineCallbacks
    def test_history_bounded_in_bytes(self):  # type: ignore[no-untyped-def]
        """
        A room's history keeps no more than the history bytes, newest
        first, in the live room and in the store alike.
        """
        entries = [history_entry("m.1", "a", f"{n} " + "x" * 900, "t") for n in range(10)]
        backend = yield self.make_backend("node-a", history_bytes=3 * entry_size(entries[0]))
        state = yield backend.load("big", True, HISTORY)
        room = self._room(state, "big")
        for number, entry in enumerate(entries):
            self.assertEqual(room.record("m.1", "a", f"{number} " + "x" * 900, "t"), entry)
            event = RoomEvent("normal", backend.node_id, "big", "m.1", "a", "t", entry)
            backend.publish(event, entry)
        self.assertEqual(room.history.page(0), entries[:6:-1])
        backend.unload(room)
        peeked = yield backend.peek("big", HISTORY)
        self.assertEqual(peeked.history.page(0), entries[:6:-1])
        self.assertEqual(peeked.history.bytes, 3 * entry_size(entries[0]))

    @defer.inlineCallbacks
    def test_room_without_history_is_new_again(self):  # type: ignore[no-untyped-def]
        """
        A room created without history keeps none; once its last member
        left it is created anew by the next one.
        """
        backend = yield self._backend()
        state = yield backend.load("quiet", False, HISTORY)
        room = self._room(state, "quiet")
        join = RoomEvent("join", backend.node_id, "quiet", "m.1", "n", "t")
        backend.publish(join, None)
        self.assertIsNone(room.record("m.1", "n", "lost", "t"))
        backend.publish(RoomEvent("leave", backend.node_id, "quiet", "m.1", "n", "t"), None)
        backend.unload(room)
        reborn = yield backend.load("quiet", True, HISTORY)
        self.assertTrue(reborn.store_history)


class MemoryBackendTests(BackendBehaviour, TestCase):
    """
    The behaviour of the in-memory backend.
    """

    def make_backend(
        self, node_id: str, history_bytes: int = DEFAULT_HISTORY_BYTES
    ) -> MemoryRoomBackend:
        backend = MemoryRoomBackend(node_id, 10, history_bytes)
        backend.start(Listener())
        return backend

    def _idle_room(self, backend: MemoryRoomBackend, xnest_id: str, sizes: list[int]) -> Room:
        state = self.successResultOf(backend.load(xnest_id, True, HISTORY))
        room = self._room(state, xnest_id)
        backend.history_budget.go_live(xnest_id, room.history)
        for size in sizes:
            room.record("m.1", "a", "x" * size, "t")
        backend.history_budget.release(xnest_id)
        backend.unload(room)
        return room

    def test_budget_forgets_idle_rooms_least_recent_first(self) -> None:
        """
        Over the node's history budget, the idle rooms used least recently
        are forgotten first; a room loaded again counts as used.
        """
        backend = MemoryRoomBackend("node-a", 10, history_memory=10_000)
        for name in "abc":
            self._idle_room(backend, name, [2000])
        self._idle_room(backend, "a", [])
        self._idle_room(backend, "d", [2000, 2000])
        self.assertIsNone(self.successResultOf(backend.peek("b", HISTORY)))
        for name in "acd":
            self.assertIsNotNone(self.successResultOf(backend.peek(name, HISTORY)))
        self.assertEqual(backend.idle_rooms, 3)
        self.assertLessEqual(backend.history_budget.total, 10_000)

    def test_idle_rooms_bounded_in_number(self) -> None:
        """
        Beyond the idle rooms limit, the least recently used is forgotten,
        and its bytes no longer count.
        """
        backend = MemoryRoomBackend("node-a", 2)
        for name in "abc":
            self._idle_room(backend, name, [1000])
        self.assertIsNone(self.successResultOf(backend.peek("a", HISTORY)))
        self.assertEqual(backend.idle_rooms, 2)
        entry = history_entry("m.1", "a", "x" * 1000, "t")
        self.assertEqual(backend.history_budget.total, 2 * entry_size(entry))


class RedisBackendTests(BackendBehaviour, TestCase):
    """
    The behaviour of the Redis backend, plus what only a shared store does.
    """

    def setUp(self) -> None:
        self.prefix = unique_prefix()
        redis_cleanup(self, self.prefix)

    @defer.inlineCallbacks
    def make_backend(
        self,
        node_id: str,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        listener: Listener | None = None,
    ) -> Any:
        backend = RedisRoomBackend(
            reactor,
            reactor,
            parse_redis_url("redis://127.0.0.1:6379/0"),
            self.prefix,
            node_id,
            HISTORY,
            5.0,
            lambda: "2026-1-1 0:0:0",
            history_bytes=history_bytes,
        )
        backend.start(listener or Listener())
        self.addCleanup(backend.stop)
        yield wait_until(lambda: backend.connected)
        return backend

    @defer.inlineCallbacks
    def test_redis_list_bounded_in_bytes(self):  # type: ignore[no-untyped-def]
        """
        Redis itself keeps no more than the history bytes of a room, and
        the byte count beside the list is what the kept entries cost; a
        list written before the count existed is counted on the next write.
        """
        entries = [history_entry("m.1", "a", f"{n} \u4e2d" + "x" * 900, "t") for n in range(10)]
        size = entry_size(entries[0])
        backend = yield self.make_backend("node-a", history_bytes=3 * size)
        key = self.prefix + "xnest:big:history"
        yield backend.link.connection.lpush(key, entries[0])
        for entry in entries[1:]:
            event = RoomEvent("normal", backend.node_id, "big", "m.1", "a", "t", entry)
            backend.publish(event, entry)
        yield wait_until(lambda: not backend.writer._record_keys)
        kept = yield backend.link.connection.lrange(key, 0, -1)
        counted = yield backend.link.connection.get(self.prefix + "xnest:big:history-bytes")
        self.assertEqual(kept, entries[:6:-1])
        self.assertEqual(int(counted), 3 * size)

    @defer.inlineCallbacks
    def test_events_reach_other_nodes(self):  # type: ignore[no-untyped-def]
        """
        A node hearing a room gets the other node's events, in order, and
        never its own; the joiner is among the members it loads.
        """
        heard = Listener()
        one = yield self.make_backend("node-one")
        two = yield self.make_backend("node-two", listener=heard)
        yield one.load("room", True, HISTORY)
        one.publish(RoomEvent("join", "node-one", "room", "node-one.1", "alice", "t"), None)
        state = yield two.load("room", True, HISTORY)
        self.assertEqual(
            [(m.id, m.nickname, m.node) for m in state.members],
            [("node-one.1", "alice", "node-one")],
        )
        for number in range(5):
            one.publish(
                RoomEvent("normal", "node-one", "room", "node-one.1", "alice", "t", f"n{number}"),
                history_entry("node-one.1", "alice", f"n{number}", "t"),
            )
        two.publish(RoomEvent("normal", "node-two", "room", "node-two.1", "bob", "t", "own"), None)
        yield wait_until(lambda: len(heard.events) >= 5)
        self.assertEqual([e.payload for e in heard.events], [f"n{n}" for n in range(5)])

    @defer.inlineCallbacks
    def test_one_turn_in_order(self):  # type: ignore[no-untyped-def]
        """
        Chat messages sent at once, more than one command records,
        and a leave among them: the other node hears them in the order
        they happened, and the stored history is the newest of them.
        """
        heard = Listener()
        one = yield self.make_backend("node-one")
        two = yield self.make_backend("node-two", listener=heard)
        yield one.load("room", True, HISTORY)
        yield two.load("room", True, HISTORY)
        said = [f"n{number}" for number in range(RECORDS_PER_COMMAND + 20)]
        for text in said[:10]:
            one.publish(self._chat(text), history_entry("node-one.1", "alice", text, "t"))
        one.publish(RoomEvent("leave", "node-one", "room", "node-one.2", "bob", "t"), None)
        for text in said[10:]:
            one.publish(self._chat(text), history_entry("node-one.1", "alice", text, "t"))
        yield wait_until(lambda: len(heard.events) > len(said))
        self.assertEqual(
            [e.payload or e.kind for e in heard.events], said[:10] + ["leave"] + said[10:]
        )
        state = yield two.peek("room", HISTORY)
        newest = [history_entry("node-one.1", "alice", t, "t") for t in reversed(said)]
        self.assertEqual(state.history.page(0), newest[: len(state.history.page(0))])
        self.assertEqual(len(state.history), HISTORY)

    @staticmethod
    def _chat(text: str) -> RoomEvent:
        return RoomEvent("normal", "node-one", "room", "node-one.1", "alice", "t", text)

    @defer.inlineCallbacks
    def test_resync_after_subscribed(self):  # type: ignore[no-untyped-def]
        """
        When the pub/sub connection comes back, a live room is read again
        only once Redis confirms its channel's subscription: a read before
        it could miss another node's writes after it and that node's notice
        to read again, which the channel carries.
        """
        listener = Listener()
        backend = yield self.make_backend("node-one", listener=listener)
        yield backend.load("room", True, HISTORY)
        said = history_entry("node-one.1", "alice", "said", "t")
        backend.publish(self._chat("said"), said)
        subscriber = _PendingSubscriber()
        real, backend.link.subscriber = backend.link.subscriber, subscriber
        self.addCleanup(setattr, backend.link, "subscriber", real)
        backend.subscriber_up(subscriber)
        self.assertEqual(subscriber.channels, [backend._channel("room")])
        self.assertEqual(backend.resync.meanwhile, {})
        subscriber.confirm()
        self.assertIn("room", backend.resync.meanwhile)
        yield wait_until(lambda: bool(listener.resyncs))
        [(xnest_id, state)] = listener.resyncs
        self.assertEqual((xnest_id, state.history.page(0)), ("room", [said]))

    @defer.inlineCallbacks
    def test_resync_keeps_what_happens_meanwhile(self):  # type: ignore[no-untyped-def]
        """
        Reading a live room again while its members talk: the state handed
        over holds the stored messages and those sent during the read.
        """
        listener = Listener()
        backend = yield self.make_backend("node-one", listener=listener)
        state = yield backend.load("r", True, HISTORY)
        room = self._room(state, "r")
        first = room.record("node-one.1", "alice", "first", "t")
        backend.publish(
            RoomEvent("normal", "node-one", "r", "node-one.1", "alice", "t", "first"), first
        )
        backend.resync.read_again("r")
        second = room.record("node-one.1", "alice", "second", "t")
        backend.publish(
            RoomEvent("normal", "node-one", "r", "node-one.1", "alice", "t", "second"), second
        )
        yield wait_until(lambda: bool(listener.resyncs))
        [(xnest_id, resynced)] = listener.resyncs
        self.assertEqual(xnest_id, "r")
        self.assertEqual(resynced.history.page(0), [second, first])
