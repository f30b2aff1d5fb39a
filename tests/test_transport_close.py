"""
No WebSocket data frame follows a close frame, in either front end, in
memory: a call answered after its client closed, a close while frames
wait for a client that does not read, and xgate's own closes (1008,
1009) while frames wait.
"""

from __future__ import annotations

import struct
from random import Random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import upgrade_request
from xmeet.config import Settings
from xmeet.core.ids import IdGenerator
from xmeet.engineio import EngineIOServer
from xmeet.rooms import RoomService
from xmeet.socketio import SocketIOServer
from xmeet.store.memory import MemoryRoomBackend
from xmeet.xgate import XgateResource
from xmeet.xgate.protocol import CLOSE_POLICY

HANDSHAKE = upgrade_request(b"/socket.io/?EIO=4&transport=websocket")

CLOSE = 8


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """
    A masked client frame (mask 0, so the payload is as it is).
    """
    if len(payload) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    return head + b"\0\0\0\0" + payload


def server_frames(written: bytes) -> list[tuple[int, bytes]]:
    """
    The frames (opcode, payload) a server wrote after its 101 response.
    """
    data = written.split(b"\r\n\r\n", 1)[1]
    frames = []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if length == 126:
            (length,) = struct.unpack("!H", data[2:4])
            start = 4
        frames.append((opcode, data[start : start + length]))
        data = data[start + length :]
    return frames


def assert_nothing_after_close(case: SynchronousTestCase, written: bytes) -> list[bytes]:
    """
    Fail if a frame follows the first close frame; return the data
    payloads before it.
    """
    frames = server_frames(written)
    opcodes = [opcode for opcode, _ in frames]
    case.assertIn(CLOSE, opcodes)
    case.assertEqual(opcodes[-1], CLOSE, f"frames after the close frame: {frames}")
    return [payload for opcode, payload in frames if opcode != CLOSE]


class SocketIOAfterCloseTests(TestCase):
    """
    A Socket.IO client emits a call and closes at once, both in one read.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.engine = EngineIOServer(
            self.clock,
            None,
            ping_interval=25,
            ping_timeout=20,
            max_payload=100_000,
            websocket_options={"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0},
        )
        self.sio = SocketIOServer(self.engine, self.clock)
        self.answers: list[Deferred[str]] = []

        @self.sio.of("/").on("call")
        def call(socket: Any) -> Deferred[str]:
            answer: Deferred[str] = Deferred()
            self.answers.append(answer)
            return answer

        self.protocol: Any = self.engine.websocket_factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(HANDSHAKE + client_frame(b"40"))

    def test_answer_after_client_close(self) -> None:
        """
        The answer of a call whose client closed the connection in the
        same read is not written after the close frame.
        """
        self.protocol.dataReceived(client_frame(b'420["call"]') + client_frame(b"", CLOSE))
        self.answers[0].callback("done")
        self.clock.advance(1)
        assert_nothing_after_close(self, self.transport.value())

    def test_sent_after_client_close(self) -> None:
        """
        A packet sent to the session between the client's close frame and
        the end of its TCP connection is not written after the close
        frame.
        """
        self.protocol.dataReceived(client_frame(b"41") + client_frame(b"", CLOSE))
        next(iter(self.engine.sockets.values())).send("late")
        self.clock.advance(1)
        assert_nothing_after_close(self, self.transport.value())

    def test_answer_before_server_close(self) -> None:
        """
        An answer given before the server closes the session goes out
        before the close frame.
        """
        self.protocol.dataReceived(client_frame(b'420["call"]'))
        self.answers[0].callback("done")
        next(iter(self.engine.sockets.values())).close()
        self.clock.advance(1)
        data = assert_nothing_after_close(self, self.transport.value())
        self.assertEqual(data[-1], b'430["done"]')

    def test_queued_for_slow_client(self) -> None:
        """
        Packets waiting for a client that stopped reading go out before
        the close frame when the server closes the session, none after.
        """
        self.protocol.pauseProducing()
        session = next(iter(self.engine.sockets.values()))
        session.send("one")
        session.send("two")
        session.close()
        self.protocol.resumeProducing()
        self.clock.advance(1)
        data = assert_nothing_after_close(self, self.transport.value())
        self.assertEqual(data[-2:], [b"4one", b"4two"])


class XgateCloseTests(TestCase):
    """
    xgate's own closes while frames wait for a member that stopped
    reading: the waiting frames go first, then the close frame, then
    nothing.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        settings = Settings(max_message_size=200, rate=1000, burst=1000)
        backend = MemoryRoomBackend("n1", settings.max_idle_rooms, settings.history_bytes)
        self.rooms = RoomService(self.clock, settings, IdGenerator("n1"), backend)
        gate = XgateResource(self.rooms, settings, self.clock, Random(1))
        self.protocol: Any = gate.factory("hall").buildProtocol(None)
        # Autobahn's timers run on the global reactor whatever the clock.
        self.protocol.openHandshakeTimeout = 0
        self.protocol.closeHandshakeTimeout = 0
        self.protocol.autoPingInterval = 0
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(
            HANDSHAKE.replace(b"/socket.io/?EIO=4&transport=websocket", b"/xgate/websocket/hall")
        )
        self.assertIsNotNone(self.protocol.member)

    def queue_errors(self) -> None:
        """
        Pause the connection, then send it two frames, which wait.
        """
        self.protocol.pauseProducing()
        self.rooms.send_error(self.protocol.member, "first")
        self.rooms.send_error(self.protocol.member, "second")

    def assert_closed_after_queue(self, code: int) -> None:
        self.protocol.resumeProducing()
        self.clock.advance(1)
        frames = server_frames(self.transport.value())
        data = assert_nothing_after_close(self, self.transport.value())
        self.assertIn(b"first", data[-2])
        self.assertIn(b"second", data[-1])
        self.assertEqual(struct.unpack("!H", frames[-1][1][:2])[0], code)

    def test_policy_close(self) -> None:
        """
        A close with 1008 (flood, expired token).
        """
        self.queue_errors()
        self.protocol.close_with(CLOSE_POLICY, "sending far above the rate limit")
        self.assert_closed_after_queue(CLOSE_POLICY)

    def test_too_big(self) -> None:
        """
        Autobahn's close with 1009 for a message over the size limit.
        """
        self.queue_errors()
        self.protocol.dataReceived(client_frame(b"x" * 300))
        self.assert_closed_after_queue(1009)
