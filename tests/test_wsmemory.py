"""
Tests of L{xmeet.transport.lean}: a lean protocol class reads its factory's
options, and a compacted open connection keeps only what differs from its
class, without any reader seeing a difference.
"""

from __future__ import annotations

import gc
import weakref
from collections import deque
from typing import Any, cast

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.support import upgrade_request
from xmeet.transport.lean import UpgradeResource, compact, lean_protocol

HANDSHAKE = upgrade_request(b"/room?x=1")


class Recorder(WebSocketServerProtocol):
    def onConnect(self, request: Any) -> None:
        self.seen_path = request.path

    def onOpen(self) -> None:
        compact(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.received.append(payload)


def _accept(payload: Any) -> None:
    return None


def open_connection(**options: Any) -> tuple[Any, StringTransport, WebSocketServerFactory]:
    """
    A server connection to a lean L{Recorder}, open over a memory transport.
    """
    factory = WebSocketServerFactory(reactor=Clock())
    factory.setProtocolOptions(
        openHandshakeTimeout=0,
        closeHandshakeTimeout=0,
        perMessageCompressionAccept=_accept,
        **options,
    )
    factory.protocol = lean_protocol(Recorder, factory)
    factory.received = []  # type: ignore[attr-defined]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(HANDSHAKE)
    assert protocol.state == WebSocketProtocol.STATE_OPEN
    return protocol, transport, factory


def _client_frame(payload: bytes) -> bytes:
    """
    A masked client text frame (mask 0, so the payload is as it is).
    """
    return bytes([0x81, 0x80 | len(payload), 0, 0, 0, 0]) + payload


class LeanProtocolTests(SynchronousTestCase):
    def test_options_on_class(self) -> None:
        """
        The factory's options are class attributes of the lean class, so
        a connection holds no copy of them and still reads them; a
        function option stays a plain function.
        """
        protocol, _, factory = open_connection(maxMessagePayloadSize=1234)
        self.assertEqual(type(protocol).__name__, "Recorder")
        self.assertIsInstance(protocol, Recorder)
        self.assertNotIn("maxMessagePayloadSize", vars(protocol))
        self.assertEqual(protocol.maxMessagePayloadSize, 1234)
        self.assertIs(protocol.perMessageCompressionAccept, _accept)
        for name in WebSocketServerProtocol.CONFIG_ATTRS:
            self.assertNotIn(name, vars(protocol))
            self.assertEqual(getattr(protocol, name), getattr(factory, name), name)


class CompactTests(SynchronousTestCase):
    def test_quiet_state_from_class(self) -> None:
        """
        After L{compact}, the quiet state is read from the class, and the
        instance dictionary is much smaller than Autobahn leaves it.
        """
        protocol, _, _ = open_connection()
        self.assertNotIn("wasClean", vars(protocol))
        self.assertIs(protocol.wasClean, False)
        self.assertIsNone(protocol.closeHandshakeTimeoutCall)
        self.assertEqual(protocol.seen_path, "/room")
        self.assertLess(len(vars(protocol)), 45)

    def test_handshake_leftovers_dropped(self) -> None:
        """
        The raw handshake and its parsed parts read as empty once compacted.
        """
        protocol, _, _ = open_connection()
        self.assertEqual(protocol.http_request_data, b"")
        self.assertEqual(protocol.http_response_data, "")
        self.assertEqual(protocol.http_request_uri, "")
        self.assertEqual(dict(protocol.http_headers), {})
        self.assertEqual(dict(protocol.http_request_params), {})

    def test_send_queue_light(self) -> None:
        """
        Autobahn's empty send queue becomes a list with C{popleft}, in
        order like a C{deque}.
        """
        protocol, _, _ = open_connection()
        queue = protocol.send_queue
        self.assertNotIsInstance(queue, deque)
        queue.append(1)
        queue.append(2)
        self.assertEqual((len(queue), queue.popleft(), queue.popleft()), (2, 1, 2))

    def test_still_works(self) -> None:
        """
        A compacted connection receives and sends messages and closes as
        before.
        """
        protocol, transport, factory = open_connection()
        protocol.dataReceived(_client_frame(b"hello"))
        self.assertEqual(factory.received, [b"hello"])  # type: ignore[attr-defined]
        transport.clear()
        protocol.sendMessage(b"back")
        self.assertEqual(transport.value(), b"\x81\x04back")
        protocol.sendClose(1000)
        self.assertEqual(protocol.state, WebSocketProtocol.STATE_CLOSING)
        self.assertIs(protocol.closedByMe, True)
        self.assertIn("closedByMe", vars(protocol))

    def test_changed_state_kept(self) -> None:
        """
        An attribute that differs from its class value stays on the
        instance.
        """
        protocol, _, _ = open_connection()
        protocol.wasClean = True
        compact(protocol)
        self.assertIs(protocol.wasClean, True)
        self.assertIs(type(protocol).wasClean, False)


class WatchedUpgrade(UpgradeResource):
    """
    Keeps weak references to the HTTP request and channel of each upgrade.
    """

    def __init__(self, factory: WebSocketServerFactory) -> None:
        super().__init__(factory)
        self.watched: list[weakref.ref[Any]] = []

    def render(self, request: Request) -> bytes | int:
        self.watched += [weakref.ref(request), weakref.ref(request.channel)]
        return super().render(request)


class OpenedClient(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed.callback(None)


class UpgradeResourceTests(TestCase):
    """
    L{UpgradeResource} over a real connection on 127.0.0.1.
    """

    timeout = 20

    async def test_http_side_released(self) -> None:
        """
        Once the WebSocket is open, the request and the HTTP channel of its
        upgrade are gone, without the cycle collector: nothing keeps them.
        """
        server_factory = WebSocketServerFactory()
        server_factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        server_factory.protocol = WebSocketServerProtocol
        upgrade = WatchedUpgrade(server_factory)
        root = Resource()
        root.putChild(b"ws", upgrade)
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        number = cast(IPv4Address, port.getHost()).port
        client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{number}/ws")
        client_factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        client_factory.protocol = OpenedClient
        client_factory.opened = Deferred()  # type: ignore[attr-defined]
        client_factory.closed = Deferred()  # type: ignore[attr-defined]
        gc.disable()
        self.addCleanup(gc.enable)
        reactor.connectTCP("127.0.0.1", number, client_factory)  # type: ignore[attr-defined]
        client = await client_factory.opened  # type: ignore[attr-defined]
        self.assertEqual(len(upgrade.watched), 2)
        self.assertEqual([ref() for ref in upgrade.watched], [None, None])
        client.dropConnection()
        await client_factory.closed  # type: ignore[attr-defined]
