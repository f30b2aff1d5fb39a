# -*- test-case-name: tests.test_engineio_websocket -*-
"""
Tests of the WebSocket transport frame by frame, with an Autobahn client
in the test's reactor against a real port: what the official clients never
send (bad packets, oversized messages, revision 3 binary frames, a second
WebSocket for one session) and the prepared broadcast path.
"""

from __future__ import annotations

import json
import secrets
from socket import SO_RCVBUF, SO_SNDBUF, SOL_SOCKET
from typing import Any, cast

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
    PerMessageDeflateResponseAccept,
)
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from xmeet.engineio import EngineIOResource, EngineIOServer
from xmeet.engineio.prepared import WebSocketFlavour
from xmeet.engineio.websocket import WebSocketTransport

from .test_engineio_session import PollingSession, RecordingHandler


def serve(testcase: TestCase, server: EngineIOServer) -> str:
    """
    Serve C{server} at C{/engine.io/} on a free port of 127.0.0.1 until the
    test ends (closing its sessions); return C{HOST:PORT}.
    """
    root = Resource()
    root.putChild(b"engine.io", EngineIOResource(server))
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[arg-type]
    testcase.addCleanup(port.stopListening)
    testcase.addCleanup(server.close_all)
    return f"127.0.0.1:{cast(IPv4Address, port.getHost()).port}"


class RecordingClient(WebSocketClientProtocol):
    """
    Queues every message and fires C{closed} with the close code.
    """

    factory: RecordingClientFactory

    def onOpen(self) -> None:
        self.factory.client = self
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.put(payload if isBinary else payload.decode())

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))
        self.factory.closed.callback(code)


class RecordingClientFactory(WebSocketClientFactory):
    protocol = RecordingClient  # type: ignore[assignment]

    client: RecordingClient

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # Autobahn's batched handshake timers would outlive the test.
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self.opened: Deferred[RecordingClient] = Deferred()
        self.closed: Deferred[int | None] = Deferred()
        self.messages: DeferredQueue[str | bytes] = DeferredQueue()


class WebSocketTests(TestCase):
    """
    Raw WebSocket conversations with the Engine.IO endpoint.
    """

    timeout = 20
    websocket_options: dict[str, Any] = {}
    client_options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.handler = RecordingHandler(echo=True)
        self.server = EngineIOServer(
            reactor,
            self.handler,
            ping_interval=5,
            ping_timeout=5,
            max_payload=1000,
            websocket_options={
                "openHandshakeTimeout": 0,
                "closeHandshakeTimeout": 0,
                **self.websocket_options,
            },
        )
        self.address = serve(self, self.server)

    @inlineCallbacks
    def connect(self, query: str) -> Any:
        """
        Open a WebSocket to C{/engine.io/?query}; return its factory.
        """
        factory = RecordingClientFactory(f"ws://{self.address}/engine.io/?{query}")
        factory.setProtocolOptions(**self.client_options)
        host, port = self.address.split(":")
        reactor.connectTCP(host, int(port), factory)
        yield factory.opened
        self.addCleanup(self.disconnect, factory)
        return factory

    def disconnect(self, factory: RecordingClientFactory) -> Deferred[int | None]:
        """
        Drop the client's connection and wait until it is gone.
        """
        factory.client.dropConnection()
        return factory.closed

    @inlineCallbacks
    def open_session(self, query: str = "EIO=4&transport=websocket") -> Any:
        """
        Open a WebSocket session and read its open packet.
        """
        factory = yield self.connect(query)
        opened = yield factory.messages.get()
        self.assertTrue(opened.startswith("0"))
        return factory, json.loads(opened[1:])

    @inlineCallbacks
    def test_open_and_echo(self) -> Any:
        """
        A direct WebSocket session advertises no upgrades and echoes text
        and raw binary frames.
        """
        factory, opened = yield self.open_session()
        self.assertEqual(opened["upgrades"], [])
        self.assertEqual(self.server.sockets[opened["sid"]].transport_name, "websocket")
        client = factory.client
        client.sendMessage(b"4hello")
        self.assertEqual((yield factory.messages.get()), "4hello")
        client.sendMessage(b"\x01\x02", isBinary=True)
        self.assertEqual((yield factory.messages.get()), b"\x01\x02")
        self.assertEqual(self.handler.messages, ["hello", b"\x01\x02"])

    @inlineCallbacks
    def close_code_after(self, message: bytes) -> Any:
        """
        Send C{message} on a new session; return the close code that ends
        the connection.
        """
        factory, _ = yield self.open_session()
        factory.client.sendMessage(message)
        code = yield factory.closed
        return code

    @inlineCallbacks
    def test_parse_error(self) -> Any:
        """
        A malformed packet closes the connection: C{"parse error"}.
        """
        yield self.close_code_after(b"abc")
        self.assertEqual(self.handler.lost, ["parse error"])

    @inlineCallbacks
    def test_too_large(self) -> Any:
        """
        A message over C{maxPayload} closes with 1009: C{"transport error"}.
        """
        self.assertEqual((yield self.close_code_after(b"4" + b"x" * 1000)), 1009)
        self.assertEqual(self.handler.lost, ["transport error"])

    @inlineCallbacks
    def test_close_packet(self) -> Any:
        """
        A close packet ends the session: C{"transport close"}.
        """
        yield self.close_code_after(b"1")
        self.assertEqual(self.handler.lost, ["transport close"])

    @inlineCallbacks
    def test_server_close(self) -> Any:
        """
        C{close()} sends a close frame; the handler hears C{"forced close"}.
        """
        factory, opened = yield self.open_session()
        self.server.sockets[opened["sid"]].close()
        yield factory.closed
        self.assertEqual(self.handler.lost, ["forced close"])

    @inlineCallbacks
    def test_close_all(self) -> Any:
        """
        C{close_all} closes every WebSocket session: C{"server shutting
        down"}.
        """
        first, _ = yield self.open_session()
        second, _ = yield self.open_session()
        self.server.close_all()
        yield first.closed
        yield second.closed
        self.assertEqual(self.handler.lost, ["server shutting down"] * 2)
        self.assertEqual(self.server.sockets, {})

    @inlineCallbacks
    def test_v3_binary(self) -> Any:
        """
        Revision 3 binary frames carry the packet type byte; with C{b64}
        they become C{b4<base64>} text frames.
        """
        factory, _ = yield self.open_session("EIO=3&transport=websocket")
        factory.client.sendMessage(b"\x04\x01\x02", isBinary=True)
        self.assertEqual((yield factory.messages.get()), b"\x04\x01\x02")
        factory, _ = yield self.open_session("EIO=3&transport=websocket&b64=1")
        factory.client.sendMessage(b"b4AQI=")
        self.assertEqual((yield factory.messages.get()), "b4AQI=")

    @inlineCallbacks
    def test_prepared_broadcast(self) -> Any:
        """
        One prepared packet is framed once and reaches every WebSocket.
        """
        first, _ = yield self.open_session()
        second, _ = yield self.open_session()
        prepared = self.server.prepare("to all")
        for socket in list(self.server.sockets.values()):
            socket.send_prepared(prepared)
        self.assertEqual((yield first.messages.get()), "4to all")
        self.assertEqual((yield second.messages.get()), "4to all")
        frame = prepared.frame(WebSocketFlavour.V4)
        self.assertIs(prepared.frame(WebSocketFlavour.V3), frame)

    @inlineCallbacks
    def test_second_websocket_refused(self) -> Any:
        """
        Once a session is upgraded, another WebSocket for it is closed
        right after its handshake.
        """
        session = PollingSession(self.server)
        factory = yield self.connect(f"EIO=4&transport=websocket&sid={session.sid}")
        client = factory.client
        client.sendMessage(b"2probe")
        self.assertEqual((yield factory.messages.get()), "3probe")
        client.sendMessage(b"5")
        second = yield self.connect(f"EIO=4&transport=websocket&sid={session.sid}")
        yield second.closed
        client.sendMessage(b"4still here")
        self.assertEqual((yield factory.messages.get()), "4still here")
        self.assertEqual(session.socket.transport_name, "websocket")

    @inlineCallbacks
    def test_paused_connection_queues(self) -> Any:
        """
        While TCP pushes back, packets wait in order and go out on resume.
        """
        factory, opened = yield self.open_session()
        socket = self.server.sockets[opened["sid"]]
        transport = socket._transport
        assert isinstance(transport, WebSocketTransport)
        transport.connection.pauseProducing()
        for n in range(3):
            socket.send(str(n))
        self.assertEqual(len(transport.connection._queue), 3)
        transport.connection.resumeProducing()
        for n in range(3):
            self.assertEqual((yield factory.messages.get()), f"4{n}")

    @inlineCallbacks
    def test_slow_client_dropped(self) -> Any:
        """
        A client that cannot keep up is dropped once its queue is full.
        """
        factory, opened = yield self.open_session()
        socket = self.server.sockets[opened["sid"]]
        transport = socket._transport
        assert isinstance(transport, WebSocketTransport)
        transport.connection.pauseProducing()
        for _ in range(self.server.max_buffered_packets):
            socket.send("x")
        self.assertEqual(self.handler.lost, [])
        socket.send("one too many")
        self.assertEqual(self.handler.lost, ["transport error"])
        yield factory.closed

    @inlineCallbacks
    def test_tcp_pushback(self) -> Any:
        """
        The real TCP connection pauses the WebSocket when its buffer fills
        and resumes it when drained: a burst far beyond the buffer arrives
        whole and in order.
        """
        factory, opened = yield self.open_session()
        socket = self.server.sockets[opened["sid"]]
        transport = socket._transport
        assert isinstance(transport, WebSocketTransport)
        # Small kernel buffers, as over a slow network: the burst cannot
        # all sit in the kernel, so Twisted's buffer fills.
        _shrink_buffer(transport.connection.transport, SO_SNDBUF)
        _shrink_buffer(factory.client.transport, SO_RCVBUF)
        # distinct random text, so that compression cannot shrink the burst
        texts = [f"{n} {secrets.token_urlsafe(750)}" for n in range(150)]
        for text in texts:
            socket.send(text)
        self.assertTrue(transport.connection._queue, "the TCP transport never paused the WebSocket")
        for text in texts:
            self.assertEqual((yield factory.messages.get()), "4" + text)
        self.assertFalse(transport.connection._queue)
        self.assertEqual(self.handler.lost, [])


def _shrink_buffer(transport: Any, option: int) -> None:
    transport.socket.setsockopt(SOL_SOCKET, option, 4096)


def _accept_deflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class CompressedWebSocketTests(WebSocketTests):
    """
    Every WebSocket test again with permessage-deflate negotiated (through
    C{websocket_options}): prepared packets are then compressed per
    connection by Autobahn instead of written as prepared frames.
    """

    websocket_options = {"perMessageCompressionAccept": _accept_deflate}
    client_options = {
        "perMessageCompressionOffers": [PerMessageDeflateOffer()],
        "perMessageCompressionAccept": PerMessageDeflateResponseAccept,
    }

    @inlineCallbacks
    def test_compression_negotiated(self) -> Any:
        """
        The server side of the connection really compresses.
        """
        _, opened = yield self.open_session()
        transport = self.server.sockets[opened["sid"]]._transport
        assert isinstance(transport, WebSocketTransport)
        self.assertIsNotNone(transport.connection._perMessageCompress)
