"""
The deadline for receiving an HTTP request (L{xmeet.web.DeadlineChannel}):
a slowloris client is answered 408 and disconnected, a slow but steady
body and everything answered slowly (long-polls, WebSocket connections)
are not.

In memory first, with a L{Clock} and a L{StringTransport} driving the
channels of the site C{build_node} makes; then hundreds of slow clients
on a real port.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock, LoopingCall
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.http_memory import InMemoryConnection
from tests.support import http_client, start_xmeet
from tests.xgate_client import connect, xnest_url
from xmeet.config import Settings
from xmeet.service import build_node


class DeadlineTests(SynchronousTestCase):
    """
    Requests arriving too slowly, in memory.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = build_node(
            self.clock, Settings(header_timeout=10, body_min_rate=100, ping_interval=25)
        )

    def connect(self) -> InMemoryConnection:
        connection = InMemoryConnection(self.node.site)
        self.addCleanup(connection.end)
        return connection

    def assert_timed_out(self, connection: InMemoryConnection) -> None:
        """
        The connection got 408 with the JSON error object and was closed.
        """
        self.assertTrue(connection.closed)
        self.assertEqual(connection.status(), 408)
        head, body = connection.written().split(b"\r\n\r\n", 1)
        self.assertIn(b"connection: close", head.lower())
        self.assertEqual(json.loads(body)["error"]["code"], "request_timeout")

    def test_header_line_every_five_seconds(self) -> None:
        """
        One header line every 5 s (each resets twisted.web's idle timeout):
        the connection is answered 408 and closed 10 s after the request's
        first byte, and counted.
        """
        connection = self.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\n")
        for number in range(3):
            connection.send(b"X-Slow-%d: yes\r\n" % number)
            self.clock.advance(4.9 if number == 1 else 5)
            if number < 2:
                self.assertFalse(connection.closed)
        self.assert_timed_out(connection)
        self.assertEqual(self.node.site.request_timeouts, 1)
        numbers = self.node.numbers()
        self.assertEqual(numbers["xmeet_http_request_timeouts"], 1)

    def test_partial_request_line(self) -> None:
        """
        The deadline starts with the first byte, before any whole line.
        """
        connection = self.connect()
        connection.send(b"G")
        self.clock.advance(5)
        connection.send(b"E")
        self.clock.advance(5)
        self.assert_timed_out(connection)

    def test_headers_in_time(self) -> None:
        """
        Headers that arrive within the deadline, however slowly, are
        answered; the deadline does not fire afterwards.
        """
        connection = self.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\n")
        self.clock.advance(9)
        connection.send(b"Host: x\r\n\r\n")
        self.assertEqual(connection.status(), 200)
        self.clock.advance(30)
        self.assertFalse(connection.closed)
        self.assertEqual(self.node.site.request_timeouts, 0)

    def post(self, connection: InMemoryConnection, length: int) -> None:
        connection.send(
            b"POST /xgate/http HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
        )

    def test_body_too_slow(self) -> None:
        """
        A body arriving at 50 B/s against a minimum of 100 B/s: the
        allowance is 10 s plus one second per 100 bytes, so at 50 B/s it
        runs out after 20 s.
        """
        connection = self.connect()
        self.post(connection, 10000)
        for _ in range(9):
            connection.send(b" " * 100)
            self.clock.advance(2)
        self.assertFalse(connection.closed)
        connection.send(b" " * 100)
        self.clock.advance(2)
        self.assert_timed_out(connection)

    def test_body_stalls(self) -> None:
        """
        A body that never starts has the header timeout.
        """
        connection = self.connect()
        self.post(connection, 10)
        self.clock.advance(9.9)
        self.assertFalse(connection.closed)
        self.clock.advance(0.1)
        self.assert_timed_out(connection)

    def test_chunked_body_stalls(self) -> None:
        """
        A chunked body (no length known) is timed the same way: its 10
        bytes so far add a tenth of a second to the 10 s.
        """
        connection = self.connect()
        connection.send(
            b"POST /xgate/http HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\n{}   \r\n"
        )
        self.clock.advance(10.05)
        self.assertFalse(connection.closed)
        self.clock.advance(0.1)
        self.assert_timed_out(connection)

    def test_slow_body_in_rate(self) -> None:
        """
        A body arriving at 200 B/s, above the minimum rate, takes 50 s and
        is answered.
        """
        document = json.dumps({"request_id": 7, "method": "members", "params": {"xnest": "a"}})
        body = document.encode().ljust(10000)
        connection = self.connect()
        self.post(connection, len(body))
        for start in range(0, len(body), 200):
            connection.send(body[start : start + 200])
            self.clock.advance(1)
        self.assertFalse(connection.closed)
        self.assertEqual(connection.status(), 200)
        self.assertIn(b'"request_id":7', connection.written())

    def test_keep_alive_then_slow_request(self) -> None:
        """
        A kept-alive connection idles between requests as before (the
        minute of idle timeout); the next request's deadline starts with
        its first byte.
        """
        connection = self.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(connection.status(), 200)
        self.clock.advance(50)
        self.assertFalse(connection.closed)
        connection.transport.clear()
        connection.send(b"GET /healthz HTTP/1.1\r\n")
        self.clock.advance(9)
        connection.send(b"X: 1\r\n")
        self.assertFalse(connection.closed)
        self.clock.advance(1)
        self.assert_timed_out(connection)

    def handshake(self) -> str:
        """
        An Engine.IO long-polling session's id.
        """
        connection = self.connect()
        connection.send(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(connection.status(), 200)
        body = connection.written().split(b"\r\n\r\n", 1)[1]
        start = body.index(b"{")
        session: str = json.loads(body[start : body.rindex(b"}") + 1])["sid"]
        return session

    def test_long_poll_unaffected(self) -> None:
        """
        A long-polling GET is complete once its headers are: it waits its
        25 s for the heartbeat, well past the header deadline, and is
        answered then.
        """
        sid = self.handshake().encode()
        connection = self.connect()
        connection.send(
            b"GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n" % sid
        )
        self.clock.advance(20)
        self.assertFalse(connection.closed)
        self.assertEqual(connection.written(), b"")
        self.clock.advance(5)
        self.assertEqual(connection.status(), 200)
        self.assertTrue(connection.written().endswith(b"2"))
        self.assertEqual(self.node.site.request_timeouts, 0)

    def test_pipelined_after_long_poll(self) -> None:
        """
        A request that arrives while a long-poll is waiting gets its
        deadline from the end of the long-poll's response, not from its
        first byte.
        """
        sid = self.handshake().encode()
        connection = self.connect()
        connection.send(
            b"GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\n" % sid
        )
        self.clock.advance(25)
        self.assertEqual(connection.status(), 200)
        self.assertFalse(connection.closed)
        self.clock.advance(9.9)
        self.assertFalse(connection.closed)
        self.clock.advance(0.1)
        self.assertTrue(connection.closed)
        self.assertIn(b"HTTP/1.1 408 ", connection.written())

    def test_bad_request_is_json(self) -> None:
        """
        A malformed request line gets 400 with the JSON error object.
        """
        connection = self.connect()
        connection.send(b"GET /\x00 HTTP/1.1\r\n\r\n")
        self.assertTrue(connection.closed)
        self.assertEqual(connection.status(), 400)
        body = connection.written().split(b"\r\n\r\n", 1)[1]
        self.assertEqual(json.loads(body)["error"]["code"], "bad_request")


class _SlowClient(Protocol):
    """
    Sends a request line, then one header line every C{interval} seconds,
    never finishing the headers; records what it got and when it was
    disconnected.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.received = b""
        self.started = 0.0
        self.closed_after: float | None = None
        self._beat: LoopingCall | None = None

    def connectionMade(self) -> None:
        self.started = time.monotonic()
        self.transport.write(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")  # type: ignore[union-attr]
        self._beat = LoopingCall(self._header)
        self._beat.start(self.interval, now=False)

    def _header(self) -> None:
        self.transport.write(b"X-Still-Here: 1\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:  # noqa: B008
        self.closed_after = time.monotonic() - self.started
        if self._beat is not None and self._beat.running:
            self._beat.stop()


class _SlowClients(ClientFactory):
    def __init__(self, interval: float) -> None:
        self.clients: list[_SlowClient] = []
        self.interval = interval

    def buildProtocol(self, addr: Any) -> _SlowClient:
        client = _SlowClient(self.interval)
        self.clients.append(client)
        return client


class SlowlorisTests(TestCase):
    """
    Hundreds of slowloris clients against a node on a real port.
    """

    CLIENTS = 300
    DEADLINE = 2.0
    MARGIN = 3.0

    timeout = 60

    @defer.inlineCallbacks
    def test_slow_clients_closed_while_others_served(self) -> Any:
        """
        300 clients sending a header line every 0.5 s are each answered
        408 and disconnected within the 2 s deadline (plus a margin for a
        loaded machine) of their first byte; a normal client's requests
        and a WebSocket connection open throughout are served meanwhile.
        """
        running = start_xmeet(self, Settings(header_timeout=self.DEADLINE))
        slow = _SlowClients(interval=0.5)
        connectors = [
            reactor.connectTCP("127.0.0.1", running.port, slow)  # type: ignore[attr-defined]
            for _ in range(self.CLIENTS)
        ]
        self.addCleanup(lambda: [connector.disconnect() for connector in connectors])
        member = yield defer.ensureDeferred(connect(self, xnest_url(running.ws_url, "lobby")))
        yield member.next_of_type("history")
        http = http_client(self)
        served = 0
        began = time.monotonic()
        while time.monotonic() - began < self.DEADLINE + self.MARGIN:
            response = yield http.get(running.url + "/healthz")
            yield response.content()
            self.assertEqual(response.code, 200)
            served += 1
        left = [client for client in slow.clients if client.closed_after is None]
        self.assertEqual((len(slow.clients), len(left)), (self.CLIENTS, 0))
        slowest = max(client.closed_after or 0 for client in slow.clients)
        self.assertLess(slowest, self.DEADLINE + self.MARGIN)
        self.assertTrue(all(b"HTTP/1.1 408 " in client.received for client in slow.clients))
        self.assertEqual(running.node.site.request_timeouts, self.CLIENTS)
        self.assertGreater(served, 0)
        member.send("still here")
        frame = yield member.next_of_type("normal")
        self.assertEqual(frame["payload"], "still here")
