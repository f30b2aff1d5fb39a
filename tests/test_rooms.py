"""
Tests for L{xmeet.rooms.RoomService} with an in-memory sink and a fake
clock: the room rules without sockets.
"""

from __future__ import annotations

import json
from random import Random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmeet.config import Settings
from xmeet.core.frames import Frame
from xmeet.core.history import History
from xmeet.core.ids import IdGenerator
from xmeet.core.room import Member, history_entry
from xmeet.core.rules import InvalidName
from xmeet.rooms import Greeting, IMemberSink, RoomService
from xmeet.store.interfaces import RoomState
from xmeet.store.memory import MemoryRoomBackend
from xmeet.xgate.protocol import greeting_frames


@implementer(IMemberSink)
class Collector:
    """
    A sink that keeps every frame it is given, decoded.
    """

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.objects: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.objects.append(frame)
        self.frames.append(json.loads(frame.text))

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]

    def take(self) -> list[dict[str, Any]]:
        frames, self.frames = self.frames, []
        return frames


def _service(rng: Random | None = None, **settings: Any) -> tuple[RoomService, Clock]:
    clock = Clock()
    clock.advance(1428501726)
    config = Settings(**settings)
    backend = MemoryRoomBackend(
        "node", config.max_idle_rooms, config.history_bytes, config.history_memory
    )
    service = RoomService(clock, config, IdGenerator("node"), backend, rng)
    service.start()
    return service, clock


def _greeting(
    service: RoomService, xnest: str, nickname: str, sink: Collector, **kw: Any
) -> Greeting:
    """
    Join with the in-memory backend, where joining completes at once.
    """
    joined = service.join(xnest, nickname, sink, **kw)
    result: list[Greeting] = []
    joined.addCallback(result.append)
    return result[0]


def _join(service: RoomService, xnest: str, nickname: str, sink: Collector, **kw: Any) -> Member:
    """
    Join as an xgate member does: the greeting reaches the sink as the
    xgate front end renders it, before anything else.
    """
    greeting = _greeting(service, xnest, nickname, sink, **kw)
    for frame in greeting_frames(greeting):
        sink.deliver(frame)
    return greeting.member


def _page(service: RoomService, xnest: str, cursor: int) -> str:
    """
    A history page as the HTTP API sees it, live room or not.
    """
    pages: list[str] = []
    service.view(xnest).addCallback(lambda view: pages.append(view.history_page(cursor)))
    return pages[0]


def _known(service: RoomService, xnest: str) -> bool:
    """
    Whether the node still knows anything of C{xnest}.
    """
    states: list[object] = []
    service.backend.peek(xnest, 1000).addCallback(states.append)
    return service.live(xnest) is not None or states[0] is not None


class JoinLeaveTests(SynchronousTestCase):
    """
    Joining greets the member and tells the others; leaving tells the rest.
    """

    def test_sink_interface(self) -> None:
        """
        The test sink provides the interface the service relies on.
        """
        verifyObject(IMemberSink, Collector())

    def test_greeting(self) -> None:
        """
        self, member_count, members, history in order, then join to others.
        """
        service, _ = _service()
        alice, bob = Collector(), Collector()
        first = _join(service, "room", "alice", alice)
        alice.take()
        second = _join(service, "room", "bob", bob)
        greeting = bob.take()
        self.assertEqual(
            [f["type"] for f in greeting], ["self", "member_count", "members", "history"]
        )
        self.assertEqual(greeting[0]["payload"], second.id)
        self.assertEqual(greeting[1]["payload"], 2)
        self.assertEqual(
            greeting[2]["payload"],
            [{"pid": first.id, "nickname": "alice"}, {"pid": second.id, "nickname": "bob"}],
        )
        self.assertEqual(greeting[3]["payload"], [])
        self.assertTrue(all(f["from"] == second.id and f["xnest"] == "room" for f in greeting))
        self.assertEqual(greeting[0]["send_time"], "2015-4-8 14:2:6")
        self.assertEqual(
            [(f["type"], f["from"], f["payload"]) for f in alice.take()],
            [("join", second.id, "bob")],
        )

    def test_greeting_value(self) -> None:
        """
        Joining answers one L{Greeting}, in JSON text ready for any front
        end, and sends the new member nothing itself: its front end gives
        it the greeting in its own form.
        """
        service, clock = _service()
        alice, bob = Collector(), Collector()
        first = _join(service, "房间", "alice", alice)
        service.receive(first, "你好")
        clock.advance(1)
        greeting = _greeting(service, "房间", "bob", bob)
        self.assertEqual(bob.frames, [])
        self.assertEqual(greeting.member.nickname, "bob")
        self.assertEqual(
            (greeting.xnest_json, greeting.member_count, greeting.send_time),
            ('"房间"', 2, "2015-4-8 14:2:7"),
        )
        self.assertEqual(
            greeting.members_json,
            f'[{{"pid":"{first.id}","nickname":"alice"}},'
            f'{{"pid":"{greeting.member.id}","nickname":"bob"}}]',
        )
        self.assertEqual(
            greeting.history_json,
            "[" + history_entry(first.id, "alice", "你好", "2015-4-8 14:2:6") + "]",
        )

    def test_leave(self) -> None:
        """
        The others get C{leave} once, however often leave is called.
        """
        service, _ = _service()
        alice, bob = Collector(), Collector()
        _join(service, "room", "alice", alice)
        member = _join(service, "room", "bob", bob)
        alice.take()
        service.leave(member)
        service.leave(member)
        self.assertEqual(
            [(f["type"], f["from"], f["payload"]) for f in alice.take()],
            [("leave", member.id, "leave")],
        )
        self.assertEqual(bob.frames[-1]["type"], "history")

    def test_rooms_are_separate(self) -> None:
        """
        Messages in one room do not reach another.
        """
        service, _ = _service()
        one, two = Collector(), Collector()
        member = _join(service, "one", "a", one)
        _join(service, "two", "b", two)
        two.take()
        service.receive(member, "hi")
        self.assertEqual(two.frames, [])
        self.assertEqual(one.frames[-1]["payload"], "hi")


class _GatedBackend(MemoryRoomBackend):
    """
    The in-memory backend, whose writes are acknowledged only when the
    test says so, as a cluster's are after a round trip.
    """

    def __init__(self) -> None:
        super().__init__("node", 10)
        self.waiting: list[Deferred[None]] = []

    def stored(self) -> Deferred[None]:
        acknowledged: Deferred[None] = Deferred()
        self.waiting.append(acknowledged)
        return acknowledged

    def acknowledge(self) -> None:
        waiting, self.waiting = self.waiting, []
        for acknowledged in waiting:
            acknowledged.callback(None)


class StoredBeforeGreetingTests(SynchronousTestCase):
    """
    A new member is greeted, and the others told C{join}, only once the
    backend has stored the membership; what happens in the xnest
    meanwhile reaches the member after its greeting, in order.
    """

    def setUp(self) -> None:
        self.backend = _GatedBackend()
        clock = Clock()
        clock.advance(1428501726)
        self.service = RoomService(clock, Settings(), IdGenerator("node"), self.backend)
        self.service.start()
        self.carol_sink = Collector()
        carol_joining = self.service.join("room", "carol", self.carol_sink)
        self.backend.acknowledge()
        self.carol = self.successResultOf(carol_joining).member

    def test_greeting_waits_for_the_store(self) -> None:
        """
        Until the backend acknowledges, the new member has no greeting and
        nothing else, and the others have no C{join}; then the member gets
        its greeting, what was said meanwhile, and what its own first
        messages cause, in that order.
        """
        alice_sink = Collector()
        joining = self.service.join("room", "alice", alice_sink)
        self.service.receive(self.carol, "while alice joins")
        self.assertNoResult(joining)
        self.assertEqual(alice_sink.frames, [])
        self.assertEqual(self.carol_sink.types(), ["normal"])

        alice: list[Member] = []

        def greeted(greeting: Greeting) -> None:
            alice.append(greeting.member)
            for frame in greeting_frames(greeting):
                alice_sink.deliver(frame)
            self.service.receive(greeting.member, "alice's first")

        joining.addCallback(greeted)
        self.backend.acknowledge()
        members = [
            {"pid": self.carol.id, "nickname": "carol"},
            {"pid": alice[0].id, "nickname": "alice"},
        ]
        self.assertEqual(
            [(f["type"], f["payload"]) for f in alice_sink.frames],
            [
                ("self", alice[0].id),
                ("member_count", 2),
                ("members", members),
                ("history", []),
                ("normal", "while alice joins"),
                ("normal", "alice's first"),
            ],
        )
        self.assertEqual(self.carol_sink.types(), ["normal", "join", "normal"])
        alice_sink.take()
        self.service.receive(self.carol, "after")
        self.assertEqual([f["payload"] for f in alice_sink.frames], ["after"])

    def test_gone_before_greeted(self) -> None:
        """
        A member whose front end leaves when given the greeting (its
        connection ended meanwhile) is given nothing kept for it; the others
        see it come and go.
        """
        alice_sink = Collector()
        joining = self.service.join("room", "alice", alice_sink)
        self.service.receive(self.carol, "while alice joins")
        joining.addCallback(lambda greeting: self.service.leave(greeting.member))
        self.backend.acknowledge()
        self.assertEqual(alice_sink.frames, [])
        self.assertEqual(self.carol_sink.types(), ["normal", "join", "leave"])
        self.assertEqual(len(self.service.live("room") or ()), 1)


class NicknameTests(SynchronousTestCase):
    """
    L{RoomService.choose_nickname}: the one asked for, else the one
    remembered, else a random one from the service's generator.
    """

    def test_requested(self) -> None:
        """
        A requested nickname is trimmed and wins over a remembered one.
        """
        service, _ = _service()
        self.assertEqual(service.choose_nickname("  Zoë 🐼 ", "old"), "Zoë 🐼")

    def test_invalid_requested(self) -> None:
        """
        An invalid requested nickname is refused, whatever is remembered.
        """
        service, _ = _service()
        for requested in [" ", "n" * 33, "a\x00b"]:
            self.assertRaises(InvalidName, service.choose_nickname, requested, "old")

    def test_remembered(self) -> None:
        """
        Without a requested nickname (absent or empty), a valid remembered
        one is used.
        """
        service, _ = _service()
        self.assertEqual(service.choose_nickname(None, " 张 三 "), "张 三")
        self.assertEqual(service.choose_nickname("", "alice"), "alice")

    def test_random_from_the_services_generator(self) -> None:
        """
        With neither (or an invalid remembered one), the nickname is random
        from the generator the service was given: the same seed, the same
        nicknames.
        """
        one, _ = _service(Random(12))
        two, _ = _service(Random(12))
        names = [one.choose_nickname(None), one.choose_nickname("", "n" * 33)]
        self.assertEqual(names, [two.choose_nickname(None), two.choose_nickname(None, "\x07")])
        expected = Random(12)
        self.assertEqual(names, [f"guest-{expected.randrange(1000, 10000)}" for _ in range(2)])


class MessageTests(SynchronousTestCase):
    """
    Chat, commands and their errors.
    """

    def setUp(self) -> None:
        self.service, self.clock = _service()
        self.alice, self.bob = Collector(), Collector()
        self.a = _join(self.service, "room", "alice", self.alice)
        self.b = _join(self.service, "room", "bob", self.bob)
        self.alice.take()
        self.bob.take()

    def test_chat_encoded_once(self) -> None:
        """
        Everyone, the sender included, gets the very same frame object.
        """
        self.service.receive(self.a, "你好")
        self.assertIs(self.alice.objects[-1], self.bob.objects[-1])
        self.assertEqual(self.bob.frames[-1]["payload"], "你好")
        self.assertEqual(self.bob.frames[-1]["from"], self.a.id)

    def test_whitespace_ignored(self) -> None:
        """
        White-space-only text does nothing and is not stored.
        """
        self.service.receive(self.a, "  \n")
        self.assertEqual(self.alice.frames + self.bob.frames, [])
        self.assertEqual(_page(self.service, "room", 0), "[]")

    def test_history_entries(self) -> None:
        """
        History entries carry from, nickname, type, payload and send_time.
        """
        self.service.receive(self.a, "one")
        self.clock.advance(61)
        self.service.receive(self.b, "two")
        self.service.receive(self.a, "@history:0")
        page = self.alice.frames[-1]
        self.assertEqual(page["type"], "history")
        self.assertEqual(
            page["payload"],
            [
                {
                    "from": self.b.id,
                    "nickname": "bob",
                    "type": "normal",
                    "payload": "two",
                    "send_time": "2015-4-8 14:3:7",
                },
                {
                    "from": self.a.id,
                    "nickname": "alice",
                    "type": "normal",
                    "payload": "one",
                    "send_time": "2015-4-8 14:2:6",
                },
            ],
        )
        self.assertEqual(self.bob.types(), ["normal", "normal"])

    def test_changename(self) -> None:
        """
        A valid name is broadcast trimmed; an invalid one is an error to the
        sender only and changes nothing.
        """
        self.service.receive(self.a, "@changename:  Alicia ")
        self.assertEqual(self.bob.frames[-1]["type"], "changename")
        self.assertEqual(self.bob.frames[-1]["payload"], "Alicia")
        self.assertEqual(self.a.nickname, "Alicia")
        self.bob.take()
        self.service.receive(self.a, "@changename:" + "x" * 40)
        self.assertEqual(self.alice.frames[-1]["type"], "error")
        self.assertEqual(self.bob.frames, [])
        self.assertEqual(self.a.nickname, "Alicia")

    def test_private(self) -> None:
        """
        Target and sender get C{private} with C{to}; nothing is stored.
        """
        carol_sink = Collector()
        _join(self.service, "room", "carol", carol_sink)
        carol_sink.take()
        self.alice.take()
        self.bob.take()
        self.service.receive(self.a, f"@to:{self.b.id}|secret")
        for sink in (self.alice, self.bob):
            frame = sink.frames[-1]
            self.assertEqual(
                (frame["type"], frame["payload"], frame["from"], frame["to"]),
                ("private", "secret", self.a.id, self.b.id),
            )
        self.assertEqual(carol_sink.frames, [])
        self.assertEqual(_page(self.service, "room", 0), "[]")

    def test_private_to_self(self) -> None:
        """
        A private message to oneself arrives once.
        """
        self.service.receive(self.a, f"@to:{self.a.id}|note")
        self.assertEqual(self.alice.types(), ["private"])

    def test_errors(self) -> None:
        """
        Unknown private target and malformed cursor answer C{error} frames
        whose C{from} is the receiver.
        """
        self.service.receive(self.a, "@to:nobody|x")
        self.service.receive(self.a, "@history:x")
        errors = self.alice.take()
        self.assertEqual([f["type"] for f in errors], ["error", "error"])
        self.assertIn("nobody", errors[0]["payload"])
        self.assertIn("cursor", errors[1]["payload"])
        self.assertTrue(all(f["from"] == self.a.id for f in errors))
        self.assertEqual(self.bob.frames, [])


class LifecycleTests(SynchronousTestCase):
    """
    Empty rooms keep their history in a bounded LRU.
    """

    def _say(self, service: RoomService, xnest: str, text: str) -> None:
        member = _join(service, xnest, "n", Collector())
        service.receive(member, text)
        service.leave(member)

    def test_history_outlives_members(self) -> None:
        """
        The next joiner of an emptied room sees its history.
        """
        service, _ = _service()
        self._say(service, "room", "kept")
        self.assertEqual((service.active_rooms, service.backend.idle_rooms), (0, 1))
        sink = Collector()
        _join(service, "room", "late", sink)
        self.assertEqual(sink.frames[3]["payload"][0]["payload"], "kept")

    def test_idle_rooms_bounded(self) -> None:
        """
        Beyond C{max_idle_rooms}, the least recently used is forgotten.
        """
        service, _ = _service(max_idle_rooms=2)
        for name in ["a", "b", "c"]:
            self._say(service, name, name)
        self.assertEqual(service.backend.idle_rooms, 2)
        self.assertFalse(_known(service, "a"))
        self._say(service, "b", "again")
        self._say(service, "d", "d")
        self.assertFalse(_known(service, "c"))
        self.assertTrue(_known(service, "b"))

    def test_no_store_history(self) -> None:
        """
        A room created without history keeps none, and is not kept idle.
        """
        service, _ = _service()
        member = _join(service, "quiet", "n", Collector(), store_history=False)
        service.receive(member, "gone")
        self.assertEqual(_page(service, "quiet", 0), "[]")
        service.leave(member)
        self.assertFalse(_known(service, "quiet"))

    def test_history_size(self) -> None:
        """
        Only C{history_size} messages are kept.
        """
        service, _ = _service(history_size=3)
        member = _join(service, "room", "n", Collector())
        for number in range(5):
            service.receive(member, str(number))
        payloads = [e["payload"] for e in json.loads(_page(service, "room", 0))]
        self.assertEqual(payloads, ["4", "3", "2"])

    def test_history_bytes(self) -> None:
        """
        Only C{history_bytes} of history are kept per room, newest first.
        """
        service, _ = _service(history_bytes=5000)
        member = _join(service, "room", "n", Collector())
        for number in range(5):
            service.receive(member, f"{number} " + "x" * 2000)
        payloads = [e["payload"][0] for e in json.loads(_page(service, "room", 0))]
        self.assertEqual(payloads, ["4", "3"])

    def test_node_budget_idle_rooms_first(self) -> None:
        """
        Over C{history_memory}, the least recently used idle rooms are
        forgotten first; the live room keeps its history.
        """
        service, _ = _service(history_memory=24_000)
        for name in ["a", "b", "c", "d"]:
            self._say(service, name, "x" * 4000)
        self._say(service, "a", "again")
        member = _join(service, "live", "n", Collector())
        for number in range(3):
            service.receive(member, f"{number} " + "x" * 4000)
        self.assertEqual([_known(service, name) for name in "abcd"], [True, False, False, True])
        self.assertEqual(len(json.loads(_page(service, "live", 0))), 3)
        self.assertLessEqual(service.backend.history_budget.total, 24_000)

    def test_node_budget_counts_resynced_history(self) -> None:
        """
        A live room's history replaced by a resynchronisation counts
        instead of the one it replaces.
        """
        service, _ = _service()
        member = _join(service, "room", "n", Collector())
        service.receive(member, "x" * 4000)
        stored = History(1000, [history_entry("m.2", "o", "stored", "t")])
        service.room_resync("room", RoomState(True, stored))
        self.assertEqual(service.backend.history_budget.total, stored.bytes)
        service.receive(member, "more")
        self.assertEqual(service.backend.history_budget.total, stored.bytes)
        self.assertEqual(len(stored), 2)

    def test_node_budget_live_rooms(self) -> None:
        """
        With live rooms alone over C{history_memory}, they lose their oldest
        messages, the largest first: the node's history stays in budget.
        """
        service, _ = _service(history_memory=64_000)
        members = [_join(service, str(room), "n", Collector()) for room in range(4)]
        for number in range(40):
            for member in members:
                service.receive(member, f"{number} " + "x" * 4000)
                self.assertLessEqual(service.backend.history_budget.total, 64_000)
        for room in range(4):
            payloads = [e["payload"] for e in json.loads(_page(service, str(room), 0))]
            self.assertTrue(payloads)
            self.assertTrue(payloads[0].startswith("39 "))
        service.leave(members[0])
        self.assertLessEqual(service.backend.history_budget.total, 64_000)
