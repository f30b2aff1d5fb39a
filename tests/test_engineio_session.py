# -*- test-case-name: tests.test_engineio_session -*-
"""
Tests for the Engine.IO session state machine (L{xmeet.engineio.socket}),
the long-polling transport and the server registry, in memory: time is a
L{Clock}, requests are L{DummyRequest}s, a WebSocket is a fake transport.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from io import BytesIO
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmeet.engineio import (
    EngineIOServer,
    EngineIOSocket,
    IEngineIOHandler,
    Packet,
    PacketType,
    PreparedPacket,
)
from xmeet.engineio.websocket import WebSocketTransport

INTERVAL = 25.0
TIMEOUT = 20.0


@implementer(IEngineIOHandler)
class RecordingHandler:
    """
    Records every event; optionally echoes messages.
    """

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.made: list[EngineIOSocket] = []
        self.messages: list[str | bytes] = []
        self.lost: list[str] = []

    def connection_made(self, socket: EngineIOSocket) -> None:
        self.made.append(socket)

    def message_received(self, socket: EngineIOSocket, data: str | bytes) -> None:
        self.messages.append(data)
        if self.echo:
            socket.send(data)

    def connection_lost(self, socket: EngineIOSocket, reason: str) -> None:
        self.lost.append(reason)


class FakeWebSocket:
    """
    A WebSocket transport that records what the session does with it.
    """

    name = "websocket"

    def __init__(self) -> None:
        self.sent: list[Packet] = []
        self.shut: list[bool] = []
        self.socket: EngineIOSocket | None = None

    def write(self, packet: PreparedPacket) -> None:
        self.sent.append(packet.packet)

    def shutdown(self, polite: bool) -> None:
        self.shut.append(polite)

    def drain_and_close(self, done: Callable[[], None]) -> None:
        done()

    def prompt_upgrade(self) -> None:
        pass

    def cancel_upgrade(self) -> None:
        pass

    def hand_over(self) -> list[PreparedPacket]:
        return []

    def take_over(self, socket: EngineIOSocket) -> None:
        self.socket = socket

    def receive(self, packet: Packet) -> None:
        assert self.socket is not None
        self.socket.packet_received(self, packet)


def make_server(**kwargs: Any) -> tuple[EngineIOServer, Clock, RecordingHandler]:
    """
    A server on a fake clock with a recording handler.
    """
    clock = Clock()
    handler = RecordingHandler(echo=kwargs.pop("echo", False))
    settings: dict[str, Any] = {
        "ping_interval": INTERVAL,
        "ping_timeout": TIMEOUT,
        "max_payload": 1000,
    }
    settings.update(kwargs)
    return EngineIOServer(clock, handler, **settings), clock, handler


def make_request(
    method: bytes = b"GET",
    query: dict[str, str] | None = None,
    body: bytes = b"",
    headers: dict[bytes, bytes] | None = None,
) -> DummyRequest:
    """
    An in-memory request with a query string, body and headers.
    """
    request = DummyRequest([b""])
    request.method = method
    request.uri = b"/engine.io/"
    for name, value in (query or {}).items():
        request.addArg(name.encode(), value.encode())
    for header, header_value in (headers or {}).items():
        request.requestHeaders.addRawHeader(header, header_value)
    request.content = BytesIO(body)  # type: ignore[attr-defined]
    return request


def as_request(request: DummyRequest) -> Request:
    """
    Type a L{DummyRequest} as the L{Request} it stands in for.
    """
    return cast(Request, request)


def body_of(request: DummyRequest) -> bytes:
    """
    Everything written to C{request}.
    """
    return b"".join(request.written)


def header(request: DummyRequest, name: bytes) -> bytes | None:
    """
    The response header C{name}, if set.
    """
    values = request.responseHeaders.getRawHeaders(name)
    return values[-1] if values else None


class PollingSession:
    """
    Drives one long-polling session of a server through its polling
    transport, as the HTTP resource would.
    """

    def __init__(self, server: EngineIOServer, revision: int = 4, **query: str) -> None:
        self.server = server
        self.query = {"EIO": str(revision), "transport": "polling", **query}
        request = make_request(query=self.query)
        server.open_polling(as_request(request), revision, self.query, {}, "127.0.0.1")
        self.handshake = body_of(request)
        self.sid = next(reversed(server.sockets))
        self.socket = server.sockets[self.sid]

    def get(self) -> DummyRequest:
        """
        Start a poll; returns the request (finished or pending).
        """
        request = make_request(query=dict(self.query, sid=self.sid))
        polling = self.socket.polling_transport()
        assert polling is not None
        result = polling.handle_get(as_request(request))
        if result is not NOT_DONE_YET:
            assert isinstance(result, bytes)
            request.write(result)
            request.finish()
        return request

    def post(self, body: bytes, content_type: bytes | None = None) -> DummyRequest:
        """
        Send a payload; returns the finished request.
        """
        headers = {b"content-type": content_type} if content_type else {}
        request = make_request(b"POST", dict(self.query, sid=self.sid), body, headers)
        polling = self.socket.polling_transport()
        assert polling is not None
        request.write(polling.handle_post(as_request(request)))
        request.finish()
        return request


class HandshakeTests(SynchronousTestCase):
    """
    Opening a session.
    """

    def test_open_packet(self) -> None:
        """
        The handshake answer is the open packet with the session settings,
        in milliseconds, and the handler hears of the session afterwards.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        self.assertTrue(session.handshake.startswith(b"0"))
        opened = json.loads(session.handshake[1:])
        self.assertEqual(
            opened,
            {
                "sid": session.sid,
                "upgrades": ["websocket"],
                "pingInterval": 25000,
                "pingTimeout": 20000,
                "maxPayload": 1000,
            },
        )
        self.assertEqual(handler.made, [session.socket])
        self.assertEqual(session.socket.transport_name, "polling")
        self.assertEqual(session.socket.revision, 4)
        self.assertEqual(session.socket.remote_address, "127.0.0.1")

    def test_v3_open_packet(self) -> None:
        """
        A revision 3 handshake is a length-prefixed payload.
        """
        server, _, _ = make_server()
        session = PollingSession(server, revision=3)
        length, _, packet = session.handshake.decode().partition(":")
        self.assertEqual(int(length), len(packet))
        self.assertTrue(packet.startswith("0{"))

    def test_sids_unique(self) -> None:
        """
        Every session gets its own id, 20 URL-safe characters like the
        official server's.
        """
        server, _, _ = make_server()
        sids = {PollingSession(server).sid for _ in range(50)}
        self.assertEqual(len(sids), 50)
        self.assertTrue(all(len(sid) == 20 for sid in sids))

    def test_handler_interface(self) -> None:
        """
        The recording handler (like any handler) provides the interface.
        """
        self.assertTrue(verifyObject(IEngineIOHandler, RecordingHandler()))


class HeartbeatTests(SynchronousTestCase):
    """
    Revision 4: the server pings; revision 3: the client pings.
    """

    def test_server_pings(self) -> None:
        """
        After C{pingInterval} the pending poll receives a ping; a pong
        starts the next interval.
        """
        server, clock, handler = make_server()
        session = PollingSession(server)
        poll = session.get()
        clock.advance(INTERVAL - 0.1)
        self.assertFalse(poll.finished)
        clock.advance(0.1)
        self.assertEqual(body_of(poll), b"2")
        session.post(b"3")
        clock.advance(TIMEOUT + 1)
        self.assertEqual(handler.lost, [])
        poll = session.get()
        clock.advance(INTERVAL - TIMEOUT - 1)
        self.assertEqual(body_of(poll), b"2")

    def test_ping_timeout(self) -> None:
        """
        No pong within C{pingTimeout} of a ping ends the session.
        """
        server, clock, handler = make_server()
        session = PollingSession(server)
        clock.advance(INTERVAL)
        clock.advance(TIMEOUT - 0.1)
        self.assertEqual(handler.lost, [])
        clock.advance(0.1)
        self.assertEqual(handler.lost, ["ping timeout"])
        self.assertNotIn(session.sid, server.sockets)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_one_timer(self) -> None:
        """
        A session keeps a single delayed call for its heartbeat.
        """
        server, clock, _ = make_server()
        session = PollingSession(server)
        for _ in range(5):
            clock.advance(INTERVAL)
            session.post(b"3")
            self.assertEqual(len(clock.getDelayedCalls()), 1)

    def test_v3_client_pings(self) -> None:
        """
        In revision 3 the server answers pings with pongs, and ends the
        session after C{pingInterval + pingTimeout} without one.
        """
        server, clock, handler = make_server()
        session = PollingSession(server, revision=3)
        clock.advance(INTERVAL)
        session.post(b"1:2")
        self.assertEqual(body_of(session.get()), b"1:3")
        clock.advance(INTERVAL + TIMEOUT - 1)
        self.assertEqual(handler.lost, [])
        clock.advance(1)
        self.assertEqual(handler.lost, ["ping timeout"])

    def test_wrong_direction(self) -> None:
        """
        A ping from a revision 4 client, or a pong from a revision 3 one, is
        a transport error.
        """
        for revision, body in [(4, b"2"), (3, b"1:3")]:
            server, _, handler = make_server()
            session = PollingSession(server, revision=revision)
            session.post(body)
            self.assertEqual(handler.lost, ["transport error"])


class PollingTests(SynchronousTestCase):
    """
    Long-polling: payloads both ways, one poll at a time, limits.
    """

    def test_messages_in(self) -> None:
        """
        Text and base64 binary messages of a payload reach the handler in
        order, and the POST is answered C{ok}.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        post = session.post(b"4hello\x1ebAQIDBA==\x1e4\xc3\xa9")
        self.assertEqual(body_of(post), b"ok")
        self.assertEqual(handler.messages, ["hello", b"\x01\x02\x03\x04", "é"])

    def test_messages_out_batched(self) -> None:
        """
        Messages sent while no poll waits are batched into the next poll.
        """
        server, _, _ = make_server()
        session = PollingSession(server)
        session.socket.send("a")
        session.socket.send(b"\x01")
        session.socket.send_prepared(server.prepare("é"))
        poll = session.get()
        self.assertEqual(body_of(poll), "4a\x1ebAQ==\x1e4é".encode())
        self.assertEqual(header(poll, b"content-type"), b"text/plain; charset=UTF-8")
        self.assertEqual(header(poll, b"cache-control"), b"no-store")

    def test_pending_poll_answered(self) -> None:
        """
        A message sent while a poll waits answers it at once.
        """
        server, _, _ = make_server()
        session = PollingSession(server)
        poll = session.get()
        self.assertFalse(poll.finished)
        session.socket.send("now")
        self.assertEqual(body_of(poll), b"4now")

    def test_overlapping_poll(self) -> None:
        """
        A second poll while one waits is refused with 400 and ends the
        session; the first poll gets a close packet.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        first = session.get()
        second = session.get()
        self.assertEqual(second.responseCode, 400)
        self.assertEqual(body_of(first), b"1")
        self.assertEqual(handler.lost, ["transport error"])
        self.assertNotIn(session.sid, server.sockets)

    def test_poll_lost(self) -> None:
        """
        A poll whose connection drops ends the session.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        session.get().processingFailed(Failure(ConnectionDone()))
        self.assertEqual(handler.lost, ["transport error"])

    def test_parse_error(self) -> None:
        """
        A malformed record is answered 400 and ends the session, after the
        messages before it were delivered.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        post = session.post(b"4first\x1eabc\x1e4never")
        self.assertEqual(post.responseCode, 400)
        self.assertEqual(json.loads(body_of(post)), {"code": 3, "message": "Bad request"})
        self.assertEqual(handler.messages, ["first"])
        self.assertEqual(handler.lost, ["parse error"])

    def test_payload_too_large(self) -> None:
        """
        A body over C{maxPayload} is answered 413, as the official server
        does, and its packets are ignored.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        post = session.post(b"4" + b"x" * 1000)
        self.assertEqual(post.responseCode, 413)
        self.assertEqual(handler.messages, [])
        self.assertEqual(session.post(b"4" + b"x" * 999).responseCode, None)
        self.assertEqual(len(handler.messages), 1)

    def test_v4_binary_body_refused(self) -> None:
        """
        Revision 4 bodies are text; an octet-stream body is a transport error.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        post = session.post(b"\x04abc", b"application/octet-stream")
        self.assertEqual(post.responseCode, 400)
        self.assertEqual(handler.lost, ["transport error"])

    def test_client_close(self) -> None:
        """
        A close packet ends the session; the waiting poll gets a noop.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        poll = session.get()
        session.post(b"1")
        self.assertEqual(body_of(poll), b"6")
        self.assertEqual(handler.lost, ["transport close"])

    def test_buffer_bounded(self) -> None:
        """
        A client that does not poll while messages pile up is dropped once
        the buffer is full.
        """
        server, _, handler = make_server(max_buffered_packets=10)
        session = PollingSession(server)
        for n in range(10):
            session.socket.send(str(n))
        self.assertEqual(handler.lost, [])
        session.socket.send("one too many")
        self.assertEqual(handler.lost, ["transport error"])

    def test_buffer_bounded_in_bytes(self) -> None:
        """
        The buffer is bounded in bytes too, counted as the answer's
        records: UTF-8 bytes, not characters. Bytes answered by a poll no
        longer count.
        """
        # "4" and 30 three-byte characters: a 91-byte record.
        text = "字" * 30
        server, _, handler = make_server(max_buffered_packets=1000, max_buffered_bytes=5 * 91)
        session = PollingSession(server)
        for _ in range(5):
            session.socket.send(text)
        self.assertEqual(body_of(session.get()), "\x1e".join([f"4{text}"] * 5).encode())
        for _ in range(5):
            session.socket.send(text)
        self.assertEqual(handler.lost, [])
        session.socket.send("4")
        self.assertEqual(handler.lost, ["transport error"])

    def test_compressed_answers(self) -> None:
        """
        Answers of 1024 bytes or more are compressed with the coding the
        client prefers among gzip and deflate; smaller ones are not.
        """
        for accept, coding, decompress in [
            (b"gzip, deflate", b"gzip", lambda b: zlib.decompress(b, 31)),
            (b"deflate", b"deflate", zlib.decompress),
        ]:
            server, _, _ = make_server()
            session = PollingSession(server)
            session.socket.send("x" * 1023)
            request = make_request(query=dict(session.query, sid=session.sid))
            request.requestHeaders.addRawHeader(b"accept-encoding", accept)
            polling = session.socket.polling_transport()
            assert polling is not None
            polling.handle_get(as_request(request))
            self.assertEqual(header(request, b"content-encoding"), coding)
            self.assertEqual(decompress(body_of(request)), b"4" + b"x" * 1023)
            self.assertEqual(int(header(request, b"content-length") or 0), len(body_of(request)))
            session.socket.send("small")
            small = make_request(query=dict(session.query, sid=session.sid))
            small.requestHeaders.addRawHeader(b"accept-encoding", accept)
            polling.handle_get(as_request(small))
            self.assertIsNone(header(small, b"content-encoding"))

    def test_compression_needs_acceptance(self) -> None:
        """
        Without an Accept-Encoding that allows it (or with compression
        disabled), large answers go uncompressed.
        """
        for accept, threshold in [(None, 1024), (b"gzip;q=0", 1024), (b"gzip", None)]:
            server, _, _ = make_server(http_compression_threshold=threshold)
            session = PollingSession(server)
            session.socket.send("x" * 2000)
            request = make_request(query=dict(session.query, sid=session.sid))
            if accept is not None:
                request.requestHeaders.addRawHeader(b"accept-encoding", accept)
            polling = session.socket.polling_transport()
            assert polling is not None
            polling.handle_get(as_request(request))
            self.assertIsNone(header(request, b"content-encoding"))
            self.assertEqual(body_of(request), b"4" + b"x" * 2000)

    def test_v3_binary_payload(self) -> None:
        """
        A revision 3 client with binary support gets binary payloads as
        octet-stream, and may send them.
        """
        server, _, handler = make_server()
        session = PollingSession(server, revision=3)
        session.socket.send(b"\x01")
        poll = session.get()
        self.assertEqual(body_of(poll), b"\x01\x02\xff\x04\x01")
        self.assertEqual(header(poll, b"content-type"), b"application/octet-stream")
        session.post(b"\x00\x02\xff4a\x01\x02\xff\x04\x02", b"application/octet-stream")
        self.assertEqual(handler.messages, ["a", b"\x02"])

    def test_v3_base64(self) -> None:
        """
        A revision 3 client that asked for C{b64} gets base64 segments.
        """
        server, _, _ = make_server()
        session = PollingSession(server, revision=3, b64="1")
        session.socket.send(b"\x01")
        self.assertEqual(body_of(session.get()), b"6:b4AQ==")


class CloseTests(SynchronousTestCase):
    """
    Server-side closes.
    """

    def test_forced_close_with_poll(self) -> None:
        """
        C{close()} delivers what is buffered then a close packet to the
        waiting poll, and the handler hears C{"forced close"}.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        poll = session.get()
        session.socket.close()
        self.assertEqual(body_of(poll), b"1")
        self.assertEqual(handler.lost, ["forced close"])
        self.assertNotIn(session.sid, server.sockets)

    def test_forced_close_waits_for_poll(self) -> None:
        """
        Without a waiting poll, the session lives on until the next poll
        has carried the buffered packets and the close packet.
        """
        server, _, handler = make_server()
        session = PollingSession(server)
        session.socket.send("bye")
        session.socket.close()
        session.socket.send("ignored")
        self.assertEqual(handler.lost, [])
        self.assertEqual(body_of(session.get()), b"4bye\x1e1")
        self.assertEqual(handler.lost, ["forced close"])

    def test_forced_close_times_out(self) -> None:
        """
        If no poll comes, the session ends after 30 seconds.
        """
        server, clock, handler = make_server()
        PollingSession(server).socket.close()
        clock.advance(29)
        self.assertEqual(handler.lost, [])
        clock.advance(1)
        self.assertEqual(handler.lost, ["forced close"])
        self.assertEqual(server.sockets, {})

    def test_failure_while_closing(self) -> None:
        """
        A session that fails while waiting to deliver its close packet ends
        for that failure, and leaves no timer behind.
        """
        server, clock, handler = make_server()
        session = PollingSession(server)
        session.socket.close()
        session.post(b"abc")
        self.assertEqual(handler.lost, ["parse error"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_close_all(self) -> None:
        """
        C{close_all} ends every session at once.
        """
        server, clock, handler = make_server()
        first, second = PollingSession(server), PollingSession(server)
        poll = first.get()
        server.close_all()
        self.assertEqual(handler.lost, ["server shutting down"] * 2)
        self.assertEqual(body_of(poll), b"1")
        self.assertEqual(server.sockets, {})
        self.assertEqual(clock.getDelayedCalls(), [])
        second.socket.send("nothing")

    def test_handler_failure_logged(self) -> None:
        """
        An exception in the handler is logged, not raised into the reactor.
        """
        server, _, handler = make_server()

        def broken(socket: EngineIOSocket, data: str | bytes) -> None:
            raise RuntimeError("bug above")

        handler.message_received = broken  # type: ignore[method-assign]
        session = PollingSession(server)
        self.assertEqual(body_of(session.post(b"4x")), b"ok")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn(session.sid, server.sockets)


class UpgradeTests(SynchronousTestCase):
    """
    The polling to WebSocket upgrade dance.
    """

    def setUp(self) -> None:
        self.server, self.clock, self.handler = make_server()
        self.session = PollingSession(self.server)
        self.socket = self.session.socket
        self.websocket = FakeWebSocket()
        self.websocket.take_over(self.socket)
        self.assertTrue(self.socket.can_upgrade())
        self.socket.start_upgrade(self.websocket)

    def test_upgrade(self) -> None:
        """
        A probe is answered C{3probe}, the waiting poll gets a noop, and the
        upgrade packet moves the session (and its buffer) to the WebSocket.
        """
        poll = self.session.get()
        self.websocket.receive(Packet(PacketType.PING, "probe"))
        self.assertEqual(self.websocket.sent, [Packet(PacketType.PONG, "probe")])
        self.assertEqual(body_of(poll), b"6")
        self.socket.send("buffered")
        self.websocket.receive(Packet(PacketType.UPGRADE))
        self.assertEqual(self.socket.transport_name, "websocket")
        self.assertIsNone(self.socket.polling_transport())
        self.assertEqual(self.websocket.sent[-1], Packet(PacketType.MESSAGE, "buffered"))
        self.websocket.receive(Packet(PacketType.MESSAGE, "over ws"))
        self.assertEqual(self.handler.messages, ["over ws"])
        self.assertFalse(self.socket.can_upgrade())

    def test_polls_during_upgrade(self) -> None:
        """
        After a successful probe, a poll is answered at once (noop, or the
        packets waiting).
        """
        self.websocket.receive(Packet(PacketType.PING, "probe"))
        self.assertEqual(body_of(self.session.get()), b"6")
        self.socket.send("x")
        self.assertEqual(body_of(self.session.get()), b"4x")

    def test_messages_before_upgrade_go_to_polling(self) -> None:
        """
        Until the upgrade packet, the session still uses polling, and only
        one WebSocket may probe.
        """
        self.assertFalse(self.socket.can_upgrade())
        self.assertTrue(self.socket.upgrading)
        self.socket.send("still polling")
        self.assertEqual(body_of(self.session.get()), b"4still polling")

    def test_upgrade_without_probe(self) -> None:
        """
        An upgrade packet before the probe aborts the upgrade.
        """
        self.websocket.receive(Packet(PacketType.UPGRADE))
        self.assertEqual(self.websocket.shut, [True])
        self.assertEqual(self.socket.transport_name, "polling")
        self.assertTrue(self.socket.can_upgrade())

    def test_upgrade_timeout(self) -> None:
        """
        A WebSocket that does not complete the upgrade is closed after the
        upgrade timeout; the session goes on polling.
        """
        self.websocket.receive(Packet(PacketType.PING, "probe"))
        self.clock.advance(10)
        self.assertEqual(self.websocket.shut, [True])
        self.assertEqual(self.socket.transport_name, "polling")
        poll = self.session.get()
        self.assertFalse(poll.finished)
        self.assertEqual(self.handler.lost, [])

    def test_probe_closes(self) -> None:
        """
        The probing WebSocket going away leaves the session alone.
        """
        self.socket.transport_closed(self.websocket)
        self.assertEqual(self.handler.lost, [])
        self.assertTrue(self.socket.can_upgrade())

    def test_session_ends_during_upgrade(self) -> None:
        """
        Ending the session closes the probing WebSocket too.
        """
        self.socket.close()
        self.clock.advance(30)
        self.assertEqual(self.websocket.shut, [True])
        self.assertEqual(self.handler.lost, ["forced close"])

    def test_after_upgrade_close(self) -> None:
        """
        Once upgraded, the WebSocket closing ends the session.
        """
        self.websocket.receive(Packet(PacketType.PING, "probe"))
        self.websocket.receive(Packet(PacketType.UPGRADE))
        self.socket.transport_closed(self.websocket)
        self.assertEqual(self.handler.lost, ["transport close"])


class FakeConnection:
    """
    Just enough of an Autobahn protocol for L{WebSocketTransport}.
    """

    transport = None

    def __init__(self, query: dict[str, str]) -> None:
        self.query = query
        self.sent: list[bytes] = []
        self.closed = False

    def unregisterProducer(self) -> None:
        pass

    def become_producer(self, unregister: object) -> None:
        pass

    def send_bounded(self, message: Any) -> None:
        self.sent.append(message.payload)

    def sendClose(self) -> None:
        self.closed = True


class MalformedInputTests(SynchronousTestCase):
    """
    Whatever a client sends, nothing raises out of the session: it goes on
    or ends with an official reason.
    """

    @given(st.binary(), st.sampled_from([3, 4]), st.booleans())
    @settings(max_examples=300)
    def test_polling_bodies(self, body: bytes, revision: int, binary: bool) -> None:
        """
        Any POST body is answered 200, 400 or 413.
        """
        server, _, handler = make_server()
        session = PollingSession(server, revision=revision)
        content_type = b"application/octet-stream" if binary else None
        post = session.post(body, content_type)
        self.assertIn(post.responseCode, (None, 400, 413))
        self.assertTrue(set(handler.lost) <= {"parse error", "transport error", "transport close"})

    @given(st.binary(), st.booleans(), st.sampled_from([3, 4]))
    @settings(max_examples=300)
    def test_websocket_messages(self, payload: bytes, is_binary: bool, revision: int) -> None:
        """
        Any WebSocket message, even invalid UTF-8 in a text frame, is a
        packet or a parse error.
        """
        server, _, handler = make_server()
        connection = FakeConnection({"EIO": str(revision)})
        transport = WebSocketTransport(connection, revision)  # type: ignore[arg-type]
        socket = server._open(transport, revision, {}, {}, "")
        transport.message(payload, is_binary)
        self.assertTrue(set(handler.lost) <= {"parse error", "transport error", "transport close"})
        self.assertEqual(socket.closed, bool(handler.lost))
