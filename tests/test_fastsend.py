"""
Tests of L{xmeet.transport.send}: what one reactor turn writes reaches the
kernel in one C{send}, in order with everything else the connection sends,
over real TCP connections on 127.0.0.1 with Autobahn's client.
"""

from __future__ import annotations

import os
import pprint
import subprocess
import sys
from collections import deque
from socket import SO_RCVBUF, SO_SNDBUF, SOL_SOCKET
from typing import Any, cast

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
)
from autobahn.websocket.protocol import PreparedMessage
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

import xmeet
from tests.support import start_xmeet
from xmeet.config import Settings
from xmeet.transport.producer import SendQueue
from xmeet.transport.send import (
    FLUSH_AT,
    FLUSH_CHUNK,
    SPACING,
    FastSendProtocol,
    Outbox,
    format_lazily,
)


class CountingSocket:
    """
    A socket that counts the C{send} calls made on it and passes every
    call on to the real socket.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sends: list[int] = []

    def send(self, data: bytes) -> int:
        sent = cast(int, self.real.send(data))
        self.sends.append(sent)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class ServerProtocol(FastSendProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)


class ServerFactory(WebSocketServerFactory):
    protocol = ServerProtocol  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self.opened: Deferred[ServerProtocol] = Deferred()


class Client(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.put(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed.callback(code)


class ClientFactory(WebSocketClientFactory):
    protocol = Client  # type: ignore[assignment]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self.opened: Deferred[Client] = Deferred()
        self.closed: Deferred[int | None] = Deferred()
        self.messages: DeferredQueue[bytes] = DeferredQueue()


def _prepared(factory: WebSocketServerFactory, text: str) -> PreparedMessage:
    return cast(PreparedMessage, factory.prepareMessage(text.encode()))


class Connected:
    """
    A L{FastSendProtocol} server and an Autobahn client over TCP.
    """

    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        self.server_factory = ServerFactory()
        port = reactor.listenTCP(0, self.server_factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        number = cast(IPv4Address, port.getHost()).port
        self.client_factory = ClientFactory(f"ws://127.0.0.1:{number}/")
        reactor.connectTCP("127.0.0.1", number, self.client_factory)  # type: ignore[attr-defined]
        self.client = yield self.client_factory.opened
        self.server = yield self.server_factory.opened
        self.server.outbox = Outbox(reactor)  # type: ignore[arg-type]
        self.addCleanup(self._disconnect)
        self.socket = CountingSocket(self.server.transport.socket)  # type: ignore[union-attr]
        self.server.transport.socket = self.socket  # type: ignore[union-attr]

    def _disconnect(self) -> Deferred[int | None]:
        if not self.client_factory.closed.called:
            self.client.dropConnection()
        return self.client_factory.closed

    def end_turn(self) -> None:
        """
        Let the reactor turn end (the real reactor ends it by itself).
        """

    @inlineCallbacks
    def test_close_after_frames(self) -> Any:
        """
        A close started in the turn that sent frames reaches the client
        after them.
        """
        self.server.send_frame(_prepared(self.server_factory, "last words"))
        self.server.sendClose(code=4000, reason="bye")
        self.end_turn()
        self.assertEqual((yield self.received(1)), [b"last words"])
        self.assertEqual((yield self.client_factory.closed), 4000)

    @inlineCallbacks
    def received(self, count: int) -> Any:
        messages = []
        for _ in range(count):
            messages.append((yield self.client_factory.messages.get()))
        return messages


class CoalescedSendTests(Connected, TestCase):
    """
    Without a write delay.
    """

    @inlineCallbacks
    def test_one_send_per_turn(self) -> Any:
        """
        Prepared frames and Autobahn's own messages written in one turn
        leave in one C{send}, in the order they were written.
        """
        self.server.send_frame(_prepared(self.server_factory, "one"))
        self.server.sendMessage(b"two")
        self.server.send_frame(_prepared(self.server_factory, "three"))
        self.assertEqual(self.socket.sends, [])
        self.assertEqual((yield self.received(3)), [b"one", b"two", b"three"])
        self.assertEqual(len(self.socket.sends), 1)

    @inlineCallbacks
    def test_burst_meets_back_pressure(self) -> Any:
        """
        A burst beyond L{FLUSH_AT} is handed on before the turn ends; what
        the kernel cannot take waits in Twisted's buffer, which pauses the
        producer; everything arrives whole and in order.
        """
        self.server.transport.socket.setsockopt(SOL_SOCKET, SO_SNDBUF, 16384)  # type: ignore[union-attr]
        self.client.transport.socket.setsockopt(SOL_SOCKET, SO_RCVBUF, 16384)  # type: ignore[union-attr]
        paused: list[bool] = []
        self.server.registerProducer(_PauseRecorder(paused), True)  # type: ignore[arg-type]
        texts = [f"{n:04d}" + "x" * 1000 for n in range(4 * FLUSH_AT // 1000)]
        for text in texts:
            self.server.send_frame(_prepared(self.server_factory, text))
        self.assertTrue(self.socket.sends, "nothing was sent before the turn ended")
        self.assertIn(True, paused)
        self.assertEqual((yield self.received(len(texts))), [t.encode() for t in texts])

    @inlineCallbacks
    def test_written_while_draining(self) -> Any:
        """
        While Twisted's buffer still holds bytes, later frames go behind
        them, not around them.
        """
        self.server.transport.socket.setsockopt(SOL_SOCKET, SO_SNDBUF, 16384)  # type: ignore[union-attr]
        self.client.transport.socket.setsockopt(SOL_SOCKET, SO_RCVBUF, 16384)  # type: ignore[union-attr]
        big = "b" * (2 * FLUSH_AT)
        self.server.sendMessage(big.encode())
        self.server.outbox.flush()
        self.assertTrue(self.server.transport.dataBuffer or self.server.transport._tempDataLen)  # type: ignore[union-attr]
        self.server.send_frame(_prepared(self.server_factory, "after"))
        self.assertEqual((yield self.received(2)), [big.encode(), b"after"])

    @inlineCallbacks
    def test_aborted_before_the_turn_ends(self) -> Any:
        """
        Bytes pending for a connection aborted in the same turn are
        dropped quietly.
        """
        self.server.send_frame(_prepared(self.server_factory, "never"))
        self.server.transport.abortConnection()  # type: ignore[union-attr]
        yield self.client_factory.closed
        self.assertEqual(self.socket.sends, [])
        self.assertEqual(self.client_factory.messages.pending, [])


class WriteDelayTests(Connected, TestCase):
    """
    The same connection with a write delay whose spacing is now 10 ms, on
    a clock of the test's own: a busy connection waits, a quiet one does
    not.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.clock = Clock()
        self.clock.advance(100)
        self.server.outbox = Outbox(self.clock, 0.010)
        self.server.outbox.spacing = 0.010

    def send(self, *texts: str) -> None:
        for text in texts:
            self.server.send_frame(_prepared(self.server_factory, text))

    @inlineCallbacks
    def test_busy_connection_waits(self) -> Any:
        """
        After a flush of several frames, what comes within the delay waits
        for its end and leaves in one C{send}.
        """
        self.send("one", "two")
        self.clock.advance(0)
        self.assertEqual(len(self.socket.sends), 1)
        self.send("three")
        self.clock.advance(0.005)
        self.send("four")
        self.clock.advance(0.004)
        self.assertEqual(len(self.socket.sends), 1)
        self.clock.advance(0.001)
        self.assertEqual(len(self.socket.sends), 2)
        self.assertEqual((yield self.received(4)), [b"one", b"two", b"three", b"four"])

    @inlineCallbacks
    def test_quiet_connection_does_not_wait(self) -> Any:
        """
        After a flush of one frame, the next leaves at the end of its turn.
        """
        self.send("one")
        self.clock.advance(0)
        self.send("two")
        self.clock.advance(0)
        self.assertEqual(len(self.socket.sends), 2)
        self.assertEqual((yield self.received(2)), [b"one", b"two"])

    @inlineCallbacks
    def test_after_the_delay(self) -> Any:
        """
        A busy connection written to after its delay is over does not wait.
        """
        self.send("one", "two")
        self.clock.advance(0)
        self.clock.advance(0.011)
        self.send("three")
        self.clock.advance(0)
        self.assertEqual(len(self.socket.sends), 2)
        self.assertEqual((yield self.received(3)), [b"one", b"two", b"three"])

    @inlineCallbacks
    def test_closing_busy_connection(self) -> Any:
        """
        When Autobahn closes a busy connection (here after answering the
        client's close), what waits for the delay is sent first.
        """
        self.send("one", "two")
        self.clock.advance(0)
        self.send("three")
        self.client.sendClose(code=1000)
        code = yield self.client_factory.closed
        self.assertEqual((yield self.received(3)), [b"one", b"two", b"three"])
        self.assertEqual((code, self.client.wasClean), (1000, True))

    @inlineCallbacks
    def test_stop(self) -> Any:
        """
        Stopping the outbox sends what waits and leaves no timer.
        """
        self.send("one", "two")
        self.clock.advance(0)
        self.send("three")
        self.server.outbox.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((yield self.received(3)), [b"one", b"two", b"three"])

    @inlineCallbacks
    def test_one_send_per_turn(self) -> Any:
        """
        As without a delay, once the turn ends.
        """
        self.server.send_frame(_prepared(self.server_factory, "one"))
        self.server.sendMessage(b"two")
        self.assertEqual(self.socket.sends, [])
        self.clock.advance(0)
        self.assertEqual((yield self.received(2)), [b"one", b"two"])
        self.assertEqual(len(self.socket.sends), 1)

    def end_turn(self) -> None:
        self.clock.advance(0)


class _Flushed:
    """
    Stands for a connection: records the flushes it is asked for.
    """

    batched_at = 0.0

    def __init__(self, timer: _Timer) -> None:
        self.timer = timer
        self.flushes: list[float | None] = []

    def flush_pending(self, now: float | None = None) -> None:
        self.flushes.append(now)
        self.timer.now += self.timer.cost


def _add_flushed(outbox: Outbox, timer: _Timer, connections: int) -> list[_Flushed]:
    """
    C{connections} new recording connections, each with bytes for
    C{outbox} to flush.
    """
    added = [_Flushed(timer) for _ in range(connections)]
    for connection in added:
        outbox.add(connection)  # type: ignore[arg-type]
    return added


class _Timer:
    """
    A performance counter whose flushes cost C{cost} seconds each.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.cost = 0.0

    def __call__(self) -> float:
        return self.now


class SpacingTests(SynchronousTestCase):
    """
    The spacing of busy connections follows how long big flushes take.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.timer = _Timer()
        self.outbox = Outbox(self.clock, 0.010, self.timer)

    def flush(self, connections: int, cost: float) -> list[_Flushed]:
        self.timer.cost = cost
        flushed = _add_flushed(self.outbox, self.timer, connections)
        while self.clock.getDelayedCalls():
            self.clock.advance(0)
        return flushed

    def test_follows_big_flushes(self) -> None:
        """
        A flush of 32 connections taking 0.5 ms in all spaces busy
        connections by eight times that; a slower one by the write delay
        at most.
        """
        self.assertEqual(self.outbox.spacing, 0)
        self.flush(32, 0.5e-3 / 32)
        self.assertAlmostEqual(self.outbox.spacing, 0.004)
        self.flush(1000, 10e-6)
        self.assertEqual(self.outbox.spacing, 0.010)

    def test_measured_over_every_chunk(self) -> None:
        """
        A flush that takes several reactor turns sets the spacing once, from
        the time all its chunks took, when the last is sent.
        """
        self.flush(FLUSH_CHUNK * 2 + 1, 5e-6)
        self.assertAlmostEqual(self.outbox.spacing, SPACING * (FLUSH_CHUNK * 2 + 1) * 5e-6)

    def test_small_flushes_say_nothing(self) -> None:
        """
        Flushes of fewer connections leave the spacing as it is.
        """
        self.flush(40, 25e-6)
        self.flush(31, 1e-3)
        self.assertAlmostEqual(self.outbox.spacing, 0.008)

    def test_without_delay(self) -> None:
        """
        Without a write delay there is no spacing, however long flushes
        take.
        """
        outbox = Outbox(self.clock, 0.0, self.timer)
        self.timer.cost = 1.0
        _add_flushed(outbox, self.timer, 40)
        self.clock.advance(0)
        self.assertEqual(outbox.spacing, 0)


class ChunkTests(TestCase):
    """
    With a write delay, due connections leave L{FLUSH_CHUNK} per reactor
    turn, first come first served, so that a big flush lets the reactor
    read between chunks. The reactor is the real one: L{Clock} runs the
    calls a call makes for now within the same C{advance}, where the
    reactor leaves them to its next turn.
    """

    def setUp(self) -> None:
        self.timer = _Timer()
        self.outbox = Outbox(reactor, 0.010, self.timer)
        self.addCleanup(self.outbox.stop)

    def due(self, connections: int) -> list[_Flushed]:
        return _add_flushed(self.outbox, self.timer, connections)

    def turn(self) -> Deferred[None]:
        """
        Fires after the calls the reactor has for now, not those they make.
        """
        return deferLater(reactor, 0, lambda: None)

    @staticmethod
    def flushed(connections: list[_Flushed]) -> int:
        return sum(1 for connection in connections if connection.flushes)

    @inlineCallbacks
    def test_one_chunk_per_turn(self) -> Any:
        """
        The end of the turn flushes the first chunk; each later turn the
        next, until none is left, each connection once.
        """
        due = self.due(FLUSH_CHUNK * 2 + 10)
        flushed = []
        for _ in range(4):
            yield self.turn()
            flushed.append(self.flushed(due))
        self.assertEqual(flushed, [FLUSH_CHUNK, FLUSH_CHUNK * 2, len(due), len(due)])
        self.assertEqual({len(connection.flushes) for connection in due}, {1})

    @inlineCallbacks
    def test_first_come_first_served(self) -> Any:
        """
        Connections due while a flush is under way are flushed after those
        already waiting.
        """
        first = self.due(FLUSH_CHUNK * 2 + 5)
        yield self.turn()
        second = self.due(3)
        yield self.turn()
        self.assertEqual((self.flushed(first), self.flushed(second)), (FLUSH_CHUNK * 2, 0))
        yield self.turn()
        self.assertEqual((self.flushed(first), self.flushed(second)), (len(first), len(second)))

    @inlineCallbacks
    def test_without_delay_in_one_turn(self) -> Any:
        """
        Without a write delay every connection written in a turn is flushed
        at its end, however many there are.
        """
        outbox = Outbox(reactor, 0.0, self.timer)
        due = _add_flushed(outbox, self.timer, FLUSH_CHUNK * 3)
        yield self.turn()
        self.assertEqual(self.flushed(due), len(due))

    @inlineCallbacks
    def test_stop_during_a_flush(self) -> Any:
        """
        Stopping the outbox while a flush is under way sends what is left
        at once and leaves no timer.
        """
        due = self.due(FLUSH_CHUNK * 3)
        yield self.turn()
        self.assertEqual(self.flushed(due), FLUSH_CHUNK)
        self.outbox.stop()
        self.assertEqual(self.flushed(due), len(due))
        outbox_calls = [
            call
            for call in reactor.getDelayedCalls()
            if getattr(call.func, "__self__", None) is self.outbox
        ]
        self.assertEqual(outbox_calls, [])


class _PauseRecorder:
    def __init__(self, paused: list[bool]) -> None:
        self.paused = paused

    def pauseProducing(self) -> None:
        self.paused.append(True)

    def resumeProducing(self) -> None:
        self.paused.append(False)

    def stopProducing(self) -> None:
        pass


class OtherTransportTests(TestCase):
    """
    Transports that are not plain TCP sockets are written to at once.
    """

    def test_string_transport(self) -> None:
        protocol = FastSendProtocol()
        transport = StringTransport()
        protocol.transport = transport
        protocol.send_queue = deque()
        protocol.sendData(b"now")
        self.assertEqual(transport.value(), b"now")


class LazyFormattingTests(SynchronousTestCase):
    """
    Autobahn's debug log arguments are formatted only when rendered, and
    then read as before.
    """

    def setUp(self) -> None:
        format_lazily()

    def test_rendered_alike(self) -> None:
        options = [("autoPingInterval", 25, "XnestFactory")] * 3
        lazy = autobahn.websocket.protocol.pformat(options)
        self.assertNotIsInstance(lazy, str)
        self.assertEqual(formatEvent({"log_format": "{x}", "x": lazy}), pprint.pformat(options))
        for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
            self.assertEqual(str(module.hltype(len)), autobahn.util.hltype(len))
            self.assertEqual(
                str(module.hlval(3, color="green")), autobahn.util.hlval(3, color="green")
            )

    def test_once(self) -> None:
        """
        Applying it again wraps nothing twice.
        """
        before = autobahn.websocket.protocol.hltype
        format_lazily()
        self.assertIs(autobahn.websocket.protocol.hltype, before)

    def test_not_at_import(self) -> None:
        """
        Importing the front ends patches nothing: the node does it when
        it starts.
        """
        check = (
            "import autobahn.util, autobahn.websocket.protocol as p, xmeet.service; "
            "assert p.hltype is autobahn.util.hltype"
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(xmeet.__file__)))
        result = subprocess.run(
            [sys.executable, "-c", check], capture_output=True, check=False, cwd=root
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())


class NodeWiringTests(TestCase):
    """
    A node's WebSocket front ends share one outbox with the write delay
    of its settings.
    """

    def test_settings_reach_the_outbox(self) -> None:
        node = start_xmeet(self, Settings(write_delay=0.02)).node
        self.assertEqual(node.outbox.delay, 0.02)
        self.assertIs(node.gate.outbox, node.outbox)
        self.assertIs(node.engine.websocket_factory.protocol.outbox, node.outbox)


class _Sent:
    """
    Stands for a protocol: records the frames sent through it.
    """

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_frame(self, message: Any) -> None:
        self.sent.append(message)


class SendQueueTests(SynchronousTestCase):
    """
    The bounded queue of frames waiting for a client that does not read.
    """

    def setUp(self) -> None:
        factory = WebSocketServerFactory()
        self.frames = [_prepared(factory, text) for text in ("one", "two", "three")]
        self.wire = len(self.frames[0].payloadHybi)

    def test_limits(self) -> None:
        """
        Frames are kept up to either limit; past it, refused.
        """
        by_frames = SendQueue()
        self.assertTrue(by_frames.take(self.frames[0], 2, 1000))
        self.assertTrue(by_frames.take(self.frames[1], 2, 1000))
        self.assertFalse(by_frames.take(self.frames[2], 2, 1000))
        self.assertEqual((len(by_frames), by_frames.size), (2, 2 * self.wire))
        by_bytes = SendQueue()
        self.assertTrue(by_bytes.take(self.frames[0], 10, self.wire))
        self.assertFalse(by_bytes.take(self.frames[1], 10, self.wire))
        self.assertEqual((len(by_bytes), by_bytes.size), (1, self.wire))

    def test_drain(self) -> None:
        """
        Draining sends in order until blocked, counts out what it sent and
        says whether anything is left.
        """
        queue = SendQueue()
        for frame in self.frames:
            queue.take(frame, 10, 1000)
        protocol = _Sent()
        self.assertFalse(queue.drain(protocol, lambda: len(protocol.sent) == 2))  # type: ignore[arg-type]
        self.assertEqual(protocol.sent, self.frames[:2])
        self.assertEqual(queue.size, len(self.frames[2].payloadHybi))
        self.assertTrue(queue.drain(protocol, lambda: False))  # type: ignore[arg-type]
        self.assertEqual((protocol.sent, queue.size), (self.frames, 0))
