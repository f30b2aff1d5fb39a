"""
Tests of xnests over Socket.IO (PROTOCOL.md section 3, last bullet).

In memory first: L{XnestEvents} on an in-memory Engine.IO server, with a
L{Clock}. Then end to end on a real port: a Socket.IO member
(socket.io-client 4 or 2 in a Node subprocess driven by
C{tests/clients/im_xnest.js}, or python-socketio) and a WebSocket member
(the Autobahn client of L{tests.xgate_client}) in one room see each other
and share its history.
"""

from __future__ import annotations

import json
import re
from random import Random
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import start_xmeet
from tests.test_im_socketio import WAIT, check_error, run_node, sio_connect
from tests.test_rooms import Collector
from tests.test_socketio_server import FakeEngine, FakeEngineSocket
from tests.xgate_client import XgateClient, connect, wait_until, xnest_url
from xmeet.config import Settings
from xmeet.core.ids import IdGenerator
from xmeet.core.room import history_entry
from xmeet.handlers.xnest_events import XnestEvents
from xmeet.rooms import RoomService
from xmeet.socketio import SocketIOServer
from xmeet.socketio.packets import Packet, PacketType, encode_packet
from xmeet.store.memory import MemoryRoomBackend

__all__ = ["MixedRoomTests", "XnestCapTests", "XnestErrorTests", "XnestEventsMemoryTests"]

XNEST = "mixed room"
SEND_TIME = re.compile(r"\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{1,2}:\d{1,2}\Z")
OK = {"statusCode": 200, "body": {}}


class XnestEventsMemoryTests(SynchronousTestCase):
    """
    L{XnestEvents} in memory: the join's acknowledgement is the room
    service's greeting, the nickname is the service's choice, and every
    call is judged by the socket's sender policy.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1428501726)
        self.settings = Settings(rate=1, burst=3)
        backend = MemoryRoomBackend(
            "node",
            self.settings.max_idle_rooms,
            self.settings.history_bytes,
            self.settings.history_memory,
        )
        self.rooms = RoomService(self.clock, self.settings, IdGenerator("node"), backend, Random(5))
        self.rooms.start()
        self.engine = FakeEngine()
        server = SocketIOServer(self.engine, self.clock)
        XnestEvents(server.of("/"), self.rooms, self.settings, self.clock)

    def connect(self) -> FakeEngineSocket:
        """
        A client connected to the main namespace, with nothing to read.
        """
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        engine_socket.take()
        return engine_socket

    def call(self, engine_socket: FakeEngineSocket, ack_id: int, event: str, data: Any) -> str:
        """
        Emit C{event} with an acknowledgement and return the ack's text
        (the C{xnest} events it caused are read and dropped).
        """
        engine_socket.receive(f"42{ack_id}" + json.dumps([event, data]))
        [ack] = [m for m in engine_socket.take() if str(m).startswith(f"43{ack_id}[")]
        assert isinstance(ack, str)
        return ack

    @staticmethod
    def status(ack: str) -> int:
        """
        The C{statusCode} of the acknowledgement C{ack}.
        """
        answer: int = json.loads(ack[ack.index("[") :])[0]["statusCode"]
        return answer

    def test_join_ack_is_the_greeting(self) -> None:
        """
        The C{xnest/join} acknowledgement holds the greeting, byte for byte
        the text of C{encode_packet} of the same values: the history's
        stored JSON goes in without being decoded.
        """
        watcher = Collector()
        first = self.rooms.join("大厅", "watcher", watcher)
        alice = self.successResultOf(first).member
        self.rooms.receive(alice, "你好 😀")
        ack = self.call(self.connect(), 1, "xnest/join", {"xnest": "大厅", "nickname": " Zoë "})
        me = json.loads(ack[3:])[0]["body"]["self"]
        body = {
            "self": me,
            "member_count": 2,
            "members": [
                {"pid": alice.id, "nickname": "watcher"},
                {"pid": me, "nickname": "Zoë"},
            ],
            "history": [
                json.loads(history_entry(alice.id, "watcher", "你好 😀", "2015-4-8 14:2:6"))
            ],
        }
        [expected] = encode_packet(
            Packet(PacketType.ACK, "/", [{"statusCode": 200, "body": body}], 1)
        )
        self.assertEqual(ack, "4" + str(expected))
        self.assertEqual(watcher.types(), ["normal", "join"])

    def test_lone_surrogate_refused(self) -> None:
        """
        A nickname with a lone surrogate (a JSON escape UTF-8 cannot carry)
        is refused with 400; a surrogate pair is one character, accepted.
        """
        engine_socket = self.connect()
        ack = self.call(engine_socket, 0, "xnest/join", {"xnest": "x", "nickname": "\ud800é"})
        self.assertEqual(self.status(ack), 400)
        self.assertIn("nickname is not valid Unicode (lone surrogate)", ack)
        ack = self.call(engine_socket, 1, "xnest/join", {"xnest": "x", "nickname": "\U0001f600é"})
        self.assertEqual(json.loads(ack[3:])[0]["body"]["members"][0]["nickname"], "\U0001f600é")

    def test_random_nickname_from_the_service(self) -> None:
        """
        Without a nickname, the member gets one from the room service's
        generator.
        """
        ack = self.call(self.connect(), 0, "xnest/join", {"xnest": "x"})
        [member] = json.loads(ack[3:])[0]["body"]["members"]
        self.assertEqual(member["nickname"], f"guest-{Random(5).randrange(1000, 10000)}")

    def test_calls_share_the_sender_policy(self) -> None:
        """
        Joins and sends take tokens of one sender policy per socket (burst
        3, rate 1): the fourth call in a row is refused with 429, and a
        second later one more passes.
        """
        engine_socket = self.connect()
        calls = [
            ("xnest/join", {"xnest": "a"}),
            ("xnest/send", {"xnest": "a", "payload": "one"}),
            ("xnest/join", {"xnest": "b"}),
            ("xnest/send", {"xnest": "b", "payload": "two"}),
        ]
        codes = [
            self.status(self.call(engine_socket, ack_id, event, data))
            for ack_id, (event, data) in enumerate(calls)
        ]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.clock.advance(1)
        again = self.call(engine_socket, 9, "xnest/send", {"xnest": "a", "payload": "x"})
        self.assertEqual(self.status(again), 200)

    def test_flood_answered_not_closed(self) -> None:
        """
        Every call is answered, so a socket sending twenty times the rate
        for six seconds gets a 429 for each call beyond the rate, and stays
        connected: the WebSocket flood rule closes no Socket.IO session.
        """
        engine_socket = self.connect()
        self.call(engine_socket, 0, "xnest/join", {"xnest": "a"})
        self.clock.advance(3)
        codes = []
        for second in range(6):
            for number in range(20):
                data = {"xnest": "a", "payload": f"{second}.{number}"}
                ack = self.call(engine_socket, 1 + second * 20 + number, "xnest/send", data)
                codes.append(self.status(ack))
                self.clock.advance(1 / 20)
        self.assertFalse(engine_socket.closed)
        self.assertEqual(codes.count(200), 3 + 5)
        self.assertEqual(codes.count(429), 120 - 8)


async def ws_member(testcase: TestCase, url: str, xnest: str, nickname: str) -> XgateClient:
    """
    A WebSocket member of C{xnest} that received its greeting.
    """
    client = await connect(testcase, xnest_url(url, xnest, {"nickname": nickname}))
    await client.next_of_type("history")
    return client


def stripped(test: TestCase, frame: dict[str, Any]) -> dict[str, Any]:
    """
    C{frame} without its C{send_time}, checked to be of the right form.
    """
    test.assertRegex(frame["send_time"], SEND_TIME)
    return {key: value for key, value in frame.items() if key != "send_time"}


def frame(sender: str, frame_type: str, payload: Any, **extra: Any) -> dict[str, Any]:
    """
    A room frame of C{XNEST} as L{stripped} returns it.
    """
    return {"from": sender, "xnest": XNEST, "type": frame_type, "payload": payload, **extra}


def entry(test: TestCase, message: dict[str, Any], nickname: str) -> dict[str, Any]:
    """
    The history entry of the C{normal} frame C{message}.
    """
    test.assertEqual(message["type"], "normal")
    return {
        "from": message["from"],
        "nickname": nickname,
        "type": "normal",
        "payload": message["payload"],
        "send_time": message["send_time"],
    }


def check_mixed(test: TestCase, report: dict[str, Any], ws: XgateClient) -> None:
    """
    The mixed room script (see C{im_xnest.js}): every ack and event of the
    Socket.IO member, every frame of the WebSocket member, exactly; the
    broadcasts are the very same objects on both sides.
    """
    acks, events = report["acks"], report["events"]
    member = ws.id
    sio = acks["join"]["body"]["self"]
    again = acks["rejoin"]["body"]["self"]
    test.assertEqual(len({member, sio, again}), 3)
    frames = ws.frames[4:]
    test.assertEqual(
        [stripped(test, each) for each in frames],
        [
            frame(member, "normal", "before"),
            frame(sio, "join", "sio"),
            frame(sio, "normal", "from sio"),
            frame(member, "normal", "from ws"),
            frame(sio, "changename", "sio2"),
            frame(member, "changename", "ws2"),
            frame(sio, "private", "psst", to=member),
            frame(sio, "leave", "leave"),
            frame(again, "join", "sio3"),
            frame(again, "leave", "leave"),
        ],
    )
    before, _, from_sio, from_ws, renamed, renamed_ws, private, *_ = frames
    history = [
        entry(test, from_ws, "wsann"),
        entry(test, from_sio, "sio"),
        entry(test, before, "wsann"),
    ]
    test.assertEqual(
        acks["join"],
        {
            "statusCode": 200,
            "body": {
                "self": sio,
                "member_count": 2,
                "members": [{"pid": member, "nickname": "wsann"}, {"pid": sio, "nickname": "sio"}],
                "history": [entry(test, before, "wsann")],
            },
        },
    )
    for step in ("send", "rename", "history", "private", "leave"):
        test.assertEqual(acks[step], OK, step)
    test.assertEqual(
        acks["rejoin"],
        {
            "statusCode": 200,
            "body": {
                "self": again,
                "member_count": 2,
                "members": [{"pid": member, "nickname": "ws2"}, {"pid": again, "nickname": "sio3"}],
                "history": history,
            },
        },
    )
    test.assertEqual(events[0], ["connected", {"socketId": report["id"]}])
    (history_frame,) = [data for name, data in events if data.get("type") == "history"]
    test.assertEqual(stripped(test, history_frame), frame(sio, "history", history))
    test.assertEqual(
        events,
        [
            events[0],
            ["xnest", from_sio],
            ["xnest", from_ws],
            ["xnest", renamed],
            ["xnest", renamed_ws],
            ["xnest", history_frame],
            ["xnest", private],
        ],
    )


class MixedRoomTests(TestCase):
    """
    A WebSocket member and a Socket.IO member of one xnest see each other's
    join, leave, messages and renames, share its history, and reach each
    other privately; the Socket.IO member leaves by C{xnest/leave} and by
    disconnecting.
    """

    timeout = 60

    async def test_socket_io_client(self) -> None:
        """
        With socket.io-client 4, upgrading from polling to WebSocket.
        """
        running = start_xmeet(self)
        ws = await ws_member(self, running.ws_url, XNEST, "wsann")
        ws.send("before")
        await ws.next_of_type("normal")
        reporting = run_node(self, "im_xnest.js", running.url, "mixed", XNEST, "wsann")
        await ws.next_of_type("join")
        await ws.next_of_type("normal")
        ws.send("from ws")
        await ws.next_of_type("changename")
        ws.send("@changename:ws2")
        report = await reporting
        await wait_until(lambda: len(ws.frames) == 14, WAIT)
        check_mixed(self, report, ws)

    async def test_python_socketio(self) -> None:
        """
        With python-socketio on WebSocket.
        """
        running = start_xmeet(self)
        ws = await ws_member(self, running.ws_url, XNEST, "wsann")
        ws.send("before")
        await ws.next_of_type("normal")
        sio = await sio_connect(self, running.url)
        socket_id = sio.id
        acks: dict[str, Any] = {}

        async def call(event: str, payload: dict[str, Any], step: str) -> Any:
            acks[step] = await sio.call(event, payload)
            return acks[step]

        joined = await call("xnest/join", {"xnest": XNEST, "nickname": "sio"}, "join")
        me = joined["body"]["self"]
        await call("xnest/send", {"xnest": XNEST, "payload": "from sio"}, "send")
        await ws.next_of_type("normal")
        ws.send("from ws")
        await sio.wait_for("xnest", 2)
        await call("xnest/send", {"xnest": XNEST, "payload": "@changename:sio2"}, "rename")
        await ws.next_of_type("changename")
        ws.send("@changename:ws2")
        await sio.wait_for("xnest", 4)
        await call("xnest/send", {"xnest": XNEST, "payload": "@history:0"}, "history")
        await sio.wait_for("xnest", 5)
        await call("xnest/send", {"xnest": XNEST, "payload": f"@to:{ws.id}|psst"}, "private")
        await sio.wait_for("xnest", 6)
        await call("xnest/leave", {"xnest": XNEST}, "leave")
        await call("xnest/join", {"xnest": XNEST, "nickname": "sio3"}, "rejoin")
        await sio.disconnect()
        await wait_until(lambda: len(ws.frames) == 14, WAIT)
        self.assertEqual(sio.named("xnest")[-1]["from"], me)
        check_mixed(self, {"acks": acks, "events": sio.events, "id": socket_id}, ws)

    async def test_socket_io_client_v2(self) -> None:
        """
        A socket.io-client 2 (Engine.IO 3, polling then WebSocket) member
        joins, sends, receives its message, and leaves by disconnecting.
        """
        running = start_xmeet(self)
        ws = await ws_member(self, running.ws_url, XNEST, "wsv2")
        report = await run_node(self, "im_xnest.js", running.url, "v2", XNEST, "wsv2")
        await wait_until(lambda: len(ws.frames) == 7, WAIT)
        member, old = ws.id, report["acks"]["join"]["body"]["self"]
        self.assertEqual(
            report["acks"],
            {
                "join": {
                    "statusCode": 200,
                    "body": {
                        "self": old,
                        "member_count": 2,
                        "members": [
                            {"pid": member, "nickname": "wsv2"},
                            {"pid": old, "nickname": "old"},
                        ],
                        "history": [],
                    },
                },
                "send": OK,
            },
        )
        joined, said, left = ws.frames[4:]
        self.assertEqual(
            [stripped(self, each) for each in (joined, said, left)],
            [
                frame(old, "join", "old"),
                frame(old, "normal", "hi from v2"),
                frame(old, "leave", "leave"),
            ],
        )
        (connected, received) = report["events"]
        self.assertEqual(connected[0], "connected")
        self.assertIsInstance(connected[1]["socketId"], str)
        self.assertEqual(received, ["xnest", said])

    async def test_disconnect_leaves_every_xnest(self) -> None:
        """
        A python-socketio member on long-polling in two xnests leaves both
        when it disconnects: each room's WebSocket member gets its C{leave}.
        """
        running = start_xmeet(self)
        members = {
            xnest: await ws_member(self, running.ws_url, xnest, "watcher")
            for xnest in ("one", "two")
        }
        sio = await sio_connect(self, running.url, ["polling"])
        ids = {}
        for xnest in members:
            joined = await sio.call("xnest/join", {"xnest": xnest, "nickname": "roamer"})
            ids[xnest] = joined["body"]["self"]
        await sio.disconnect()
        for xnest, ws in members.items():
            left = await ws.next_of_type("leave")
            self.assertEqual(
                (left["from"], left["xnest"], left["payload"]), (ids[xnest], xnest, "leave")
            )
        self.assertNotEqual(ids["one"], ids["two"])


def _send(payload: Any) -> dict[str, Any]:
    return {"xnest": "e", "payload": payload}


NOT_JOINED = [
    (403, "xnest/send", _send("hi")),
    (403, "xnest/leave", {"xnest": "e"}),
    (400, "xnest/join", "e"),
    (400, "xnest/join", None),
    (400, "xnest/join", {"nickname": "ed"}),
    (400, "xnest/join", {"xnest": ""}),
    (400, "xnest/join", {"xnest": "a/b"}),
    (400, "xnest/join", {"xnest": "x" * 65}),
    (400, "xnest/join", {"xnest": "e", "nickname": "n" * 33}),
    (400, "xnest/join", {"xnest": "e", "nickname": 5}),
    (400, "xnest/join", {"xnest": "e", "is_store_history": "no"}),
    (400, "xnest/send", ["e", "hi"]),
]
"""
Errors of a socket in no xnest, as C{(status, event, payload)}.
"""

JOINED = [
    (400, "xnest/join", {"xnest": "e", "nickname": "again"}),
    (400, "xnest/send", _send(5)),
    (400, "xnest/send", {"xnest": "e"}),
    (413, "xnest/send", _send("é" * 51)),
]
"""
Errors of a member of xnest C{e}, on a node whose largest message is 100
bytes (51 C{é} are 102).
"""


class XnestErrorTests(TestCase):
    """
    Bad xnest calls get the error object of their status as ack and, with
    no ack callback, as an C{error} event; they change nothing in the room.
    """

    timeout = 60

    async def test_errors(self) -> None:
        """
        403 outside the xnest, 400 for bad payloads, 413 for an oversize
        message, 429 beyond the burst (of 3: the join takes one token); a
        WebSocket member of the room sees the join and the accepted
        messages, nothing else.
        """
        running = start_xmeet(self, Settings(max_message_size=100, rate=0.01, burst=3))
        ws = await ws_member(self, running.ws_url, "e", "watcher")
        sio = await sio_connect(self, running.url)

        async def refused(status: int, event: str, payload: Any) -> None:
            ack = await sio.call(event, payload)
            check_error(self, ack, status, (event, payload))
            errors = len(sio.named("error"))
            await sio.emit(event, payload)
            await sio.wait_for("error", errors + 1)
            self.assertEqual(sio.named("error")[errors], ack)

        for case in NOT_JOINED:
            await refused(*case)
        joined = await sio.call("xnest/join", {"xnest": "e", "nickname": "ed"})
        ed = joined["body"]["self"]
        self.assertEqual(
            joined["body"]["members"],
            [{"pid": ws.id, "nickname": "watcher"}, {"pid": ed, "nickname": "ed"}],
        )
        self.assertEqual(joined["body"]["member_count"], 2)
        for case in JOINED:
            await refused(*case)
        self.assertEqual(await sio.call("xnest/send", _send("one")), OK)
        self.assertEqual(await sio.call("xnest/send", _send("two")), OK)
        await refused(429, "xnest/send", _send("three"))
        await sio.call("xnest/leave", {"xnest": "e"})
        await wait_until(lambda: len(ws.frames) == 8, WAIT)
        self.assertEqual(
            [(each["type"], each["from"], each["payload"]) for each in ws.frames[4:]],
            [
                ("join", ed, "ed"),
                ("normal", ed, "one"),
                ("normal", ed, "two"),
                ("leave", ed, "leave"),
            ],
        )
        self.assertEqual(
            [(data["type"], data["payload"]) for data in sio.named("xnest")],
            [("normal", "one"), ("normal", "two")],
        )

    async def test_commands(self) -> None:
        """
        C{@history:N} past the end answers an empty page, a malformed
        cursor and an unknown C{@to} id an C{error} frame, to the sender
        alone, in the C{xnest} event; a WebSocket member's C{@to} reaches
        the Socket.IO member.
        """
        running = start_xmeet(self)
        ws = await ws_member(self, running.ws_url, XNEST, "watcher")
        sio = await sio_connect(self, running.url)
        joined = await sio.call("xnest/join", {"xnest": XNEST, "nickname": "ed"})
        ed = joined["body"]["self"]
        for command in ("@history:1", "@history:x", "@to:nobody|hi", "ok"):
            self.assertEqual(await sio.call("xnest/send", {"xnest": XNEST, "payload": command}), OK)
        await sio.wait_for("xnest", 4)
        page, cursor, unknown, said = sio.named("xnest")
        self.assertEqual(stripped(self, page), frame(ed, "history", []))
        self.assertEqual((cursor["type"], cursor["from"]), ("error", ed))
        self.assertEqual((unknown["type"], unknown["from"]), ("error", ed))
        self.assertIsInstance(cursor["payload"], str)
        self.assertIsInstance(unknown["payload"], str)
        self.assertEqual(stripped(self, said), frame(ed, "normal", "ok"))
        await wait_until(lambda: len(ws.frames) == 6, WAIT)
        self.assertEqual(ws.frames[4:], [ws.frames[4], said])
        self.assertEqual(stripped(self, ws.frames[4]), frame(ed, "join", "ed"))
        ws.send(f"@to:{ed}|hey")
        echoed = await ws.next_of_type("private")
        self.assertEqual(stripped(self, echoed), frame(ws.id, "private", "hey", to=ed))
        await sio.wait_for("xnest", 5)
        self.assertEqual(sio.named("xnest")[4], echoed)

    async def test_no_history(self) -> None:
        """
        A room created by C{xnest/join} with C{is_store_history} false keeps
        no history: its pages are empty, for Socket.IO and WebSocket members;
        without a nickname the member gets a random C{guest-NNNN}.
        """
        running = start_xmeet(self)
        sio = await sio_connect(self, running.url)
        joined = await sio.call("xnest/join", {"xnest": XNEST, "is_store_history": False})
        self.assertEqual(joined["body"]["history"], [])
        self.assertEqual(await sio.call("xnest/send", {"xnest": XNEST, "payload": "gone"}), OK)
        self.assertEqual(
            await sio.call("xnest/send", {"xnest": XNEST, "payload": "@history:0"}), OK
        )
        await sio.wait_for("xnest", 2)
        said, page = sio.named("xnest")
        me = joined["body"]["self"]
        self.assertEqual(stripped(self, said), frame(me, "normal", "gone"))
        self.assertEqual(stripped(self, page), frame(me, "history", []))
        ws = await connect(self, xnest_url(running.ws_url, XNEST))
        greeting = await ws.next_of_type("history")
        self.assertEqual(greeting["payload"], [])
        (member,) = joined["body"]["members"]
        self.assertEqual(member["pid"], me)
        self.assertRegex(member["nickname"], r"guest-\d{4}\Z")


class XnestCapTests(TestCase):
    """
    C{max_xnests_per_socket} bounds the xnests of one Socket.IO socket, and
    joins take tokens of the socket's rate limit.
    """

    timeout = 60

    async def test_cap(self) -> None:
        """
        Beyond the cap, C{xnest/join} is answered 429 C{too_many_xnests}
        (as ack, or as an C{error} event) and joins nothing; after a leave,
        a join gets in again.
        """
        running = start_xmeet(self, Settings(max_xnests_per_socket=3))
        sio = await sio_connect(self, running.url)
        for name in "abc":
            joined = await sio.call("xnest/join", {"xnest": name})
            self.assertEqual(joined["statusCode"], 200, name)
        refused = await sio.call("xnest/join", {"xnest": "d"})
        self.assertEqual(refused["statusCode"], 429)
        self.assertEqual(refused["error"]["code"], "too_many_xnests")
        await sio.emit("xnest/join", {"xnest": "d"})
        await sio.wait_for("error")
        self.assertEqual(sio.named("error")[0], refused)
        self.assertEqual(running.node.rooms.active_rooms, 3)
        self.assertEqual(await sio.call("xnest/leave", {"xnest": "b"}), OK)
        self.assertEqual((await sio.call("xnest/join", {"xnest": "d"}))["statusCode"], 200)

    async def test_joins_take_tokens(self) -> None:
        """
        With a burst of 2, a third join in a row is rate limited (429
        C{rate_limited}).
        """
        running = start_xmeet(self, Settings(rate=0.01, burst=2))
        sio = await sio_connect(self, running.url)
        answers = [await sio.call("xnest/join", {"xnest": name}) for name in "abc"]
        self.assertEqual([answer["statusCode"] for answer in answers], [200, 200, 429])
        check_error(self, answers[2], 429)
