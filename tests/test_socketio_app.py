"""
Tests for L{xmeet.handlers.socketio_app}: an event the application does
not know is answered with the error object C{404 unknown_event}, as the
ack or as an C{error} event, in memory and then with real clients.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import start_xmeet
from tests.test_im_socketio import PythonScenario, run_node
from tests.test_socketio_server import FakeEngine
from xmeet.config import Settings
from xmeet.core.ids import IdGenerator
from xmeet.handlers.socketio_app import register_socketio_app
from xmeet.im.service import IMService
from xmeet.rooms import RoomService
from xmeet.socketio import SocketIOServer
from xmeet.store.memory import MemoryRoomBackend


def unknown(event: str) -> dict[str, Any]:
    """
    The error object answering the unknown event C{event}.
    """
    return {
        "statusCode": 404,
        "error": {"code": "unknown_event", "message": f"unknown event {json.dumps(event)}"},
    }


class UnknownEventInMemoryTests(SynchronousTestCase):
    """
    The application on a namespace of a server on a fake Engine.IO.
    """

    def setUp(self) -> None:
        clock = Clock()
        settings = Settings()
        rooms = RoomService(
            clock, settings, IdGenerator("node"), MemoryRoomBackend("node", settings.max_idle_rooms)
        )
        im = IMService(clock, settings, IdGenerator("node"))
        engine = FakeEngine()
        server = SocketIOServer(engine, clock, connect_timeout=45.0)
        register_socketio_app(server.of("/"), im, rooms, settings, clock)
        self.client = engine.open()
        self.client.receive("40")
        [_, connected] = self.client.take()
        self.assertTrue(str(connected).startswith('42["connected"'), connected)

    def answers(self, *messages: str) -> list[Any]:
        """
        The packets the server sends back for C{messages}, decoded: acks
        as C{("ack", id, args)}, events as C{("event", args)}.
        """
        self.client.receive(*messages)
        decoded: list[Any] = []
        for sent in self.client.take():
            assert isinstance(sent, str)
            if sent.startswith("42"):
                decoded.append(("event", json.loads(sent[2:])))
            else:
                assert sent.startswith("43"), sent
                ack_id, _, args = sent[2:].partition("[")
                decoded.append(("ack", int(ack_id), json.loads("[" + args)))
        return decoded

    def test_ack(self) -> None:
        """
        An unknown event sent with an ack callback gets the error object,
        naming the event, as its ack; nothing is logged as an error.
        """
        self.assertEqual(
            self.answers('4217["direct/histroy",{"userId":"fay"}]'),
            [("ack", 17, [unknown("direct/histroy")])],
        )

    def test_error_event(self) -> None:
        """
        Without an ack callback, the error object comes as an C{error}
        event.
        """
        self.assertEqual(
            self.answers('42["direct/histroy",{"userId":"fay"}]'),
            [("event", ["error", unknown("direct/histroy")])],
        )

    def test_odd_names(self) -> None:
        """
        A numeric event name is named as the client library names it; a
        long name is cut in the message; a name the JSON holds as a lone
        surrogate is escaped, so the answer can always be sent.
        """
        long_name = "x" * 5000
        self.assertEqual(
            self.answers("421[7]", f'422["{long_name}"]', '423["\\ud800"]'),
            [
                ("ack", 1, [unknown("7")]),
                ("ack", 2, [unknown("x" * 100 + "...")]),
                ("ack", 3, [unknown("\ud800")]),
            ],
        )

    def test_bounded_log(self) -> None:
        """
        An unknown event, however long its name, is one debug line of
        bounded length, and no error.
        """
        with capturedLogs() as events:
            self.answers(f'421["{"x" * 5000}"]', '42["\\ud800"]')
        self.assertEqual([event["log_level"] for event in events], [LogLevel.debug] * 2)
        self.assertLess(max(len(formatEvent(event)) for event in events), 200)

    def test_known_events_unchanged(self) -> None:
        """
        The application's own events still get their own answers.
        """
        [(kind, ack_id, [answer])] = self.answers('421["conversation/list",{}]')
        self.assertEqual((kind, ack_id, answer["statusCode"]), ("ack", 1, 401))


#: One unknown call with a payload, one without: eve's and fay's.
CASES = [
    {"as": "eve", "event": "direct/histroy", "payload": {"sessionToken": "@eve.token"}},
    {"as": "fay", "event": "conversation/lsit"},
]


class UnknownEventClientTests(TestCase):
    """
    Real clients on a real port: socket.io-client (websocket and polling)
    and python-socketio each get the answer as the ack and as an C{error}
    event.
    """

    timeout = 60

    def check(self, report: dict[str, Any]) -> None:
        self.assertEqual(
            report["results"],
            [{"ack": unknown(case["event"]), "event": unknown(case["event"])} for case in CASES],
        )

    async def test_socket_io_client(self) -> None:
        """
        The npm C{socket.io-client} 4.x: eve on websocket, fay on polling.
        """
        running = start_xmeet(self, Settings())
        spec = json.dumps({"cases": CASES})
        self.check(await run_node(self, "im_client.js", running.url, "cases", spec))

    async def test_python_socketio(self) -> None:
        """
        The C{python-socketio} client: eve on websocket, fay on polling.
        """
        running = start_xmeet(self, Settings())
        self.check(await PythonScenario(self, running.url).cases(CASES))
