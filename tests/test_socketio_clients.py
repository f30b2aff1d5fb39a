# -*- test-case-name: tests.test_socketio_clients -*-
"""
xmeet's Socket.IO server against clients nobody here wrote: the npm
C{socket.io-client} 4.x and 2.x (Engine.IO 3), driven by
C{tests/clients/sio_scenarios.js}, and the C{python-socketio} client, run in
a thread so that the reactor serving it never blocks.

The server is the conformance site (L{tests.conformance_server.make_site})
on 127.0.0.1, with a few more handlers for rooms, server-to-client calls and
closing the transport.
"""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path
from typing import Any

import attrs
import requests
import socketio
import websocket
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.conformance_server import CONFORMANCE_SETTINGS, make_site
from xmeet.socketio import Socket

__all__ = ["EchoEndpointTests", "NodeV2ClientTests", "NodeV4ClientTests", "PythonClientTests"]

CLIENTS = Path(__file__).resolve().parent / "clients"

# Slower heartbeat than the conformance suites' 300/200 ms, so that a loaded
# machine does not time healthy clients out; still quick to detect silence.
CLIENT_SETTINGS = attrs.evolve(CONFORMANCE_SETTINGS, ping_interval=0.5, ping_timeout=0.5)


class ServerMixin:
    """
    Serve the site on a free port for each test, and close it after.
    """

    reasons: dict[str, str]
    url: str

    def start_server(self: Any) -> None:
        served = make_site(reactor, CLIENT_SETTINGS)
        self.served = served
        self.reasons = {}
        main = served.sio.of("/")

        @main.on("join")
        def join(socket: Socket, room: str) -> bool:
            socket.join(room)
            return True

        @main.on("shout")
        def shout(socket: Socket, room: str, text: str) -> str:
            socket.to(room).emit("shouted", text)
            return "sent"

        @main.on("ask-me")
        def ask_me(socket: Socket, value: Any) -> Deferred[Any]:
            return socket.call("question", value, timeout=5)

        @main.on("close-transport")
        def close_transport(socket: Socket) -> None:
            socket.engine.close()

        @main.on("disconnect")
        def disconnect(socket: Socket, reason: str) -> None:
            self.reasons[socket.id] = reason

        self.addCleanup(served.close_all)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = self.successResultOf(endpoint.listen(served.site))
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        self.url = f"http://127.0.0.1:{address.port}"
        self.addCleanup(port.stopListening)


class NodeClientMixin(ServerMixin):
    """
    Run one scenario of C{sio_scenarios.js} with one client version.
    """

    version: str

    def setUp(self) -> None:
        self.start_server()

    @inlineCallbacks
    def scenario(self: Any, name: str, transports: str) -> Any:
        out, err, code = yield getProcessOutputAndValue(
            "node",
            [str(CLIENTS / "sio_scenarios.js"), self.url, self.version, transports, name],
            env=os.environ,
            path=str(CLIENTS),
        )
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if code != 0 or not lines:
            self.fail(f"node exited {code}: {out!r} {err!r}")
        return json.loads(lines[-1])

    @inlineCallbacks
    def check_basic(self: Any, transports: str, expected_transport: str) -> Any:
        result = yield self.scenario("basic", transports)
        self.assertEqual(result["transport"], expected_transport)
        self.assertEqual(result["echoed"], [1, "two", {"three": [True, None]}, [1, 2, 3]])
        self.assertEqual(result["acked"], ["x", [9]])
        self.assertEqual(result["answer"], [42, "from client"])
        return result

    @inlineCallbacks
    def check_reconnect(self: Any, transports: str) -> Any:
        result = yield self.scenario("reconnect", transports)
        self.assertNotEqual(result["first"], result["second"])
        self.assertEqual(result["reason"], "transport close")
        self.assertEqual(result["echo"], "after")
        self.assertEqual(self.reasons[result["first"]], "forced close")

    @inlineCallbacks
    def check_silent(self: Any, transports: str) -> Any:
        result = yield self.scenario("silent", transports)
        self.assertEqual(self.reasons[result["id"]], "ping timeout")

    @inlineCallbacks
    def test_rooms(self: Any) -> Any:
        """
        A broadcast to a room reaches the other members only.
        """
        result = yield self.scenario("rooms", "websocket")
        self.assertEqual(result["sent"], "sent")
        self.assertEqual(result["heard"], {"a": [], "b": ["hello room"], "c": []})

    def test_websocket(self: Any) -> Any:
        return self.check_basic("websocket", "websocket")

    def test_polling(self: Any) -> Any:
        return self.check_basic("polling", "polling")

    def test_upgrade(self: Any) -> Any:
        return self.check_basic("polling,websocket", "websocket")

    def test_reconnect_websocket(self: Any) -> Any:
        return self.check_reconnect("websocket")

    def test_reconnect_polling(self: Any) -> Any:
        return self.check_reconnect("polling")

    def test_silent_websocket(self: Any) -> Any:
        return self.check_silent("websocket")

    def test_silent_polling(self: Any) -> Any:
        return self.check_silent("polling")


class NodeV4ClientTests(NodeClientMixin, TestCase):
    """
    socket.io-client 4.x (Engine.IO 4, Socket.IO protocol v5).
    """

    version = "4"

    @inlineCallbacks
    def test_custom_namespace(self) -> Any:
        """
        The auth payload reaches a custom namespace's connect handler.
        """
        result = yield self.scenario("custom", "websocket")
        self.assertEqual(result["auth"], {"token": "v4-token"})
        self.assertNotIn("#", result["id"])

    @inlineCallbacks
    def test_auth(self) -> Any:
        """
        The C{auth} option reaches the connect handler.
        """
        result = yield self.check_basic("websocket", "websocket")
        self.assertEqual(result["auth"], {"token": "v4-token"})


class NodeV2ClientTests(NodeClientMixin, TestCase):
    """
    socket.io-client 2.x (Engine.IO 3, Socket.IO protocol v4).
    """

    version = "2"

    @inlineCallbacks
    def test_custom_namespace(self) -> Any:
        """
        A 2.x client's query reaches a custom namespace's connect handler as
        its auth, and its socket id there is C{/custom#<Engine.IO id>}.
        """
        result = yield self.scenario("custom", "websocket")
        self.assertEqual(result["auth"], {"token": "v2-token"})
        self.assertTrue(result["id"].startswith("/custom#"), result["id"])

    @inlineCallbacks
    def test_socket_id(self) -> Any:
        """
        A 2.x client's socket id in the main namespace is its Engine.IO id,
        and its connection is implicit (no auth payload).
        """
        result = yield self.check_basic("websocket", "websocket")
        self.assertEqual(result["auth"], {})
        self.assertIn(result["id"], self.reasons)


def _python_client(url: str, transports: list[str]) -> dict[str, Any]:
    """
    Talk to the server with C{python-socketio}'s blocking client (in a
    thread).
    """
    events: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("auth", lambda *args: events.put(("auth", args)))
    client.on("message-back", lambda *args: events.put(("message-back", args)))
    client.on("question", lambda value: (value * 2, "from python"))
    client.connect(url, transports=transports, auth={"token": "py"}, wait_timeout=5)
    try:
        auth = events.get(timeout=5)
        client.emit("message", (1, "two", b"\x01\x02"))
        echoed = events.get(timeout=5)
        acked = client.call("message-with-ack", ("x", b"\x09"), timeout=5)
        answer = client.call("ask-me", 21, timeout=5)
        sid = client.get_sid()
        transport = client.transport()
    finally:
        client.disconnect()
    return {
        "auth": auth,
        "echoed": echoed,
        "acked": acked,
        "answer": answer,
        "sid": sid,
        "transport": transport,
    }


def _python_reconnect(url: str) -> dict[str, Any]:
    """
    Have the server close the Engine.IO session under a C{python-socketio}
    client, and use the connection the client makes again.
    """
    connects: queue.Queue[str] = queue.Queue()
    client = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.2)
    client.on("connect", lambda: connects.put(client.get_sid()))
    client.connect(url, transports=["websocket"], wait_timeout=5)
    try:
        first = connects.get(timeout=5)
        client.emit("close-transport")
        second = connects.get(timeout=10)
        echo = client.call("message-with-ack", "after", timeout=5)
    finally:
        client.disconnect()
    return {"first": first, "second": second, "echo": echo}


class PythonClientTests(ServerMixin, TestCase):
    """
    The C{python-socketio} client.
    """

    def setUp(self) -> None:
        self.start_server()

    @inlineCallbacks
    def check(self, transports: list[str]) -> Any:
        result = yield deferToThread(_python_client, self.url, transports)
        self.assertEqual(result["auth"], ("auth", ({"token": "py"},)))
        self.assertEqual(result["echoed"], ("message-back", (1, "two", b"\x01\x02")))
        self.assertEqual(result["acked"], ("x", b"\x09"))
        self.assertEqual(result["answer"], (42, "from python"))
        self.assertEqual(result["transport"], transports[-1])
        return result

    def test_websocket(self) -> Any:
        return self.check(["websocket"])

    def test_polling(self) -> Any:
        return self.check(["polling"])

    def test_upgrade(self) -> Any:
        return self.check(["polling", "websocket"])

    @inlineCallbacks
    def test_reconnect(self) -> Any:
        """
        The client connects again after the server closed its session.
        """
        result = yield deferToThread(_python_reconnect, self.url)
        self.assertNotEqual(result["first"], result["second"])
        self.assertEqual(self.reasons[result["first"]], "forced close")
        self.assertEqual(result["echo"], "after")


def _websocket_echo(url: str) -> list[str | bytes]:
    """
    Send a text and a binary message to C{/echo} with C{websocket-client}.
    """
    connection = websocket.create_connection(url.replace("http", "ws") + "/echo", timeout=5)
    try:
        connection.send("hello")
        text = connection.recv()
        connection.send_binary(b"\x00\xff")
        binary = connection.recv()
    finally:
        connection.close()
    return [text, binary]


def _engineio_echo(url: str) -> list[str]:
    """
    Open an Engine.IO long-polling session on C{/engine.io/}, send a message
    and poll for its echo, with C{requests}.
    """
    base = url + "/engine.io/?EIO=4&transport=polling"
    handshake = requests.get(base, timeout=5).text
    sid = json.loads(handshake[1:])["sid"]
    session = f"{base}&sid={sid}"
    posted = requests.post(session, data="4hello", timeout=5).text
    polled = requests.get(session, timeout=5).text
    return [handshake[0], posted, polled]


class EchoEndpointTests(ServerMixin, TestCase):
    """
    The conformance site's other endpoints: C{/echo} and C{/engine.io/}.
    """

    def setUp(self) -> None:
        self.start_server()

    @inlineCallbacks
    def test_websocket_echo(self) -> Any:
        echoed = yield deferToThread(_websocket_echo, self.url)
        self.assertEqual(echoed, ["hello", b"\x00\xff"])

    @inlineCallbacks
    def test_engineio_echo(self) -> Any:
        exchanged = yield deferToThread(_engineio_echo, self.url)
        self.assertEqual(exchanged, ["0", "ok", "4hello"])
