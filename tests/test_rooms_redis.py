"""
Two room services on one Redis prefix in this process, as two nodes of a
cluster: when a new member is greeted, measured against the Redis writes
of its membership, which the tests hold and release.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.cluster_support import free_port, redis_cleanup, unique_prefix
from tests.xgate_client import wait_until
from xmeet.config import Settings
from xmeet.core.frames import Frame
from xmeet.core.ids import IdGenerator
from xmeet.rooms import Greeting, IMemberSink, RoomService
from xmeet.store.redis import RedisRoomBackend, parse_redis_url
from xmeet.store.room_writer import STORED_TIMEOUT


@implementer(IMemberSink)
class _Sink:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)


class _HeldCommands:
    """
    Stands in for a backend's Redis command connection: keeps every
    command (in order) until L{release}, as a slow or silent Redis would;
    the room reads, which use the connection's own methods, pass.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.held: list[tuple[tuple[Any, ...], Deferred[Any]]] = []

    def execute_command(self, *command: Any) -> Deferred[Any]:
        reply: Deferred[Any] = Deferred()
        self.held.append((command, reply))
        return reply

    def release(self) -> None:
        held, self.held = self.held, []
        for command, reply in held:
            self._real.execute_command(*command).chainDeferred(reply)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class GreetedAfterStoredTests(TestCase):
    """
    A member is greeted only once Redis holds its membership, so whoever
    joins afterwards on any node finds it in their own greeting; a node
    whose Redis is away or silent still greets, from memory.
    """

    def setUp(self) -> None:
        self.prefix = unique_prefix()
        redis_cleanup(self, self.prefix)

    @defer.inlineCallbacks
    def _node(self, node_id: str, clock: IReactorTime = reactor) -> Any:
        backend = RedisRoomBackend(
            clock,
            reactor,
            parse_redis_url("redis://127.0.0.1:6379/0"),
            self.prefix,
            node_id,
            100,
            5.0,
            lambda: "2026-1-1 0:0:0",
        )
        rooms = RoomService(clock, Settings(), IdGenerator(node_id), backend)
        rooms.start()
        self.addCleanup(rooms.stop)
        yield wait_until(lambda: backend.connected)
        return rooms

    def _hold(self, rooms: RoomService) -> _HeldCommands:
        link = rooms.backend.link
        real = link.connection
        held = _HeldCommands(real)
        link.connection = held

        def restore() -> None:
            held.release()
            link.connection = real

        self.addCleanup(restore)
        return held

    @defer.inlineCallbacks
    def test_greeted_after_the_write(self):  # type: ignore[no-untyped-def]
        """
        While node one's writes are held, its new member alice is not
        greeted; once they are through she is, and bob, joining on node
        two after that, finds her in his greeting.
        """
        one = yield self._node("node-one")
        two = yield self._node("node-two")
        carol = yield one.join("大厅", "carol", _Sink())
        held = self._hold(one)
        alice_joining = one.join("大厅", "alice", _Sink())
        self.assertNoResult(alice_joining)
        self.assertTrue(held.held)
        held.release()
        alice = yield alice_joining
        bob = yield two.join("大厅", "bob", _Sink())
        self.assertEqual(bob.member_count, 3)
        self.assertEqual(
            [member["pid"] for member in _members(bob)],
            [carol.member.id, alice.member.id, bob.member.id],
        )

    @defer.inlineCallbacks
    def test_silent_redis_bounded(self):  # type: ignore[no-untyped-def]
        """
        A Redis that does not answer (the link not known to be down) holds
        a greeting for L{STORED_TIMEOUT} at most.
        """
        clock = Clock()
        one = yield self._node("node-one", clock)
        yield one.join("room", "carol", _Sink())
        self._hold(one)
        joining = one.join("room", "alice", _Sink())
        clock.advance(STORED_TIMEOUT - 0.01)
        self.assertNoResult(joining)
        clock.advance(0.01)
        greeting = self.successResultOf(joining)
        self.assertEqual(greeting.member_count, 2)

    def test_link_down_greets_at_once(self) -> None:
        """
        A node that knows its link to Redis is down (here: not up yet, the
        port closed) greets from memory at once, as it serves then.
        """
        clock = Clock()
        rooms = RoomService(
            clock,
            Settings(),
            IdGenerator("node-one"),
            RedisRoomBackend(
                clock,
                reactor,
                parse_redis_url(f"redis://127.0.0.1:{free_port()}/0"),
                self.prefix,
                "node-one",
                100,
                5.0,
                lambda: "2026-1-1 0:0:0",
            ),
        )
        greeting = self.successResultOf(rooms.join("room", "alice", _Sink()))
        self.assertEqual(greeting.member_count, 1)


def _members(greeting: Greeting) -> list[dict[str, str]]:
    members: list[dict[str, str]] = json.loads(greeting.members_json)
    return members
