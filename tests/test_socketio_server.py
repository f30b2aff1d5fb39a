# -*- test-case-name: tests.test_socketio_server -*-
"""
Tests for L{xmeet.socketio.SocketIOServer} driven through an in-memory
Engine.IO server, with a L{Clock} for every timeout.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from xmeet.engineio.interfaces import IEngineIOHandler
from xmeet.socketio import (
    AckTimeout,
    ConnectionRefused,
    EncodedAck,
    Socket,
    SocketDisconnected,
    SocketIOServer,
)

__all__ = [
    "AckTests",
    "ArbitraryInputTests",
    "ConnectTests",
    "DisconnectTests",
    "ProtocolV4Tests",
    "RoomTests",
]


@attrs.frozen
class FakePrepared:
    """
    What L{FakeEngine.prepare} returns: the message it was given.
    """

    data: str | bytes


def on_wire(data: str | bytes) -> str | bytes:
    """
    How an Engine.IO v4 WebSocket carries message data: text behind the
    message type C{4}, binary as is.  The tests read and write the wire form.
    """
    return "4" + data if isinstance(data, str) else data


@attrs.define(eq=False)
class FakeEngineSocket:
    """
    An Engine.IO session that records what is sent in wire form, and
    reports its own closing to the handler as the real one does.
    """

    engine: FakeEngine
    sid: str
    revision: int = 4
    transport_name: str = "websocket"
    query: dict[str, str] = attrs.field(factory=dict)
    headers: dict[str, str] = attrs.field(factory=dict)
    remote_address: str = "127.0.0.1"
    sent: list[str | bytes] = attrs.field(factory=list)
    prepared: list[FakePrepared] = attrs.field(factory=list)
    closed: bool = False

    def send(self, data: str | bytes) -> None:
        self.sent.append(on_wire(data))

    def send_prepared(self, packet: Any) -> None:
        assert isinstance(packet, FakePrepared)
        self.prepared.append(packet)
        self.sent.append(on_wire(packet.data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.handler.connection_lost(self, "forced close")

    def receive(self, *messages: str | bytes) -> None:
        for message in messages:
            if isinstance(message, str):
                assert message.startswith("4"), message
                message = message[1:]
            self.engine.handler.message_received(self, message)

    def take(self) -> list[str | bytes]:
        """
        What was sent since the last call.
        """
        sent, self.sent = self.sent, []
        return sent


@attrs.define(eq=False)
class FakeEngine:
    """
    An in-memory Engine.IO server.
    """

    handler: Any = None
    prepare_calls: int = 0
    count: int = 0

    def prepare(self, data: str | bytes) -> FakePrepared:
        self.prepare_calls += 1
        return FakePrepared(data)

    def open(self, revision: int = 4, **query: str) -> FakeEngineSocket:
        self.count += 1
        socket = FakeEngineSocket(self, f"engine{self.count}", revision, query=query)
        self.handler.connection_made(socket)
        return socket

    def lose(self, socket: FakeEngineSocket, reason: str) -> None:
        socket.closed = True
        self.handler.connection_lost(socket, reason)


class ServerTestCase(SynchronousTestCase):
    """
    A server on a fake engine, with helpers to connect clients.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.engine = FakeEngine()
        self.server = SocketIOServer(self.engine, self.clock, connect_timeout=45.0)
        self.main = self.server.of("/")
        self.server.of("/custom")
        self.sockets: list[Socket] = []
        self.disconnects: list[tuple[str, str]] = []

        @self.main.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            self.sockets.append(socket)

        @self.main.on("disconnect")
        def disconnect(socket: Socket, reason: str) -> None:
            self.disconnects.append((socket.id, reason))

    def connect(self, namespace: str = "/") -> tuple[FakeEngineSocket, Socket]:
        """
        Open a session and connect it to C{namespace}.
        """
        engine_socket = self.engine.open()
        engine_socket.receive("40" if namespace == "/" else f"40{namespace},")
        [connected] = engine_socket.take()[:1]
        assert isinstance(connected, str)
        prefix = "40" if namespace == "/" else f"40{namespace},"
        self.assertTrue(connected.startswith(prefix), connected)
        sid = json.loads(connected[len(prefix) :])["sid"]
        return engine_socket, self.server.of(namespace).sockets[sid]


class ConnectTests(ServerTestCase):
    """
    Namespace connection: CONNECT, auth, refusal, unknown namespaces and the
    connect timeout.
    """

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IEngineIOHandler, self.server))
        self.assertIs(self.engine.handler, self.server)

    def test_attach_later(self) -> None:
        server = SocketIOServer(None, self.clock)
        self.assertRaises(RuntimeError, lambda: server.engine)
        engine = FakeEngine()
        server.attach(engine)
        self.assertIs(engine.handler, server)
        self.assertIs(server.engine, engine)

    def test_connect_main(self) -> None:
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        [connected] = engine_socket.take()
        assert isinstance(connected, str)
        self.assertEqual(list(json.loads(connected[2:])), ["sid"])
        [socket] = self.sockets
        self.assertEqual(json.loads(connected[2:])["sid"], socket.id)
        self.assertNotEqual(socket.id, engine_socket.sid)
        self.assertEqual(socket.rooms, {socket.id})
        self.assertTrue(socket.connected)
        self.assertIs(socket.engine, engine_socket)

    def test_auth_and_emit_in_handler(self) -> None:
        """
        The handler gets the auth payload, and what it emits follows the
        CONNECT packet.
        """
        custom = self.server.of("custom")
        self.assertEqual(custom.name, "/custom")

        @custom.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            socket.emit("auth", auth)

        engine_socket = self.engine.open()
        engine_socket.receive('40/custom,{"token":"abc"}')
        connected, auth = engine_socket.take()
        self.assertTrue(str(connected).startswith("40/custom,{"))
        self.assertEqual(auth, '42/custom,["auth",{"token":"abc"}]')

    def test_unknown_namespace(self) -> None:
        engine_socket = self.engine.open()
        engine_socket.receive("40/random")
        self.assertEqual(engine_socket.take(), ['44/random,{"message":"Invalid namespace"}'])
        self.assertFalse(engine_socket.closed)
        engine_socket.receive("40")
        self.assertEqual(len(engine_socket.take()), 1)

    def test_refused(self) -> None:
        @self.main.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            socket.emit("never")
            raise ConnectionRefused("not authorized", {"code": 7})

        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.assertEqual(engine_socket.take(), ['44{"message":"not authorized","data":{"code":7}}'])
        self.assertEqual(self.main.sockets, {})
        self.assertEqual(self.disconnects, [])

    def test_refused_by_false(self) -> None:
        self.main.on("connect")(lambda socket, auth: False)
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.assertEqual(engine_socket.take(), ['44{"message":"Connection rejected by server"}'])

    def test_handler_error_not_sent(self) -> None:
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            raise ZeroDivisionError("secret detail")

        self.main.on("connect")(connect)
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.assertEqual(engine_socket.take(), ['44{"message":"Internal server error"}'])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_asynchronous_connect(self) -> None:
        """
        A connect handler may answer later; what it emits meanwhile waits
        for the CONNECT packet, and follows it at once.
        """
        answer: Deferred[None] = Deferred()

        @self.main.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> Deferred[None]:
            socket.emit("hello")
            return answer

        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.assertEqual(engine_socket.take(), [])
        answer.callback(None)
        connected, hello = engine_socket.take()
        self.assertTrue(str(connected).startswith('40{"sid":'))
        self.assertEqual(hello, '42["hello"]')

    def test_websocket_not_held(self) -> None:
        """
        On a WebSocket, what the connect handler emitted follows the
        CONNECT packet in the same turn, before later packets (acks, a
        server disconnect), and no timer is left behind.
        """
        self.main.on("connect")(lambda socket, auth: socket.emit("hello"))
        self.main.on("ask")(lambda socket: "answer")
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        connected, hello = engine_socket.take()
        self.assertEqual(hello, '42["hello"]')
        self.assertEqual(self.clock.getDelayedCalls(), [])
        engine_socket.receive('421["ask"]')
        [socket] = self.main.sockets.values()
        socket.disconnect()
        self.assertEqual(engine_socket.take(), ['431["answer"]', "41"])

    def test_disconnect_in_connect_handler(self) -> None:
        """
        The client is told it connected, gets what was emitted, then is
        disconnected.
        """

        @self.main.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            socket.emit("bye")
            socket.disconnect()

        engine_socket = self.engine.open()
        engine_socket.receive("40")
        connected, bye, disconnect = engine_socket.take()
        self.assertEqual((bye, disconnect), ('42["bye"]', "41"))
        self.assertEqual(self.main.sockets, {})
        self.assertEqual(self.disconnects[0][1], "server namespace disconnect")
        self.assertFalse(engine_socket.closed)

    def test_polling_not_held(self) -> None:
        self.main.on("connect")(lambda socket, auth: socket.emit("hello"))
        engine_socket = self.engine.open()
        engine_socket.transport_name = "polling"
        engine_socket.receive("40")
        connected, hello = engine_socket.take()
        self.assertEqual(hello, '42["hello"]')

    def test_coroutine_handler(self) -> None:
        async def connect(socket: Socket, auth: dict[str, Any]) -> None:
            raise ConnectionRefused("later")

        self.main.on("connect")(connect)
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.assertEqual(engine_socket.take(), ['44{"message":"later"}'])

    def test_connect_timeout(self) -> None:
        engine_socket = self.engine.open()
        self.clock.advance(44.9)
        self.assertFalse(engine_socket.closed)
        self.clock.advance(0.1)
        self.assertTrue(engine_socket.closed)

    def test_connect_timeout_cancelled(self) -> None:
        engine_socket, _ = self.connect()
        self.clock.advance(100)
        self.assertFalse(engine_socket.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout_cancelled_on_close(self) -> None:
        engine_socket = self.engine.open()
        self.engine.lose(engine_socket, "transport close")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_second_connect_closes(self) -> None:
        engine_socket, socket = self.connect()
        engine_socket.receive("40")
        self.assertTrue(engine_socket.closed)
        self.assertEqual(self.disconnects, [(socket.id, "forced close")])


class AckTests(ServerTestCase):
    """
    Events and acknowledgements in both directions.
    """

    def setUp(self) -> None:
        super().setUp()
        self.engine_socket, self.socket = self.connect()

    def test_event_without_ack(self) -> None:
        received = []

        @self.main.on("say")
        def say(socket: Socket, *args: Any) -> str:
            received.append((socket, args))
            return "unasked"

        self.engine_socket.receive('42["say",1,"2",{"3":[true]}]')
        self.assertEqual(received, [(self.socket, (1, "2", {"3": [True]}))])
        self.assertEqual(self.engine_socket.take(), [])

    def test_ack_values(self) -> None:
        results: list[Any] = [None, "one", ("a", 2), ["list"]]
        self.main.on("ask")(lambda socket: results.pop(0))
        for ack_id in range(4):
            self.engine_socket.receive(f'42{ack_id}["ask"]')
        self.assertEqual(
            self.engine_socket.take(), ["430[]", '431["one"]', '432["a",2]', '433[["list"]]']
        )

    def test_encoded_ack(self) -> None:
        """
        A handler may answer with arguments that are already JSON text
        (L{EncodedAck}): they are sent as they are, in any namespace, and
        only when an acknowledgement was asked for.
        """
        self.main.on("ask")(lambda socket: EncodedAck('{"a":[1,"é"]},2'))
        self.engine_socket.receive('427["ask"]', '42["ask"]')
        self.assertEqual(self.engine_socket.take(), ['437[{"a":[1,"é"]},2]'])
        self.server.of("/custom").on("ask")(lambda socket: EncodedAck("null"))
        engine_socket, _ = self.connect("/custom")
        engine_socket.receive('42/custom,0["ask"]')
        self.assertEqual(engine_socket.take(), ["43/custom,0[null]"])

    def test_deferred_ack(self) -> None:
        answer: Deferred[str] = Deferred()
        self.main.on("ask")(lambda socket: answer)
        self.engine_socket.receive('4212["ask"]')
        self.assertEqual(self.engine_socket.take(), [])
        answer.callback("done")
        self.assertEqual(self.engine_socket.take(), ['4312["done"]'])

    def test_handler_error(self) -> None:
        def fail(socket: Socket) -> None:
            raise KeyError("secret")

        self.main.on("ask")(fail)
        self.engine_socket.receive('421["ask"]')
        self.assertEqual(self.engine_socket.take(), [])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertFalse(self.engine_socket.closed)

    def test_unknown_event_ignored(self) -> None:
        """
        Unknown events, events without payload and unknown acks are ignored,
        as the official server does.
        """
        self.engine_socket.receive('421["nobody"]', "42", "43", "435[]")
        self.assertEqual(self.engine_socket.take(), [])
        self.assertFalse(self.engine_socket.closed)

    def test_unknown_event_handler(self) -> None:
        """
        With C{on_unknown_event}, every event without a handler of its own
        goes to that handler with its name and whether an ack was asked,
        and its result is the ack; events with a handler are unchanged.
        """
        unknown: list[tuple[Socket, bool, str, tuple[Any, ...]]] = []

        @self.main.on_unknown_event
        def answer(socket: Socket, acked: bool, event: str, *args: Any) -> dict[str, str]:
            unknown.append((socket, acked, event, args))
            return {"unknown": event}

        self.main.on("known")(lambda socket: "known")
        self.engine_socket.receive('421["nobody",1,"2"]', '42["nobody"]', "422[7]", '423["known"]')
        self.assertEqual(
            self.engine_socket.take(),
            ['431[{"unknown":"nobody"}]', '432[{"unknown":"7"}]', '433["known"]'],
        )
        self.assertEqual(
            unknown,
            [
                (self.socket, True, "nobody", (1, "2")),
                (self.socket, False, "nobody", ()),
                (self.socket, True, "7", ()),
            ],
        )

    def test_numeric_event_name(self) -> None:
        self.main.on("7")(lambda socket: "seven")
        self.engine_socket.receive("421[7]")
        self.assertEqual(self.engine_socket.take(), ['431["seven"]'])

    def test_binary_event_and_ack(self) -> None:
        self.main.on("echo")(lambda socket, *args: args)
        self.engine_socket.receive(
            '452-9["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02",
            b"\x03",
        )
        self.assertEqual(
            self.engine_socket.take(),
            [
                '462-9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
                b"\x01\x02",
                b"\x03",
            ],
        )

    def test_emit_binary(self) -> None:
        self.socket.emit("file", {"name": "a", "content": b"\xff"})
        self.assertEqual(
            self.engine_socket.take(),
            ['451-["file",{"name":"a","content":{"_placeholder":true,"num":0}}]', b"\xff"],
        )

    def test_call(self) -> None:
        d = self.socket.call("question", 1)
        d2 = self.socket.call("other")
        self.assertEqual(self.engine_socket.take(), ['420["question",1]', '421["other"]'])
        self.engine_socket.receive('430["answer",2]')
        self.assertEqual(self.successResultOf(d), ("answer", 2))
        self.engine_socket.receive("431[]")
        self.assertIsNone(self.successResultOf(d2))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_call_binary_ack(self) -> None:
        d = self.socket.call("question")
        self.engine_socket.receive('461-0[{"_placeholder":true,"num":0}]', b"ok")
        self.assertEqual(self.successResultOf(d), b"ok")

    def test_call_timeout(self) -> None:
        d = self.socket.call("question", timeout=5)
        self.clock.advance(5)
        self.failureResultOf(d, AckTimeout)
        self.engine_socket.receive("430[1]")
        self.assertFalse(self.engine_socket.closed)

    def test_call_disconnected(self) -> None:
        d = self.socket.call("question", timeout=None)
        self.engine.lose(self.engine_socket, "transport close")
        self.assertEqual(
            self.failureResultOf(d, SocketDisconnected).value.reason, "transport close"
        )
        self.failureResultOf(self.socket.call("again"), SocketDisconnected)

    def test_call_cancelled(self) -> None:
        d = self.socket.call("question")
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.engine_socket.receive("430[1]")
        self.assertFalse(self.engine_socket.closed)

    def test_unserialisable_fails_at_emit(self) -> None:
        """
        A value JSON cannot carry fails where it is emitted, even while
        packets are held back, and leaves no pending call behind.
        """
        self.assertRaises(TypeError, self.socket.emit, "x", object())
        self.assertRaises(TypeError, self.socket.call, "x", {1, 2})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.socket.emit("fine")
        self.assertEqual(self.engine_socket.take(), ['42["fine"]'])

    def test_reserved_names(self) -> None:
        self.assertRaises(ValueError, self.socket.emit, "disconnect")
        self.assertRaises(ValueError, self.main.prepare, "connect")


class RoomTests(ServerTestCase):
    """
    Rooms and broadcasting, with each event encoded and prepared once.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clients = [self.connect() for _ in range(4)]
        self.a, self.b, self.c, self.d = (socket for _, socket in self.clients)
        for engine_socket, _ in self.clients:
            engine_socket.take()

    def received(self) -> list[list[str | bytes]]:
        return [engine_socket.take() for engine_socket, _ in self.clients]

    def test_join_leave(self) -> None:
        self.a.join("r1", "r2")
        self.assertEqual(self.a.rooms, {self.a.id, "r1", "r2"})
        self.a.leave("r1", "unknown")
        self.assertEqual(self.a.rooms, {self.a.id, "r2"})

    def test_room_except_sender(self) -> None:
        for socket in (self.a, self.b, self.c):
            socket.join("room")
        self.a.to("room").emit("hi", 1)
        self.assertEqual(self.received(), [[], ['42["hi",1]'], ['42["hi",1]'], []])

    def test_several_rooms_once(self) -> None:
        self.a.join("r1")
        self.b.join("r1", "r2")
        self.c.join("r2")
        self.main.to("r1").to("r2").emit("x")
        self.assertEqual(self.received(), [['42["x"]'], ['42["x"]'], ['42["x"]'], []])

    def test_except(self) -> None:
        self.b.join("quiet")
        self.main.except_("quiet", self.c.id).emit("x")
        self.assertEqual(self.received(), [['42["x"]'], [], [], ['42["x"]']])

    def test_prepared_once(self) -> None:
        self.server.emit("big", b"\x00")
        self.assertEqual(self.engine.prepare_calls, 2)
        first = self.clients[0][0].prepared
        for engine_socket, _ in self.clients:
            self.assertEqual(engine_socket.prepared, first)
            self.assertIs(engine_socket.prepared[0], first[0])
            self.assertEqual(
                engine_socket.take(), ['451-["big",{"_placeholder":true,"num":0}]', b"\x00"]
            )

    def test_send_prepared(self) -> None:
        prepared = self.main.prepare("news", "text")
        self.b.send_prepared(prepared)
        self.assertEqual(self.received(), [[], ['42["news","text"]'], [], []])
        custom = self.server.of("/custom")
        self.assertRaises(ValueError, self.b.send_prepared, custom.prepare("x"))

    def test_broadcast(self) -> None:
        self.d.broadcast.emit("x")
        self.assertEqual(self.received(), [['42["x"]'], ['42["x"]'], ['42["x"]'], []])

    def test_disconnected_leave_rooms(self) -> None:
        self.a.join("room")
        self.a.disconnect()
        self.assertEqual(self.a.rooms, frozenset())
        self.main.to("room").emit("x")
        self.main.emit("y")
        self.assertEqual(self.received(), [["41"], ['42["y"]'], ['42["y"]'], ['42["y"]']])
        self.assertEqual(self.main.to(self.a.id).sockets, [])

    def test_other_namespace_apart(self) -> None:
        engine_socket, socket = self.connect("/custom")
        engine_socket.take()
        self.server.emit("main")
        self.server.of("/custom").emit("custom")
        self.assertEqual(engine_socket.take(), ['42/custom,["custom"]'])


class DisconnectTests(ServerTestCase):
    """
    Disconnect reasons, and closing on malformed or unexpected packets.
    """

    def test_client_namespace_disconnect(self) -> None:
        engine_socket, socket = self.connect()
        engine_socket.receive("41")
        self.assertEqual(self.disconnects, [(socket.id, "client namespace disconnect")])
        self.assertFalse(engine_socket.closed)
        self.assertEqual(self.main.sockets, {})

    def test_custom_namespace_disconnect_keeps_main(self) -> None:
        engine_socket, main = self.connect()
        echoed = []
        self.main.on("message")(lambda socket, *args: echoed.append(args))
        engine_socket.receive("40/custom")
        engine_socket.receive("41/custom")
        engine_socket.receive('42["message","to main"]')
        self.assertEqual(echoed, [("to main",)])
        self.assertFalse(engine_socket.closed)

    def test_server_namespace_disconnect(self) -> None:
        engine_socket, socket = self.connect()
        engine_socket.take()
        socket.disconnect()
        self.assertEqual(engine_socket.take(), ["41"])
        self.assertEqual(self.disconnects, [(socket.id, "server namespace disconnect")])
        self.assertFalse(engine_socket.closed)
        engine_socket.receive('42["late"]')
        self.assertTrue(engine_socket.closed)

    def test_disconnect_and_close(self) -> None:
        engine_socket, socket = self.connect()
        engine_socket.receive("40/custom,")
        engine_socket.take()
        socket.disconnect(close=True)
        self.assertEqual(engine_socket.take(), ["41", "41/custom,"])
        self.assertTrue(engine_socket.closed)
        self.assertEqual(self.disconnects, [(socket.id, "server namespace disconnect")])

    def test_transport_reasons(self) -> None:
        for reason in ("transport close", "ping timeout", "transport error", "parse error"):
            engine_socket, socket = self.connect()
            self.engine.lose(engine_socket, reason)
            self.assertEqual(self.disconnects[-1], (socket.id, reason))
            socket.emit("ignored")
            self.assertEqual(engine_socket.take(), [])

    def test_malformed_closes(self) -> None:
        for message in ("4abc", "42{}", '42abc["m"]', b"\x00", "40/custom,4[]", '44"x"'):
            engine_socket, socket = self.connect()
            engine_socket.receive(message)
            self.assertTrue(engine_socket.closed, message)
            self.assertEqual(self.disconnects[-1], (socket.id, "forced close"))

    def test_malformed_before_connect(self) -> None:
        engine_socket = self.engine.open()
        engine_socket.receive("4abc")
        self.assertTrue(engine_socket.closed)

    def test_event_for_unconnected_namespace_closes(self) -> None:
        engine_socket, _ = self.connect()
        engine_socket.receive('42/custom,["m"]')
        self.assertTrue(engine_socket.closed)

    def test_disconnect_handler_error_logged(self) -> None:
        def disconnect(socket: Socket, reason: str) -> None:
            raise RuntimeError("boom")

        self.main.on("disconnect")(disconnect)
        engine_socket, _ = self.connect()
        self.engine.lose(engine_socket, "transport close")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_pending_connect_then_lost(self) -> None:
        answer: Deferred[None] = Deferred()
        self.main.on("connect")(lambda socket, auth: answer)
        engine_socket = self.engine.open()
        engine_socket.receive("40")
        self.engine.lose(engine_socket, "transport close")
        answer.callback(None)
        self.assertEqual(engine_socket.take(), [])
        self.assertEqual(self.main.sockets, {})
        self.assertEqual(self.disconnects, [])


class ProtocolV4Tests(ServerTestCase):
    """
    Engine.IO 3 clients speak Socket.IO protocol v4.
    """

    def test_implicit_main_namespace(self) -> None:
        engine_socket = self.engine.open(revision=3)
        self.assertEqual(engine_socket.take(), ["40"])
        [socket] = self.sockets
        self.assertEqual(socket.id, engine_socket.sid)
        self.assertEqual(socket.handshake.revision, 4)

    def test_namespace_query_as_auth(self) -> None:
        custom = self.server.of("/custom")
        auths = []

        @custom.on("connect")
        def connect(socket: Socket, auth: dict[str, Any]) -> None:
            auths.append((socket.id, auth))

        engine_socket = self.engine.open(revision=3)
        engine_socket.take()
        engine_socket.receive("40/custom?token=abc&x=,")
        self.assertEqual(engine_socket.take(), ["40/custom,"])
        self.assertEqual(auths, [(f"/custom#{engine_socket.sid}", {"token": "abc", "x": ""})])
        engine_socket.receive('42/custom,1["e"]')
        self.assertFalse(engine_socket.closed)

    def test_refusal_is_a_string(self) -> None:
        self.server.of("/custom").on("connect")(lambda socket, auth: False)
        engine_socket = self.engine.open(revision=3)
        engine_socket.take()
        engine_socket.receive("40/custom,")
        engine_socket.receive("40/nowhere,")
        self.assertEqual(
            engine_socket.take(),
            ['44/custom,"Connection rejected by server"', '44/nowhere,"Invalid namespace"'],
        )

    def test_connect_timeout_not_applied(self) -> None:
        engine_socket = self.engine.open(revision=3)
        self.clock.advance(100)
        self.assertFalse(engine_socket.closed)


_PREFIXES = ["0", "1", "2", "3", "4", "5", "6", "0/custom,", '2["echo",', "51-", "51-1[", "31["]
_messages = st.one_of(
    st.text(),
    st.binary(),
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(_PREFIXES), st.text()),
)


class ArbitraryInputTests(SynchronousTestCase):
    """
    No sequence of messages makes the server raise into the Engine.IO layer.
    """

    @given(st.lists(_messages, max_size=8), st.sampled_from([3, 4]))
    def test_arbitrary_messages(self, messages: list[str | bytes], revision: int) -> None:
        clock = Clock()
        engine = FakeEngine()
        server = SocketIOServer(engine, clock)
        server.of("/custom")
        server.of("/").on("echo")(lambda socket, *args: args)
        engine_socket = engine.open(revision)
        for message in ["0", *messages]:
            if engine_socket.closed:
                break
            server.message_received(engine_socket, message)
        clock.advance(100)
        self.assertEqual(self.flushLoggedErrors(), [])
