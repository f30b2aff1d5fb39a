# -*- test-case-name: tests.test_xgate -*-
"""
The rules of the xgate protocol (PROTOCOL.md section 1), spoken by
Autobahn's own WebSocket client (through L{tests.xgate_client}) to a real
xmeet node, in memory: node and clients share one fake reactor and clock
(L{tests.memory_support}), so heartbeats, rate limits and close codes
take no real time and no test depends on how fast the machine is.

The same tests run on real sockets where the wire itself is the point
(L{tests.test_xgate_interop}) and against a real Redis
(L{tests.test_xgate_redis}); a subclass says C{on_sockets = True} for that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

import xmeet
from tests.memory_support import MemoryNetwork
from tests.support import RunningNode, SocketNetwork
from tests.xgate_client import WAIT, XgateClient, xnest_url
from xmeet.config import Settings

__all__ = [
    "BadFrameTests",
    "CommandTests",
    "ConnectionLimitTests",
    "FactoryLifecycleTests",
    "FloodTests",
    "GreetingTests",
    "HealthTests",
    "HeartbeatTests",
    "HistoryBoundTests",
    "HistoryPagingTests",
    "LeaveTests",
    "MessageTests",
    "NicknameTests",
    "RateLimitTests",
    "RoomIdTests",
    "SlowJoinTests",
    "StoreHistoryTests",
    "TimeZoneTests",
]

GREETING = ["self", "member_count", "members", "history"]
UNPADDED_SEND_TIME = re.compile(
    r"[1-9]\d{3}-[1-9]\d?-[1-9]\d? (0|[1-9]\d?):(0|[1-9]\d?):(0|[1-9]\d?)"
)


def contract(frame: dict[str, Any]) -> dict[str, Any]:
    """
    The keys of C{frame} that PROTOCOL.md fixes, except C{send_time}
    (frames may carry extra keys, which clients ignore).
    """
    keys = ["from", "xnest", "type", "payload"] + (["to"] if "to" in frame else [])
    return {key: frame[key] for key in keys}


def entries(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The entries of a history page reduced to the keys PROTOCOL.md fixes.
    """
    keys = ["from", "nickname", "type", "payload", "send_time"]
    return [{key: entry[key] for key in keys} for entry in page]


def send_times(start: float, end: float, zone: str = "UTC") -> set[str]:
    """
    Every C{send_time} the server may write between the moments C{start}
    and C{end}: C{Y-M-D H:M:S} without zero padding.
    """
    times = set()
    for second in range(int(start), int(end) + 1):
        moment = datetime.fromtimestamp(second, ZoneInfo(zone))
        times.add(
            f"{moment.year}-{moment.month}-{moment.day} "
            f"{moment.hour}:{moment.minute}:{moment.second}"
        )
    return times


def cookie_of(client: XgateClient) -> str:
    """
    The C{Set-Cookie} header of C{client}'s 101 handshake answer.
    """
    assert client.response is not None
    return str(client.response.headers["set-cookie"])


class Advancing(Protocol):
    """
    What moves a node's time in a test: its own clock in memory, a clock
    put in its gate's place on sockets.
    """

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass.
        """


class XgateTestCase(TestCase):
    """
    A node with C{settings} for each test, in memory unless C{on_sockets};
    every test ends only once the server has seen all its WebSocket
    connections end.
    """

    settings = Settings()
    on_sockets = False

    def setUp(self) -> None:
        self.network: MemoryNetwork | SocketNetwork = (
            SocketNetwork(self) if self.on_sockets else MemoryNetwork(self)
        )
        self.running: RunningNode = self.network.start_node(self.settings)
        self.gate = self.running.node.gate
        self.rooms = self.running.node.rooms
        self.addCleanup(self.wait_until, lambda: self.gate.connections == 0)

    def now(self) -> float:
        """
        The node's time, which it stamps frames with.
        """
        return self.network.seconds()

    def node_clock(self) -> Advancing:
        """
        What moves the node's time for its rate limits.
        """
        return self.network.node_clock(self.running)  # type: ignore[arg-type]

    def connect(
        self, url: str, headers: dict[str, str] | None = None, answer_pings: bool = True
    ) -> Deferred[XgateClient]:
        """
        Open a connection to C{url}; fires with the client once the
        WebSocket is open.
        """
        return self.network.connect(url, headers, answer_pings)

    def handshake_status(self, url: str) -> Deferred[int | None]:
        """
        The status the node answers a handshake for C{url} with, not 101.
        """
        return self.network.handshake_status(url)

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> Deferred[None]:
        """
        Fires once C{condition()} is true; fails after C{timeout} seconds.
        """
        return self.network.wait_until(condition, timeout)

    def url(self, xnest_id: str, **query: str) -> str:
        """
        The URL of C{xnest_id} on this test's node.
        """
        return xnest_url(self.running.ws_url, xnest_id, query)

    async def join(
        self,
        xnest_id: str,
        headers: dict[str, str] | None = None,
        answer_pings: bool = True,
        **query: str,
    ) -> XgateClient:
        """
        Connect an Autobahn client to C{xnest_id} and read its greeting.
        """
        client = await self.connect(self.url(xnest_id, **query), headers, answer_pings)
        for expected in GREETING:
            frame = await client.next_frame()
            self.assertEqual(frame["type"], expected)
        return client

    def greeting(self, client: XgateClient) -> dict[str, Any]:
        """
        The payloads of C{client}'s greeting, by frame type.
        """
        return {frame["type"]: frame["payload"] for frame in client.frames[:4]}

    async def frames(self, client: XgateClient, count: int) -> list[dict[str, Any]]:
        """
        The next C{count} frames of C{client}, reduced to their contract.
        """
        return [contract(await client.next_frame()) for _ in range(count)]

    def frame(
        self, client: XgateClient, xnest_id: str, frame_type: str, payload: Any, **extra: str
    ) -> dict[str, Any]:
        """
        The contract of a frame from C{client} in C{xnest_id}.
        """
        return {
            "from": client.id,
            "xnest": xnest_id,
            "type": frame_type,
            "payload": payload,
            **extra,
        }


class GreetingTests(XgateTestCase):
    """
    A new member gets C{self}, C{member_count}, C{members} and C{history},
    in that order; the others get C{join}; rooms do not leak.
    """

    async def test_first_member(self) -> None:
        """
        The first member of a room gets exactly the four greeting frames,
        from itself, with the decoded room id and one C{send_time} of the
        moment it joined.
        """
        start = self.now()
        alice = await self.connect(self.url("lobby", nickname="alice"))
        frames = [await alice.next_frame() for _ in GREETING]
        end = self.now()
        member_id = frames[0]["payload"]
        self.assertIsInstance(member_id, str)
        self.assertLessEqual(len(member_id), 32)
        self.assertEqual(
            [contract(frame) for frame in frames],
            [
                {"from": member_id, "xnest": "lobby", "type": "self", "payload": member_id},
                {"from": member_id, "xnest": "lobby", "type": "member_count", "payload": 1},
                {
                    "from": member_id,
                    "xnest": "lobby",
                    "type": "members",
                    "payload": [{"pid": member_id, "nickname": "alice"}],
                },
                {"from": member_id, "xnest": "lobby", "type": "history", "payload": []},
            ],
        )
        self.assertEqual(len({frame["send_time"] for frame in frames}), 1)
        self.assertIn(frames[0]["send_time"], send_times(start, end))
        self.assertRegex(frames[0]["send_time"], UNPADDED_SEND_TIME)
        await alice.barrier()
        self.assertEqual(alice.unread(), [])

    async def test_second_member_and_join(self) -> None:
        """
        The second member's greeting counts and lists both members in
        joining order; only the first member gets C{join}, with the new
        member's id and nickname.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        self.assertNotEqual(alice.id, bob.id)
        self.assertEqual(
            self.greeting(bob),
            {
                "self": bob.id,
                "member_count": 2,
                "members": [
                    {"pid": alice.id, "nickname": "alice"},
                    {"pid": bob.id, "nickname": "bob"},
                ],
                "history": [],
            },
        )
        self.assertEqual(await self.frames(alice, 1), [self.frame(bob, "lobby", "join", "bob")])
        alice.send("hi")
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, "lobby", "normal", "hi")])

    async def test_rooms_do_not_leak(self) -> None:
        """
        Members of one room never see the members, joins or messages of
        another; ids are unique across rooms.
        """
        alice = await self.join("one", nickname="alice")
        bob = await self.join("one", nickname="bob")
        carol = await self.join("two", nickname="carol")
        dave = await self.join("two", nickname="dave")
        self.assertEqual(len({alice.id, bob.id, carol.id, dave.id}), 4)
        self.assertEqual(
            self.greeting(dave)["members"],
            [{"pid": carol.id, "nickname": "carol"}, {"pid": dave.id, "nickname": "dave"}],
        )
        self.assertEqual(self.greeting(dave)["member_count"], 2)
        alice.send("in one")
        carol.send("in two")
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, "one", "normal", "in one")])
        self.assertEqual(await self.frames(dave, 1), [self.frame(carol, "two", "normal", "in two")])
        bob.send("end one")
        dave.send("end two")
        self.assertEqual(
            await self.frames(alice, 3),
            [
                self.frame(bob, "one", "join", "bob"),
                self.frame(alice, "one", "normal", "in one"),
                self.frame(bob, "one", "normal", "end one"),
            ],
        )
        self.assertEqual(
            await self.frames(carol, 3),
            [
                self.frame(dave, "two", "join", "dave"),
                self.frame(carol, "two", "normal", "in two"),
                self.frame(dave, "two", "normal", "end two"),
            ],
        )

    async def test_ids_unique_across_nodes(self) -> None:
        """
        Two nodes (or one node restarted) never hand out the same member
        id, even to their first members.
        """
        other = self.network.start_node(self.settings)
        here = await self.join("lobby")
        there = await self.connect(xnest_url(other.ws_url, "lobby"))
        await there.next_of_type("history")
        self.assertNotEqual(here.id, there.id)
        self.assertLessEqual(len(there.id), 32)
        await there.close()
        await self.wait_until(lambda: other.node.gate.connections == 0)


class ConnectionLimitTests(XgateTestCase):
    """
    C{max_connections} bounds the xgate connections of a node.
    """

    settings = Settings(max_connections=2)

    async def test_full_node_refuses(self) -> None:
        """
        Beyond C{max_connections}, the handshake gets 503; once a member
        leaves, a new one gets in.
        """
        alice = await self.join("a")
        await self.join("b")
        self.assertEqual(await self.handshake_status(self.url("a")), 503)
        await alice.close()
        await self.wait_until(lambda: self.gate.connections == 1)
        carol = await self.join("a")
        self.assertEqual(self.greeting(carol)["member_count"], 1)


class TimeZoneTests(XgateTestCase):
    """
    C{send_time} is written in the configured time zone.
    """

    settings = Settings(timezone="Asia/Kathmandu")

    async def test_send_time_in_zone(self) -> None:
        """
        With a +05:45 zone, chat frames carry that zone's wall time, not
        UTC's.
        """
        alice = await self.join("lobby")
        start = self.now()
        alice.send("when?")
        frame = await alice.next_of_type("normal")
        end = self.now()
        self.assertIn(frame["send_time"], send_times(start, end, "Asia/Kathmandu"))
        self.assertNotIn(frame["send_time"], send_times(start, end))


class MessageTests(XgateTestCase):
    """
    Chat text reaches every member, the sender included, intact and in
    order; empty text is ignored.
    """

    async def test_everyone_including_sender(self) -> None:
        """
        One member's text arrives as the same C{normal} frame at all three
        members.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        carol = await self.join("lobby", nickname="carol")
        await alice.next_of_type("join")
        await alice.next_of_type("join")
        await bob.next_of_type("join")
        start = self.now()
        bob.send("hello")
        expected = self.frame(bob, "lobby", "normal", "hello")
        received = [await client.next_frame() for client in (alice, bob, carol)]
        end = self.now()
        self.assertEqual([contract(frame) for frame in received], [expected] * 3)
        self.assertEqual(len({frame["send_time"] for frame in received}), 1)
        self.assertIn(received[0]["send_time"], send_times(start, end))

    async def test_order_kept(self) -> None:
        """
        A sender's messages arrive in the order sent.
        """
        alice = await self.join("lobby")
        bob = await self.join("lobby")
        await alice.next_of_type("join")
        texts = [f"message {number}" for number in range(30)]
        for text in texts:
            alice.send(text)
        for client in (alice, bob):
            self.assertEqual([frame["payload"] for frame in await self.frames(client, 30)], texts)

    async def test_empty_and_white_space_ignored(self) -> None:
        """
        Empty and white-space-only messages are neither broadcast nor
        kept: the next frame anyone gets is the next real message, and
        history holds only that one.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        for text in ["", " ", "\t\n \r", "\u3000"]:
            alice.send(text)
        alice.send(" real ")
        expected = [self.frame(alice, "lobby", "normal", " real ")]
        self.assertEqual(await self.frames(alice, 1), expected)
        self.assertEqual(await self.frames(bob, 1), expected)
        bob.send("@history:0")
        page = (await bob.next_of_type("history"))["payload"]
        self.assertEqual([entry["payload"] for entry in page], [" real "])

    async def test_unicode_intact(self) -> None:
        """
        Chinese text and emoji survive in the room id, the nickname (both
        percent-encoded in the URL), messages and history.
        """
        room = '会议室 🎉 #1?&=%+"\\'
        alice = await self.join(room, nickname="张三 😀")
        bob = await self.join(room, nickname="Zoë")
        self.assertEqual(
            self.greeting(bob)["members"],
            [{"pid": alice.id, "nickname": "张三 😀"}, {"pid": bob.id, "nickname": "Zoë"}],
        )
        self.assertEqual(bob.frames[0]["xnest"], room)
        text = "你好，世界 🌏👍🏽 café\u0301 \U0001f600"
        alice.send(text)
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, room, "normal", text)])
        bob.send("@history:0")
        [entry] = (await bob.next_of_type("history"))["payload"]
        self.assertEqual(
            (entry["from"], entry["nickname"], entry["type"], entry["payload"]),
            (alice.id, "张三 😀", "normal", text),
        )

    async def test_unsolicited_pongs_and_pings(self) -> None:
        """
        Unsolicited pongs from a client are fine, and its pings are
        answered.
        """
        alice = await self.join("lobby")
        assert alice.protocol is not None
        for number in range(3):
            alice.protocol.sendPong(b"unsolicited %d" % number)
        await alice.barrier()
        alice.send("still fine")
        self.assertEqual(
            await self.frames(alice, 1), [self.frame(alice, "lobby", "normal", "still fine")]
        )

    async def test_many_members(self) -> None:
        """
        With 40 members, every member's greeting counts those before it,
        and one message reaches all 40.
        """
        clients = [await self.join("crowd", nickname=f"m{number}") for number in range(40)]
        self.assertEqual(
            [self.greeting(client)["member_count"] for client in clients], list(range(1, 41))
        )
        self.assertEqual(
            self.greeting(clients[-1])["members"],
            [{"pid": client.id, "nickname": f"m{number}"} for number, client in enumerate(clients)],
        )
        clients[7].send("to all")
        expected = self.frame(clients[7], "crowd", "normal", "to all")
        for client in clients:
            self.assertEqual(contract(await client.next_of_type("normal")), expected)


class CommandTests(XgateTestCase):
    """
    C{@changename:}, C{@to:} and C{@history:} commands, and their errors.
    """

    async def test_changename(self) -> None:
        """
        A valid new name is trimmed and broadcast as C{changename}; later
        greetings and history entries carry it.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        alice.send("@changename:  Alicia 🌸  ")
        expected = [self.frame(alice, "lobby", "changename", "Alicia 🌸")]
        self.assertEqual(await self.frames(alice, 1), expected)
        self.assertEqual(await self.frames(bob, 1), expected)
        alice.send("renamed")
        await bob.next_of_type("normal")
        carol = await self.join("lobby", nickname="carol")
        self.assertEqual(
            self.greeting(carol)["members"][0], {"pid": alice.id, "nickname": "Alicia 🌸"}
        )
        self.assertEqual(self.greeting(carol)["history"][0]["nickname"], "Alicia 🌸")

    async def test_changename_invalid(self) -> None:
        """
        An invalid new name gets an C{error} frame to the sender alone,
        saying what was wrong, and the name stays as it was.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        alice.send("@changename:")
        alice.send("@changename: \t ")
        alice.send("@changename:" + "x" * 33)
        alice.send("@changename:bad\x07bell")
        self.assertEqual(
            await self.frames(alice, 4),
            [
                self.frame(alice, "lobby", "error", "nickname is empty"),
                self.frame(alice, "lobby", "error", "nickname is empty"),
                self.frame(alice, "lobby", "error", "nickname is longer than 32 characters"),
                self.frame(alice, "lobby", "error", "nickname contains a control character"),
            ],
        )
        alice.send("still alice")
        self.assertEqual(
            await self.frames(bob, 1), [self.frame(alice, "lobby", "normal", "still alice")]
        )
        carol = await self.join("lobby", nickname="carol")
        self.assertEqual(self.greeting(carol)["members"][0], {"pid": alice.id, "nickname": "alice"})

    async def test_private(self) -> None:
        """
        C{@to:ID|TEXT} reaches the target and the sender as C{private}
        with C{to}; nobody else sees it and history does not keep it.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        carol = await self.join("lobby", nickname="carol")
        await alice.next_of_type("join")
        await alice.next_of_type("join")
        await bob.next_of_type("join")
        alice.send(f"@to:{bob.id}|psst | secret")
        expected = self.frame(alice, "lobby", "private", "psst | secret", to=bob.id)
        self.assertEqual(await self.frames(alice, 1), [expected])
        self.assertEqual(await self.frames(bob, 1), [expected])
        alice.send("public")
        self.assertEqual(
            await self.frames(carol, 1), [self.frame(alice, "lobby", "normal", "public")]
        )
        carol.send("@history:0")
        page = (await carol.next_of_type("history"))["payload"]
        self.assertEqual([entry["payload"] for entry in page], ["public"])

    async def test_private_to_self(self) -> None:
        """
        C{@to:} one's own id delivers the C{private} frame once.
        """
        alice = await self.join("lobby", nickname="alice")
        alice.send(f"@to:{alice.id}|note to self")
        alice.send("after")
        self.assertEqual(
            await self.frames(alice, 2),
            [
                self.frame(alice, "lobby", "private", "note to self", to=alice.id),
                self.frame(alice, "lobby", "normal", "after"),
            ],
        )

    async def test_private_unknown_member(self) -> None:
        """
        C{@to:} an id not in this room (unknown, or in another room) gets
        an C{error} frame and reaches nobody; malformed C{@to:} too.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        elsewhere = await self.join("elsewhere", nickname="eve")
        await alice.next_of_type("join")
        alice.send("@to:nobody|hello")
        alice.send(f"@to:{elsewhere.id}|hello")
        alice.send("@to:no separator")
        self.assertEqual(
            await self.frames(alice, 3),
            [
                self.frame(alice, "lobby", "error", "no member 'nobody' in this xnest"),
                self.frame(alice, "lobby", "error", f"no member {elsewhere.id!r} in this xnest"),
                self.frame(alice, "lobby", "error", "private message must look like @to:ID|TEXT"),
            ],
        )
        alice.send("after")
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, "lobby", "normal", "after")])
        elsewhere.send("alone")
        self.assertEqual(
            await self.frames(elsewhere, 1), [self.frame(elsewhere, "elsewhere", "normal", "alone")]
        )

    async def test_history_malformed_cursor(self) -> None:
        """
        A malformed C{@history:} cursor gets an C{error} frame saying what
        was wrong, to the sender alone.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        for cursor in ["abc", "-1", "", "1.5", "\u0663", "1234567890"]:
            alice.send(f"@history:{cursor}")
        errors = await self.frames(alice, 6)
        self.assertEqual(
            [frame["payload"] for frame in errors],
            [
                "history cursor must be a non-negative integer, not 'abc'",
                "history cursor must be a non-negative integer, not '-1'",
                "history cursor must be a non-negative integer, not ''",
                "history cursor must be a non-negative integer, not '1.5'",
                "history cursor must be a non-negative integer, not '\u0663'",
                "history cursor has more than 9 digits",
            ],
        )
        self.assertEqual({frame["type"] for frame in errors}, {"error"})
        self.assertEqual({frame["from"] for frame in errors}, {alice.id})
        alice.send("after")
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, "lobby", "normal", "after")])


class HistoryPagingTests(XgateTestCase):
    """
    C{@history:N} pages through the room's history, 50 entries a page,
    newest first.
    """

    settings = Settings(rate=1000, burst=1000)

    async def test_pages_of_120_messages(self) -> None:
        """
        With 120 messages, pages 0, 1, 2 and 3 hold 50, 50, 20 and no
        entries, newest first, each entry exactly as sent; the greeting of
        a newcomer holds page 0.
        """
        alice = await self.join("lobby", nickname="alice")
        texts = [f"m{number}" for number in range(120)]
        for text in texts:
            alice.send(text)
        sent = [await alice.next_frame() for _ in texts]
        self.assertEqual([frame["payload"] for frame in sent], texts)
        expected = [
            {
                "from": alice.id,
                "nickname": "alice",
                "type": "normal",
                "payload": frame["payload"],
                "send_time": frame["send_time"],
            }
            for frame in reversed(sent)
        ]
        pages = []
        for cursor in range(4):
            alice.send(f"@history:{cursor}")
            frame = await alice.next_frame()
            self.assertEqual(
                (frame["type"], frame["from"], frame["xnest"]), ("history", alice.id, "lobby")
            )
            pages.append(frame["payload"])
        self.assertEqual([len(page) for page in pages], [50, 50, 20, 0])
        self.assertEqual(
            [entries(page) for page in pages],
            [expected[:50], expected[50:100], expected[100:], []],
        )
        self.assertEqual(pages[0][0]["payload"], "m119")
        self.assertEqual(pages[2][-1]["payload"], "m0")
        bob = await self.join("lobby")
        self.assertEqual(entries(self.greeting(bob)["history"]), expected[:50])
        alice.send("@history:999999999")
        self.assertEqual((await alice.next_of_type("history"))["payload"], [])


class HistoryBoundTests(XgateTestCase):
    """
    A room keeps only its C{history_size} most recent messages.
    """

    settings = Settings(history_size=60, rate=1000, burst=1000)

    async def test_oldest_dropped(self) -> None:
        """
        With C{history_size=60}, after 70 messages the pages hold m69..m20
        and m19..m10; m0..m9 are gone.
        """
        alice = await self.join("lobby")
        for number in range(70):
            alice.send(f"m{number}")
        await alice.barrier()
        pages = []
        for cursor in range(3):
            alice.send(f"@history:{cursor}")
            pages.append(
                [entry["payload"] for entry in (await alice.next_of_type("history"))["payload"]]
            )
        self.assertEqual(
            pages,
            [
                [f"m{number}" for number in range(69, 19, -1)],
                [f"m{number}" for number in range(19, 9, -1)],
                [],
            ],
        )


class NicknameTests(XgateTestCase):
    """
    The nickname comes from the query, else the C{nickname} cookie, else
    is made up; the 101 answer sets the cookie; bad queries are refused.
    """

    async def test_query_and_set_cookie(self) -> None:
        """
        The query's nickname, trimmed, is used and sent back as a cookie
        with exactly the attributes of the contract.
        """
        alice = await self.join("lobby", nickname="  alice ")
        self.assertEqual(self.greeting(alice)["members"][0]["nickname"], "alice")
        self.assertEqual(
            cookie_of(alice), "nickname=alice; Path=/xgate/; Max-Age=31536000; SameSite=Lax"
        )

    async def test_cookie_value_url_encoded(self) -> None:
        """
        The cookie value is the UTF-8 nickname percent-encoded, with no
        character left that would break the cookie syntax.
        """
        client = await self.join("lobby", nickname='张 三;=,"/%')
        self.assertEqual(
            cookie_of(client),
            "nickname=%E5%BC%A0%20%E4%B8%89%3B%3D%2C%22%2F%25; Path=/xgate/; Max-Age=31536000; "
            "SameSite=Lax",
        )

    async def test_cookie_used_without_query(self) -> None:
        """
        Without a nickname in the query (absent or empty), the URL-encoded
        C{nickname} cookie is used, among other cookies (even one whose
        name ends the same way).
        """
        headers = {"Cookie": "theme=dark; mynickname=no; nickname=%E5%BC%A0%20%E4%B8%89; lang=zh"}
        first = await self.join("lobby", headers=headers)
        second = await self.join("lobby", headers=headers, nickname="")
        self.assertEqual(
            self.greeting(second)["members"],
            [{"pid": first.id, "nickname": "张 三"}, {"pid": second.id, "nickname": "张 三"}],
        )

    async def test_query_wins_over_cookie(self) -> None:
        """
        A nickname in the query is used even when a cookie names another,
        and the cookie set is the query's.
        """
        client = await self.join("lobby", headers={"Cookie": "nickname=old"}, nickname="new")
        self.assertEqual(self.greeting(client)["members"][0]["nickname"], "new")
        self.assertTrue(cookie_of(client).startswith("nickname=new;"))

    async def test_random_nickname(self) -> None:
        """
        With neither query nor cookie, the server picks C{guest-NNNN} and
        sets it as the cookie.
        """
        client = await self.join("lobby")
        nickname = self.greeting(client)["members"][0]["nickname"]
        self.assertRegex(nickname, r"^guest-\d{4}$")
        self.assertEqual(
            cookie_of(client), f"nickname={nickname}; Path=/xgate/; Max-Age=31536000; SameSite=Lax"
        )

    async def test_cookie_round_trip(self) -> None:
        """
        The cookie set on one visit, sent back on the next without a
        nickname in the query, gives the same nickname.
        """
        first = await self.join("lobby", nickname="Zoë 🐼")
        cookie = cookie_of(first).split(";")[0]
        await first.close()
        second = await self.join("lobby", headers={"Cookie": cookie})
        self.assertEqual(self.greeting(second)["members"][0]["nickname"], "Zoë 🐼")
        self.assertEqual(cookie_of(second), cookie_of(first))

    async def test_invalid_cookie_ignored(self) -> None:
        """
        A cookie nickname that is not valid UTF-8, too long, empty, white
        space only or has a control character is ignored: a random one is
        used.
        """
        for value in ["%ff", "%E5%BC", "x" * 33, "%20%20", "a%01b", ""]:
            client = await self.join("lobby", headers={"Cookie": f"nickname={value}"})
            nickname = self.greeting(client)["members"][0]["nickname"]
            self.assertRegex(nickname, r"^guest-\d{4}$", value)
            await client.close()

    async def test_invalid_query_refused(self) -> None:
        """
        An invalid nickname in the query is refused at the handshake with
        HTTP 400: too long, control character, white space only, invalid
        UTF-8.
        """
        for query in [
            "nickname=" + "x" * 33,
            "nickname=a%01b",
            "nickname=%20%09%20",
            "nickname=%ff",
        ]:
            url = f"{self.running.ws_url}/xgate/websocket/lobby?{query}"
            self.assertEqual(await self.handshake_status(url), 400, query)
        self.assertEqual(self.rooms.active_rooms, 0)

    async def test_longest_nickname(self) -> None:
        """
        A nickname of exactly 32 characters (not bytes) is accepted.
        """
        client = await self.join("lobby", nickname="名" * 32)
        self.assertEqual(self.greeting(client)["members"][0]["nickname"], "名" * 32)


class RoomIdTests(XgateTestCase):
    """
    The room id is the percent-decoded path segment; invalid ones are
    refused at the handshake with HTTP 400.
    """

    INVALID = ["%zz", "%4", "%ff", "%C3", "a" * 65, "%2F", "a%2fb", "a/b", "%01", "%7F", ""]

    async def test_invalid_refused(self) -> None:
        """
        Bad escapes, invalid UTF-8, 65 characters, an encoded or plain
        C{/}, a control character and the empty id all get HTTP 400, and
        no room or factory is created.
        """
        for segment in self.INVALID:
            url = f"{self.running.ws_url}/xgate/websocket/{segment}?nickname=alice"
            self.assertEqual(await self.handshake_status(url), 400, segment)
        self.assertEqual((self.gate.factories, self.rooms.active_rooms), (0, 0))

    async def test_longest_ids(self) -> None:
        """
        64 characters are fine, in ASCII or as 64 four-byte emoji.
        """
        for room in ["a" * 64, "🎉" * 64, "%41"]:
            client = await self.join(room)
            self.assertEqual(client.frames[0]["xnest"], room)
            await client.close()

    async def test_escapes_decoded(self) -> None:
        """
        Percent escapes are decoded before the id is used: C{caf%C3%A9}
        and C{café} are the same room.
        """
        first = await self.connect(f"{self.running.ws_url}/xgate/websocket/caf%C3%A9")
        await first.next_of_type("history")
        second = await self.join("café")
        self.assertEqual(second.frames[0]["xnest"], "café")
        self.assertEqual(self.greeting(second)["member_count"], 2)

    async def test_plus_is_not_space(self) -> None:
        """
        A path is not a form: C{a+b} and C{a%2Bb} are the room C{a+b}.
        """
        first = await self.connect(f"{self.running.ws_url}/xgate/websocket/a+b")
        await first.next_of_type("history")
        second = await self.connect(f"{self.running.ws_url}/xgate/websocket/a%2Bb")
        await second.next_of_type("history")
        self.assertEqual(
            (second.frames[0]["xnest"], self.greeting(second)["member_count"]), ("a+b", 2)
        )


class StoreHistoryTests(XgateTestCase):
    """
    C{is_store_history=false} when a room is created makes it keep no
    history.
    """

    async def test_no_history_kept(self) -> None:
        """
        Messages in a room created with C{is_store_history=false} are
        broadcast but never appear in a C{history} page.
        """
        alice = await self.join("quiet", is_store_history="false")
        bob = await self.join("quiet")
        await alice.next_of_type("join")
        for text in ["one", "two", "three"]:
            alice.send(text)
        self.assertEqual(
            [frame["payload"] for frame in await self.frames(bob, 3)], ["one", "two", "three"]
        )
        carol = await self.join("quiet")
        self.assertEqual(self.greeting(carol)["history"], [])
        carol.send("@history:0")
        self.assertEqual((await carol.next_of_type("history"))["payload"], [])

    async def test_only_at_creation(self) -> None:
        """
        C{is_store_history=false} from a later member does not stop an
        existing room from keeping history.
        """
        alice = await self.join("kept")
        alice.send("before")
        await alice.next_of_type("normal")
        bob = await self.join("kept", is_store_history="false")
        self.assertEqual([entry["payload"] for entry in self.greeting(bob)["history"]], ["before"])
        bob.send("after")
        await bob.next_of_type("normal")
        bob.send("@history:0")
        page = (await bob.next_of_type("history"))["payload"]
        self.assertEqual([entry["payload"] for entry in page], ["after", "before"])

    async def test_invalid_value_refused(self) -> None:
        """
        A value other than true or false is refused with HTTP 400.
        """
        for value in ["maybe", "", "2"]:
            url = self.url("lobby", is_store_history=value)
            self.assertEqual(await self.handshake_status(url), 400, value)


class BadFrameTests(XgateTestCase):
    """
    Binary, invalid UTF-8 and oversized messages close the connection
    with their close code; the others get C{leave}; the room goes on.
    """

    settings = Settings(max_message_size=1000)

    async def assert_closed_with(
        self, send: Callable[[XgateClient], None], code: int, reason: str | None = None
    ) -> None:
        """
        In a room of two, C{send(alice)} gets alice closed by the server
        with C{code} (and C{reason}, when given); bob gets alice's
        C{leave}, and the room still works for bob and a newcomer.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        send(alice)
        closed = await alice.when_closed()
        self.assertEqual(closed.code, code)
        if reason is not None:
            self.assertEqual(closed.reason, reason)
        self.assertEqual(await self.frames(bob, 1), [self.frame(alice, "lobby", "leave", "leave")])
        carol = await self.join("lobby", nickname="carol")
        self.assertEqual(
            self.greeting(carol)["members"],
            [{"pid": bob.id, "nickname": "bob"}, {"pid": carol.id, "nickname": "carol"}],
        )
        bob.send("still here")
        expected = [self.frame(bob, "lobby", "normal", "still here")]
        self.assertEqual(await self.frames(carol, 1), expected)
        self.assertEqual(
            await self.frames(bob, 2), [self.frame(carol, "lobby", "join", "carol")] + expected
        )

    async def test_binary(self) -> None:
        """
        A binary message closes the connection with 1003.
        """
        await self.assert_closed_with(
            lambda client: client.send_raw(b"hello", is_binary=True),
            1003,
            "binary messages are not accepted",
        )

    async def test_invalid_utf8(self) -> None:
        """
        A text message that is not valid UTF-8 closes the connection with
        1007 (Autobahn's client does not check what it sends).
        """
        await self.assert_closed_with(lambda client: client.send_raw(b"ok \xff"), 1007)

    async def test_invalid_utf8_across_fragments(self) -> None:
        """
        A text message whose fragments end inside a UTF-8 sequence closes
        the connection with 1007.
        """
        await self.assert_closed_with(
            lambda client: client.send_raw("你好".encode()[:4], fragment_size=2), 1007
        )

    async def test_too_large(self) -> None:
        """
        One byte over C{max_message_size} closes the connection with 1009.
        """
        await self.assert_closed_with(lambda client: client.send_raw(b"x" * 1001), 1009)

    async def test_too_large_after_reassembly(self) -> None:
        """
        A fragmented message whose frames are each small enough but whose
        reassembly is one byte too large closes the connection with 1009.
        """
        await self.assert_closed_with(
            lambda client: client.send_raw(b"y" * 1001, fragment_size=334), 1009
        )

    async def test_leave_before_closing_handshake(self) -> None:
        """
        A member the server closes leaves at once: the others get its
        C{leave} while its client has not answered the close frame (and
        the server would wait seconds for that answer).
        """
        for send in [
            lambda client: client.send_raw(b"binary", is_binary=True),
            lambda client: client.send_raw(b"x" * 1001),
        ]:
            alice = await self.join("lobby", nickname="alice")
            bob = await self.join("lobby", nickname="bob")
            alice.answer_close = False
            send(alice)
            leave = await bob.next_of_type("leave", timeout=3)
            self.assertEqual(contract(leave), self.frame(alice, "lobby", "leave", "leave"))
            self.assertIsNone(alice.closed)
            await alice.abort()
            await bob.close()

    async def test_largest_message(self) -> None:
        """
        A message of exactly C{max_message_size} bytes, fragmented or not,
        is broadcast intact.
        """
        alice = await self.join("lobby")
        text = "é" * 500
        alice.send_raw(text.encode("utf-8"))
        alice.send_raw(text.encode("utf-8"), fragment_size=333)
        self.assertEqual([frame["payload"] for frame in await self.frames(alice, 2)], [text] * 2)


class LeaveTests(XgateTestCase):
    """
    However a connection ends, the remaining members get C{leave}.
    """

    async def test_client_close(self) -> None:
        """
        A clean close from the client: C{leave} to the others, and the
        member is gone from the member list.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        carol = await self.join("lobby", nickname="carol")
        closed = await alice.close()
        self.assertEqual((closed.was_clean, closed.code), (True, 1000))
        leave = self.frame(alice, "lobby", "leave", "leave")
        bob_leave = await bob.next_of_type("leave")
        self.assertEqual(contract(bob_leave), leave)
        self.assertRegex(bob_leave["send_time"], UNPADDED_SEND_TIME)
        self.assertEqual(contract(await carol.next_of_type("leave")), leave)
        dave = await self.join("lobby", nickname="dave")
        self.assertEqual(self.greeting(dave)["member_count"], 3)
        self.assertNotIn(alice.id, [member["pid"] for member in self.greeting(dave)["members"]])

    async def test_network_drop(self) -> None:
        """
        A connection dropped without a closing handshake: C{leave} to the
        others all the same.
        """
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        closed = await alice.abort()
        self.assertEqual(closed.was_clean, False)
        self.assertEqual(
            contract(await bob.next_of_type("leave")), self.frame(alice, "lobby", "leave", "leave")
        )
        bob.send("alone")
        self.assertEqual(await self.frames(bob, 1), [self.frame(bob, "lobby", "normal", "alone")])


class RateLimitTests(XgateTestCase):
    """
    Messages beyond the token bucket are dropped and the sender warned at
    most once a second. The test drives the node's clock; ping barriers
    make sure the server has read what was sent.
    """

    settings = Settings(rate=1, burst=2)

    async def test_limited(self) -> None:
        """
        With rate 1 and burst 2: of four messages at once, two pass and
        the sender gets one C{error}; half a second later nothing new
        passes and no second warning comes; a second after the first
        warning, one message passes and the next is warned about again.
        """
        clock = self.node_clock()
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        await alice.next_of_type("join")
        for text in ["a", "b", "c", "d"]:
            alice.send(text)
        await alice.barrier()
        clock.advance(0.5)
        alice.send("e")
        await alice.barrier()
        clock.advance(0.5)
        alice.send("f")
        alice.send("g")
        await alice.barrier()
        bob.send("end")
        warning = self.frame(alice, "lobby", "error", "rate limit exceeded: message dropped")
        self.assertEqual(
            await self.frames(alice, 6),
            [
                self.frame(alice, "lobby", "normal", "a"),
                self.frame(alice, "lobby", "normal", "b"),
                warning,
                self.frame(alice, "lobby", "normal", "f"),
                warning,
                self.frame(bob, "lobby", "normal", "end"),
            ],
        )
        self.assertEqual(
            [frame["payload"] for frame in await self.frames(bob, 4)], ["a", "b", "f", "end"]
        )

    async def test_limit_per_connection(self) -> None:
        """
        One member's flood does not limit another member.
        """
        self.node_clock()
        alice = await self.join("lobby")
        bob = await self.join("lobby")
        for number in range(5):
            alice.send(f"alice {number}")
        await alice.barrier()
        bob.send("bob 0")
        bob.send("bob 1")
        payloads = [frame["payload"] for frame in await self.frames(bob, 4)]
        self.assertEqual(payloads, ["alice 0", "alice 1", "bob 0", "bob 1"])


class FloodTests(XgateTestCase):
    """
    A client sending more than ten times the rate for five seconds is
    closed with 1008 (the test drives the node's clock).
    """

    settings = Settings(rate=1, burst=1000)

    async def test_flood_closed(self) -> None:
        """
        With rate 1: 11 messages in each of four seconds pass (the bucket
        is large); the 11th of the fifth second closes the connection with
        1008 instead of being broadcast, and the others get C{leave}.
        """
        clock = self.node_clock()
        alice = await self.join("lobby", nickname="alice")
        bob = await self.join("lobby", nickname="bob")
        for second in range(5):
            for number in range(11):
                alice.send(f"{second}.{number}")
            if second < 4:
                await alice.barrier()
                clock.advance(1)
        closed = await alice.when_closed()
        self.assertEqual((closed.code, closed.reason), (1008, "sending far above the rate limit"))
        frames = await self.frames(bob, 55)
        self.assertEqual(
            [frame["payload"] for frame in frames[:54]],
            [f"{second}.{number}" for second in range(5) for number in range(11)][:54],
        )
        self.assertEqual(frames[54], self.frame(alice, "lobby", "leave", "leave"))

    async def test_ten_times_rate_is_fine(self) -> None:
        """
        Exactly ten times the rate for longer than five seconds is not a
        flood.
        """
        clock = self.node_clock()
        alice = await self.join("lobby")
        for second in range(7):
            for number in range(10):
                alice.send(f"{second}.{number}")
            await alice.barrier()
            clock.advance(1)
        self.assertEqual(len(await self.frames(alice, 70)), 70)
        self.assertIsNone(alice.closed)


class HeartbeatTests(XgateTestCase):
    """
    The server pings; a client that does not answer is dropped and the
    others get its C{leave}; a client that answers stays.
    """

    settings = Settings(ping_interval=1, ping_timeout=2)

    async def test_silent_client_dropped(self) -> None:
        """
        A client that leaves pings unanswered is dropped within the ping
        interval plus timeout (Autobahn rounds its timers to the second);
        one that answers keeps being pinged and stays a member.
        """
        alice = await self.join("lobby", nickname="alice")
        mute = await self.join("lobby", nickname="mute", answer_pings=False)
        await alice.next_of_type("join")
        leave = await alice.next_frame(timeout=6)
        self.assertEqual(contract(leave), self.frame(mute, "lobby", "leave", "leave"))
        closed = await mute.when_closed()
        self.assertEqual((closed.was_clean, closed.code), (False, 1006))
        self.assertGreaterEqual(mute.pings, 1)
        await self.wait_until(lambda: alice.pings >= 3)
        self.assertIsNone(alice.closed)
        alice.send("still here")
        self.assertEqual(
            await self.frames(alice, 1), [self.frame(alice, "lobby", "normal", "still here")]
        )
        self.assertEqual(self.gate.connections, 1)


class FactoryLifecycleTests(XgateTestCase):
    """
    One L{XnestFactory} per xnest while it has connections; emptied rooms
    keep their history, a bounded number of them, least recently used
    forgotten first.
    """

    settings = Settings(max_idle_rooms=2)

    async def test_one_factory_per_xnest(self) -> None:
        """
        Members of one room share one factory; each room has its own; a
        factory is released when its last connection ends, however it
        ends.
        """
        self.assertEqual(self.gate.factories, 0)
        alice = await self.join("a")
        bob = await self.join("a")
        self.assertEqual(self.gate.factories, 1)
        carol = await self.join("b")
        self.assertEqual(
            (self.gate.factories, self.gate.connections, self.rooms.active_rooms), (2, 3, 2)
        )
        await alice.close()
        await self.wait_until(lambda: self.gate.connections == 2)
        self.assertEqual((self.gate.factories, self.rooms.active_rooms), (2, 2))
        await bob.abort()
        await self.wait_until(lambda: self.gate.factories == 1)
        self.assertEqual((self.gate.connections, self.rooms.active_rooms), (1, 1))
        carol.send_raw(b"bye", is_binary=True)
        await carol.when_closed()
        await self.wait_until(lambda: self.gate.factories == 0)
        self.assertEqual((self.gate.connections, self.rooms.active_rooms), (0, 0))

    async def test_refused_handshake_releases_factory(self) -> None:
        """
        A handshake refused after the room id was accepted (bad nickname)
        leaves no factory and no room behind.
        """
        url = f"{self.running.ws_url}/xgate/websocket/lobby?nickname=%01"
        self.assertEqual(await self.handshake_status(url), 400)
        await self.wait_until(lambda: self.gate.connections == 0)
        self.assertEqual((self.gate.factories, self.rooms.active_rooms), (0, 0))

    async def chat_and_leave(self, xnest_id: str, text: str) -> None:
        """
        One member says C{text} in C{xnest_id} and leaves, alone.
        """
        client = await self.join(xnest_id, nickname="writer")
        client.send(text)
        await client.next_of_type("normal")
        await client.close()
        await self.wait_until(lambda: self.rooms.active_rooms == 0)

    async def history_of(self, xnest_id: str) -> list[Any]:
        """
        The payloads of the greeting history a newcomer to C{xnest_id}
        gets; the newcomer leaves again.
        """
        client = await self.join(xnest_id)
        history = self.greeting(client)["history"]
        self.assertEqual(self.greeting(client)["member_count"], 1)
        await client.close()
        await self.wait_until(lambda: self.rooms.active_rooms == 0)
        return [entry["payload"] for entry in history]

    async def test_history_served_after_room_empties(self) -> None:
        """
        A room whose last member left is no longer live, and the next
        joiner gets its history, entries exactly as they were.
        """
        alice = await self.join("a", nickname="alice")
        alice.send("keep me")
        sent = await alice.next_of_type("normal")
        await alice.close()
        await self.wait_until(lambda: (self.gate.factories, self.rooms.active_rooms) == (0, 0))
        dave = await self.join("a", nickname="dave")
        greeting = self.greeting(dave)
        self.assertEqual(
            (greeting["member_count"], greeting["members"]),
            (1, [{"pid": dave.id, "nickname": "dave"}]),
        )
        self.assertEqual(
            entries(greeting["history"]),
            [
                {
                    "from": alice.id,
                    "nickname": "alice",
                    "type": "normal",
                    "payload": "keep me",
                    "send_time": sent["send_time"],
                }
            ],
        )

    async def test_idle_rooms_bounded(self) -> None:
        """
        With C{max_idle_rooms=2}, a third emptied room makes the least
        recently used one forget its history; taking a room live again
        makes it the most recently used.
        """
        await self.chat_and_leave("a", "in a")
        await self.chat_and_leave("b", "in b")
        await self.chat_and_leave("c", "in c")
        self.assertEqual(await self.history_of("a"), [])
        self.assertEqual(await self.history_of("b"), ["in b"])
        await self.chat_and_leave("d", "in d")
        self.assertEqual(await self.history_of("c"), [])
        self.assertEqual(await self.history_of("b"), ["in b"])
        self.assertEqual(await self.history_of("d"), ["in d"])


class HealthTests(XgateTestCase):
    """
    C{/healthz} and plain HTTP requests to room URLs.
    """

    async def get(self, path: str) -> tuple[int, Any, bytes]:
        """
        GET C{path} from the node over a connection that is then closed:
        status, headers and body.
        """
        return await self.network.get(self.running.url + path)

    async def test_healthz(self) -> None:
        """
        C{/healthz} answers 200 with a JSON status counting live rooms and
        xgate connections (other keys may come and go).
        """
        await self.join("a")
        await self.join("a")
        await self.join("b")
        code, headers, body = await self.get("/healthz")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json; charset=utf-8"])
        status = json.loads(body)
        self.assertIsInstance(status["uptime"], float | int)
        self.assertGreaterEqual(status["uptime"], 0)
        expected = {
            "status": "ok",
            "version": xmeet.__version__,
            "node": self.running.node.node_id,
            "xnests": 2,
            "xgate_connections": 3,
        }
        self.assertEqual({key: status.get(key) for key in expected}, expected)

    async def test_plain_http_to_room(self) -> None:
        """
        A plain GET of a room URL gets 426, not Autobahn's status page,
        and its C{?redirect=} is not followed (no open redirect); nothing
        is left behind.
        """
        code, headers, _ = await self.get(
            "/xgate/websocket/lobby?redirect=https%3A%2F%2Fevil.example%2F"
        )
        self.assertEqual(code, 426)
        self.assertIsNone(headers.getRawHeaders("location"))
        await self.wait_until(lambda: self.gate.connections == 0)
        self.assertEqual((self.gate.factories, self.rooms.active_rooms), (0, 0))


class SlowJoinTests(XgateTestCase):
    """
    Joins that wait for the room backend (as a Redis backend does): the
    WebSocket is open before the member is in the room.
    """

    def setUp(self) -> None:
        super().setUp()
        self.held: list[Callable[[], object]] = []
        load = self.rooms.backend.load

        def held_load(*args: Any) -> Deferred[Any]:
            loaded: Deferred[Any] = Deferred()
            self.held.append(lambda: load(*args).chainDeferred(loaded))
            return loaded

        self.patch(self.rooms.backend, "load", held_load)

    def release(self) -> None:
        """
        Let every held room load finish.
        """
        held, self.held = self.held, []
        for finish in held:
            finish()

    async def test_early_messages_kept_in_order(self) -> None:
        """
        Messages sent before the join completes are handled after the
        greeting, in order.
        """
        alice = await self.connect(self.url("lobby", nickname="alice"))
        alice.send("early 1")
        alice.send("early 2")
        await alice.barrier()
        self.assertEqual((alice.frames, len(self.held)), ([], 1))
        self.release()
        frames = [await alice.next_frame() for _ in range(6)]
        self.assertEqual(
            [(frame["type"], frame["payload"]) for frame in frames[3:]],
            [("history", []), ("normal", "early 1"), ("normal", "early 2")],
        )

    async def test_joins_while_loading(self) -> None:
        """
        Two members connecting while their room loads are admitted in
        the order they connected.
        """
        alice = await self.connect(self.url("lobby", nickname="alice"))
        bob = await self.connect(self.url("lobby", nickname="bob"))
        self.release()
        for client in (alice, bob):
            await client.next_of_type("history")
        self.assertEqual(
            (self.greeting(alice)["member_count"], self.greeting(bob)["member_count"]), (1, 2)
        )
        self.assertEqual(await self.frames(alice, 1), [self.frame(bob, "lobby", "join", "bob")])

    async def test_gone_while_another_waits(self) -> None:
        """
        When the first of two members waiting for the same room load has
        gone before it completes, the second still gets the one live
        room: a later member meets it there, and its leave is told.
        """
        alice = await self.connect(self.url("lobby", nickname="alice"))
        bob = await self.connect(self.url("lobby", nickname="bob"))
        await alice.close()
        await self.wait_until(lambda: self.gate.connections == 1)
        self.release()
        await bob.next_of_type("history")
        self.assertEqual(self.greeting(bob)["members"], [{"pid": bob.id, "nickname": "bob"}])
        carol = await self.connect(self.url("lobby", nickname="carol"))
        self.release()
        await carol.next_of_type("history")
        self.assertEqual(
            self.greeting(carol)["members"],
            [{"pid": bob.id, "nickname": "bob"}, {"pid": carol.id, "nickname": "carol"}],
        )
        self.assertEqual(await self.frames(bob, 1), [self.frame(carol, "lobby", "join", "carol")])
        await bob.close()
        self.assertEqual(await self.frames(carol, 1), [self.frame(bob, "lobby", "leave", "leave")])
        await self.wait_until(lambda: self.gate.connections == 1)

    async def test_gone_before_join_completes(self) -> None:
        """
        A connection that ends while its room loads leaves no member
        behind: the next member of the room is alone in it.
        """
        alice = await self.connect(self.url("lobby", nickname="alice"))
        await alice.close()
        await self.wait_until(lambda: self.gate.connections == 0)
        self.release()
        self.assertEqual(self.rooms.active_rooms, 0)
        bob = await self.connect(self.url("lobby", nickname="bob"))
        self.release()
        await bob.next_of_type("history")
        self.assertEqual(self.greeting(bob)["members"], [{"pid": bob.id, "nickname": "bob"}])
