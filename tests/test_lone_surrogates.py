"""
Text UTF-8 cannot carry, from clients (issue 11: no traceback for anything
a client can send).

A JSON decoder accepts a lone surrogate from an escape such as
C{"\\ud800"}; a nickname, payload or IM field holding one used to reach a
WebSocket member's frame, which then failed to encode. Every such text is
refused where it comes in, with the 400 error object.

In memory first: the whole Socket.IO application (IM and xnest events) on
an in-memory Engine.IO server, with an xgate member in the xnest, fed
arbitrary text in every field. Then on a real port: python-socketio, which
sends lone surrogates as JSON escapes, and the HTTP API.
"""

from __future__ import annotations

import json
from random import Random
from typing import Any

import socketio
import treq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import provider

from tests.support import start_xmeet
from tests.test_core_rules import ANY_JSON, ANY_TEXT
from tests.test_socketio_server import FakeEngine, FakeEngineSocket
from tests.xgate_client import connect, xnest_url
from xmeet.config import Settings
from xmeet.core.frames import Frame
from xmeet.core.ids import IdGenerator
from xmeet.handlers.im_events import IM_CALLS
from xmeet.handlers.socketio_app import register_socketio_app
from xmeet.im.service import IMService
from xmeet.rooms import RoomService
from xmeet.socketio import SocketIOServer
from xmeet.store.memory import MemoryRoomBackend
from xmeet.xgate.protocol import prepare_text

__all__ = ["LoneSurrogateMemoryTests", "LoneSurrogateSocketTests"]

XNEST = "room"


class XgateSink:
    """
    A room member framed as xgate frames it: each frame's text encoded
    once for every WebSocket connection.
    """

    def __init__(self) -> None:
        self.frames: list[str] = []

    def deliver(self, frame: Frame) -> None:
        prepare_text(frame.text)
        self.frames.append(frame.text)


class World:
    """
    The Socket.IO application of one node in memory: C{alice} and C{bob}
    logged in and in xnest L{XNEST} (with an xgate member), and in one
    conversation.

    @ivar socket_id: the Socket.IO id of the last member connected, alice.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1428501726)
        self.settings = Settings()
        backend = MemoryRoomBackend(
            "node",
            self.settings.max_idle_rooms,
            self.settings.history_bytes,
            self.settings.history_memory,
        )
        self.rooms = RoomService(self.clock, self.settings, IdGenerator("node"), backend, Random(5))
        self.rooms.start()
        self.im = IMService(self.clock, self.settings, IdGenerator("node0node0"))
        self.engine = FakeEngine()
        server = SocketIOServer(self.engine, self.clock)
        register_socketio_app(server.of("/"), self.im, self.rooms, self.settings, self.clock)
        self.xgate = XgateSink()
        self.rooms.join(XNEST, "watcher", self.xgate)
        self.acks = 0
        self.bob, _ = self.member("bob")
        self.alice, self.token = self.member("alice")
        created = self.call(
            self.alice, "conversation/add", {"sessionToken": self.token, "name": "c"}
        )
        self.conversation = created["body"]["id"]
        self.call(
            self.alice,
            "conversation/join",
            {"sessionToken": self.token, "conversationId": self.conversation, "userId": "bob"},
        )
        self.check_wire()

    def member(self, user: str) -> tuple[FakeEngineSocket, str]:
        """
        A socket logged in as C{user}, in xnest L{XNEST}; its token.
        """
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.clock.advance(0)
        [connected] = [m for m in engine_socket.take() if str(m).startswith('42["connected"')]
        self.socket_id = json.loads(str(connected)[2:])[1]["socketId"]
        logged_in = self.call(engine_socket, "logIn", {"userId": user, "socketId": self.socket_id})
        self.call(engine_socket, "xnest/join", {"xnest": XNEST, "nickname": user})
        return engine_socket, logged_in["sessionToken"]

    def call(self, engine_socket: FakeEngineSocket, event: str, data: Any) -> Any:
        """
        Emit C{event} with an acknowledgement, as a client's JSON (lone
        surrogates escaped); return the acknowledgement's value.
        """
        self.acks += 1
        engine_socket.receive(f"42{self.acks}" + json.dumps([event, data]))
        self.clock.advance(1)
        prefix = f"43{self.acks}["
        acks = [m for m in engine_socket.sent if isinstance(m, str) and m.startswith(prefix)]
        assert len(acks) == 1, (event, data, engine_socket.sent)
        return json.loads(acks[0][len(prefix) - 1 :])[0]

    def check_wire(self) -> None:
        """
        Everything sent to the Socket.IO members encodes as UTF-8.
        """
        for engine_socket in (self.alice, self.bob):
            for message in engine_socket.take():
                if isinstance(message, str):
                    message.encode("utf-8")


def _field(valid: Any, arbitrary: st.SearchStrategy[Any] = ANY_TEXT) -> st.SearchStrategy[Any]:
    return st.just(valid) | arbitrary


def _fields(values: dict[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    """
    Every field a client can send, each either a valid value (from
    C{values}, the world's) or arbitrary text or JSON, lone surrogates
    included.
    """
    return {
        "xnest": _field(XNEST),
        "nickname": _field("zoe"),
        "payload": _field("hello"),
        "userId": _field("carol"),
        "socketId": _field(values["socketId"]),
        "sessionToken": _field(values["sessionToken"]),
        "targetIds": _field(["bob"], st.lists(ANY_TEXT, max_size=3)),
        "type": _field("text"),
        "textContent": _field("hi"),
        "content": _field("hi", ANY_JSON),
        "conversationId": _field(values["conversationId"]),
        "ignoreIds": st.lists(ANY_TEXT, max_size=3),
        "name": _field("a name"),
        "members": _field(["bob"], st.lists(ANY_TEXT, max_size=3)),
        "set": st.dictionaries(ANY_TEXT, ANY_JSON, min_size=1, max_size=3),
        "before": _field(None),
    }


_TOKEN = ("sessionToken",)
_CONVERSATION = (*_TOKEN, "conversationId")
EVENT_FIELDS = {
    "xnest/join": ("xnest", "nickname"),
    "xnest/send": ("xnest", "payload"),
    "xnest/leave": ("xnest",),
    "logIn": ("userId", "socketId"),
    "logOut": _TOKEN,
    "session/refresh": _TOKEN,
    "message/direct": (*_TOKEN, "targetIds", "type", "textContent"),
    "message/conversation": (*_CONVERSATION, "ignoreIds", "type", "content"),
    "conversation/add": (*_TOKEN, "name", "members"),
    "conversation/join": (*_CONVERSATION, "userId"),
    "conversation/leave": _CONVERSATION,
    "conversation/update": (*_CONVERSATION, "set"),
    "conversation/get": _CONVERSATION,
    "conversation/list": _TOKEN,
    "conversation/history": (*_CONVERSATION, "before"),
}
"""
The fields each event reads; its calls carry those, and an arbitrary key
or two besides (custom attributes of C{conversation/add}).
"""


@st.composite
def _calls(draw: Any, events: list[str], values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """
    One of C{events} and a payload of its fields (see L{_fields}).
    """
    event = draw(st.sampled_from(events))
    strategies = _fields(values)
    fields = draw(st.fixed_dictionaries({key: strategies[key] for key in EVENT_FIELDS[event]}))
    fields.update(draw(st.dictionaries(ANY_TEXT, ANY_JSON, max_size=2)))
    return event, fields


@provider(ILogObserver)
class _Errors(list[dict[str, Any]]):
    """
    The error and critical log events seen while installed.
    """

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            self.append(event)


def _is_success(event: str, answer: Any) -> bool:
    """
    Whether C{answer} says C{event} was done: C{logIn} answers its bare
    object, the other events a 2xx statusCode.
    """
    if not isinstance(answer, dict):
        return False
    if event == "logIn":
        return "sessionToken" in answer
    return answer.get("statusCode") in (200, 201)


def _is_error_object(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("statusCode"), int)
        and 400 <= answer["statusCode"] < 500
        and isinstance(answer.get("error"), dict)
        and set(answer["error"]) == {"code", "message"}
    )


class LoneSurrogateMemoryTests(SynchronousTestCase):
    """
    The Socket.IO application in memory.
    """

    def call_refused(self, world: World, event: str, data: Any, message: str) -> None:
        answer = world.call(world.alice, event, data)
        self.assertEqual(
            answer, {"statusCode": 400, "error": {"code": "bad_request", "message": message}}
        )

    def test_xnest_events_refuse(self) -> None:
        """
        A lone surrogate in an xnest id, a nickname or a payload is refused
        with the 400 error object naming the field; the xgate member gets
        nothing of it, and the xnest goes on.
        """
        world = World()
        world.xgate.frames.clear()
        message = "{} is not valid Unicode (lone surrogate)"
        for xnest, nickname, what in [
            ("x\ud800", "zoe", "xnest id"),
            ("other", "Zo\udc00", "nickname"),
            (XNEST, "\ud800", "nickname"),
        ]:
            data = {"xnest": xnest, "nickname": nickname}
            self.call_refused(world, "xnest/join", data, message.format(what))
        data = {"xnest": XNEST, "payload": "hi \ud83d"}
        self.call_refused(world, "xnest/send", data, message.format("payload"))
        self.assertEqual(world.xgate.frames, [])
        world.call(world.alice, "xnest/send", {"xnest": XNEST, "payload": "hi \U0001f600"})
        [frame] = world.xgate.frames
        self.assertEqual(json.loads(frame)["payload"], "hi \U0001f600")
        world.check_wire()

    def test_im_events_refuse(self) -> None:
        """
        A lone surrogate in an IM field is refused with the 400 error
        object naming the field.
        """
        world = World()
        message = "{} is not valid Unicode (lone surrogate)"
        direct = {"sessionToken": world.token, "targetIds": ["bob"], "type": "text"}
        data = {**direct, "textContent": "\udfff"}
        self.call_refused(world, "message/direct", data, message.format("textContent"))
        data = {
            "sessionToken": world.token,
            "conversationId": world.conversation,
            "type": "text",
            "content": {"k": ["\ud800"]},
        }
        self.call_refused(world, "message/conversation", data, message.format("content"))
        data = {"userId": "\ud800", "socketId": world.socket_id}
        self.call_refused(world, "logIn", data, message.format("userId"))
        world.check_wire()

    def check_any_text(self, events: list[str], data: st.DataObject) -> None:
        """
        One of C{events} with arbitrary text (lone surrogates included) in
        its fields is either done or answered with a 4xx error object;
        nothing is logged as an error, and everything sent to the
        Socket.IO and xgate members encodes as UTF-8.
        """
        world = World()
        values = {
            "sessionToken": world.token,
            "conversationId": world.conversation,
            "socketId": world.socket_id,
        }
        event, fields = data.draw(_calls(events, values))
        errors = _Errors()
        globalLogPublisher.addObserver(errors)
        try:
            answer = world.call(world.alice, event, fields)
            world.check_wire()
        finally:
            globalLogPublisher.removeObserver(errors)
        self.assertEqual(errors, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        if not _is_success(event, answer):
            self.assertTrue(_is_error_object(answer), answer)
        self.assertTrue(all(json.loads(frame) for frame in world.xgate.frames))

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=400)
    @given(st.data())
    def test_xnest_events_any_text(self, data: st.DataObject) -> None:
        """
        The xnest events, with arbitrary text: see L{check_any_text}.
        """
        self.check_any_text(["xnest/join", "xnest/send", "xnest/leave"], data)

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
    @given(st.data())
    def test_im_events_any_text(self, data: st.DataObject) -> None:
        """
        The IM events, with arbitrary text: see L{check_any_text}.
        """
        self.check_any_text(sorted([*IM_CALLS, "logIn"]), data)


class LoneSurrogateSocketTests(TestCase):
    """
    On a real port: python-socketio sends a lone surrogate as a JSON
    escape; the HTTP API's bodies likewise.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_socketio_client(self) -> Any:
        """
        A python-socketio client's nickname and payload with a lone
        surrogate get the 400 error object; an xgate member in the xnest
        keeps its connection and gets the next valid message.
        """
        node = yield start_xmeet(self)
        watcher = yield connect(self, xnest_url(node.ws_url, XNEST, {"nickname": "watcher"}))
        for _ in range(4):
            yield watcher.next_frame()
        answers = yield threads.deferToThread(_python_socketio_session, node.url)
        message = "{} is not valid Unicode (lone surrogate)"
        expected = [
            {"statusCode": 400, "error": {"code": "bad_request", "message": message.format(what)}}
            for what in ("nickname", "payload")
        ]
        self.assertEqual(answers[:2], expected)
        self.assertEqual(answers[2], {"statusCode": 200, "body": {}})
        frame = yield watcher.next_of_type("normal")
        self.assertEqual(frame["payload"], "fine")

    @defer.inlineCallbacks
    def test_http_bodies(self) -> Any:
        """
        A JSON body with a lone surrogate anywhere gets 400 with the error
        object, on the xgate HTTP query and on the IM API.
        """
        node = yield start_xmeet(self)
        message = "request body is not valid Unicode (lone surrogate)"
        for path, body in [
            ("/xgate/http", {"request_id": "\ud800", "method": "members", "params": {}}),
            ("/api/conversations", {"name": "c", "custom": {"\udc00": 1}}),
        ]:
            response = yield treq.post(
                f"{node.url}{path}",
                json.dumps(body).encode("ascii"),
                headers={"content-type": ["application/json"]},
                persistent=False,
            )
            document = yield response.json()
            self.assertEqual(response.code, 400, path)
            self.assertEqual(document["error"]["message"], message, path)


def _python_socketio_session(url: str) -> list[Any]:
    """
    In a thread: join with a lone surrogate in the nickname, join with a
    valid one, send a lone surrogate, then a valid message; the three
    answers that matter.
    """
    client = socketio.Client(reconnection=False)
    client.connect(url, transports=["websocket"], wait_timeout=10)
    try:
        bad_join = client.call("xnest/join", {"xnest": XNEST, "nickname": "\ud800"}, timeout=10)
        client.call("xnest/join", {"xnest": XNEST, "nickname": "ann"}, timeout=10)
        bad_send = client.call("xnest/send", {"xnest": XNEST, "payload": "\udc00!"}, timeout=10)
        good_send = client.call("xnest/send", {"xnest": XNEST, "payload": "fine"}, timeout=10)
    finally:
        client.disconnect()
    return [bad_join, bad_send, good_send]
