"""
The Engine.IO WebSocket transport's send queue, bounded in packets and in
bytes, over real connections on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from xmeet.engineio import EngineIOServer
from xmeet.engineio.websocket import WebSocketTransport

from .test_engineio_session import RecordingHandler
from .test_engineio_websocket import RecordingClientFactory, serve

#: "4" and 100 characters: a 101-byte payload, a 103-byte frame.
TEXT = "x" * 100
FRAME = 103


class SendQueueBytesTests(TestCase):
    """
    C{max_buffered_bytes}: a paused WebSocket's queue counts the bytes of
    the frames waiting in it.
    """

    timeout = 20

    def setUp(self) -> None:
        self.handler = RecordingHandler(echo=False)
        self.server = EngineIOServer(
            reactor,
            self.handler,
            ping_interval=5,
            ping_timeout=5,
            max_payload=1000,
            max_buffered_packets=10_000,
            max_buffered_bytes=9 * FRAME + 50,
            websocket_options={"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0},
        )
        self.address = serve(self, self.server)

    @inlineCallbacks
    def open_session(self) -> Any:
        """
        Open a WebSocket session; return its client factory, the session
        and its transport.
        """
        factory = RecordingClientFactory(
            f"ws://{self.address}/engine.io/?EIO=4&transport=websocket"
        )
        host, port = self.address.split(":")
        reactor.connectTCP(host, int(port), factory)
        yield factory.opened
        opened = yield factory.messages.get()
        socket = self.server.sockets[json.loads(opened[1:])["sid"]]
        transport = socket._transport
        assert isinstance(transport, WebSocketTransport)
        self.addCleanup(lambda: factory.closed)
        self.addCleanup(factory.client.dropConnection)
        return factory, socket, transport

    @inlineCallbacks
    def test_dropped_past_byte_limit(self) -> Any:
        """
        A paused connection's queue takes packets up to the byte limit
        (far below the packet limit); the next packet drops the client.
        """
        factory, socket, transport = yield self.open_session()
        transport.connection.pauseProducing()
        for _ in range(9):
            socket.send(TEXT)
        self.assertEqual(transport.connection._queue.size, 9 * FRAME)
        self.assertEqual(self.handler.lost, [])
        socket.send(TEXT)
        self.assertEqual(self.handler.lost, ["transport error"])
        yield factory.closed

    @inlineCallbacks
    def test_bytes_released_on_resume(self) -> Any:
        """
        What was sent on resume no longer counts: two pauses, each under
        the limit and together over it, keep the client, which gets every
        packet in order; the emptied queue is released.
        """
        factory, socket, transport = yield self.open_session()
        expected = []
        for round_ in range(2):
            transport.connection.pauseProducing()
            for number in range(9):
                text = f"{round_}{number}" + TEXT[2:]
                expected.append(f"4{text}")
                socket.send(text)
            transport.connection.resumeProducing()
            self.assertIsNone(transport.connection._queue)
        received = []
        for _ in expected:
            received.append((yield factory.messages.get()))
        self.assertEqual(received, expected)
        self.assertEqual(self.handler.lost, [])
