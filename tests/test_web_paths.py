"""
Whatever URL, method or header a client sends, the node answers it
without a 500, without a traceback in the answer and without an error in
its log: a malformed path gets 404 or 400, a refused method 405, a
malformed request line or header 400.

The cases the issue found first, then hypothesis over the whole resource
tree, in memory through the site's own channel; then raw bytes on a real
port.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.http_memory import InMemoryConnection, LogRecorder, Response, parse_response
from tests.support import start_xmeet
from xmeet.config import Settings
from xmeet.service import build_node


class _NodeTestCase(SynchronousTestCase):
    """
    A node on a L{Clock}, requests in memory, its log recorded.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = build_node(self.clock, Settings())
        self.log = LogRecorder(self)

    def raw(self, data: bytes) -> InMemoryConnection:
        connection = InMemoryConnection(self.node.site)
        self.addCleanup(connection.end)
        connection.send(data)
        return connection

    def get(self, path: bytes, method: bytes = b"GET") -> Response:
        connection = self.raw(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        return connection.response()

    def assert_quiet(self) -> None:
        """
        Nothing at error level or above, at most one line at info.
        """
        self.assertEqual(self.log.errors(), [])
        self.assertLessEqual(len(self.log.noticed()), 1)

    def assert_json_error(self, response: Response, status: int, why: Any = None) -> None:
        self.assertEqual(response.status, status, why)
        self.assertEqual(response.json()["statusCode"], status)


class FoundCasesTests(_NodeTestCase):
    """
    The requests of the issue, and their neighbours.
    """

    def test_static_nul(self) -> None:
        """
        C{/static/%00} is not found: 404, nothing logged (it was a 500 and
        a critical traceback, 1.3 KB of log per request).
        """
        for _ in range(1000):
            self.assertEqual(self.get(b"/static/%00").status, 404)
        self.assertEqual(self.log.noticed(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_static_overlong_utf8(self) -> None:
        """
        C{/static/%c0%ae%c0%ae/...} (an overlong UTF-8 C{..}) and any
        other non-UTF-8 name: 404, nothing logged.
        """
        for path in [b"/static/%c0%ae%c0%ae/etc/passwd", b"/static/%ff", b"/static/a%80b/c"]:
            self.assertEqual(self.get(path).status, 404, path)
        self.assertEqual(self.log.noticed(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unknown_paths(self) -> None:
        """
        Unknown paths outside C{/static/}, and below the leaf endpoints,
        get 404 with the JSON error object.
        """
        for path in [
            b"/nowhere",
            b"/%00",
            b"/xgate",
            b"/xgate/",
            b"/xgate/nowhere",
            b"/api",
            b"/api/",
            b"/healthz/",
            b"/healthz/%00",
            b"/metrics/x",
            b"/xgate/http/x",
        ]:
            response = self.get(path, b"POST" if path.startswith(b"/xgate/http") else b"GET")
            self.assert_json_error(response, 404, path)
        self.assert_quiet()

    def test_method_not_allowed(self) -> None:
        """
        A method an endpoint does not take: 405 with C{Allow} and the JSON
        error object, whatever the method (twisted.web's HTML page or a
        501 before).
        """
        for path, method in [
            (b"/healthz", b"POST"),
            (b"/metrics", b"DELETE"),
            (b"/static/demo.js", b"PUT"),
            (b"/healthz", b"BREW"),
        ]:
            response = self.get(path, method)
            self.assert_json_error(response, 405)
            self.assertIn(b"GET", response.headers[b"allow"])
        self.assert_quiet()

    def test_websocket_handshake_refused(self) -> None:
        """
        A refused WebSocket handshake (a plain GET, a bad key, a request
        the endpoint denies) keeps its status, gets the JSON error object
        and logs nothing an operator sees (Autobahn logged an info line
        and a warning for each).
        """
        upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        for request, status in [
            (b"GET /xgate/websocket/lobby HTTP/1.1\r\nHost: x\r\n\r\n", 426),
            (b"GET /xgate/websocket/lobby HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n", 400),
            (
                b"GET /xgate/websocket/lobby?nickname=%ff HTTP/1.1\r\nHost: x\r\n"
                + upgrade
                + key
                + b"\r\n",
                400,
            ),
            (
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                + upgrade
                + b"Sec-WebSocket-Key: short\r\n\r\n",
                400,
            ),
        ]:
            connection = self.raw(request)
            self.assert_json_error(connection.response(), status, request)
            self.assertTrue(connection.closed)
        self.assertEqual(self.log.noticed(), [])

    def test_head(self) -> None:
        """
        C{HEAD} is still answered as C{GET} without a body.
        """
        connection = self.raw(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(connection.status(), 200)
        self.assertTrue(connection.written().endswith(b"\r\n\r\n"))
        self.assertEqual(self.log.noticed(), [])

    def test_head_refused(self) -> None:
        """
        A refused C{HEAD} (here a foreign origin on C{/socket.io/}) gets the
        refusal's status without its body, and the refusal's one line is
        all that is logged (found by L{FuzzTests}).
        """
        connection = self.raw(
            b"HEAD /socket.io/ HTTP/1.1\r\nHost: x\r\nOrigin: application/json\r\n\r\n"
        )
        self.assertEqual(connection.status(), 403)
        self.assertTrue(connection.written().endswith(b"\r\n\r\n"))
        self.assertEqual(len(self.log.noticed()), 1)

    def test_malformed_request_line(self) -> None:
        """
        Invalid bytes in the request line, a header without a colon, an
        overlong line: 400 with the JSON error object, then the
        connection is closed.
        """
        for data in [
            b"GET /static/\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: " + b"b" * 20000 + b"\r\n\r\n",
        ]:
            connection = self.raw(data)
            self.assert_json_error(connection.response(), 400)
            self.assertTrue(connection.closed)
        self.assert_quiet()


_SPECIAL = [
    b"%00",
    b"%c0%ae",
    b"%c0%af",
    b"%e0%80%ae",
    b"%ff",
    b"%fe%ff",
    b"%2f",
    b"%2e%2e",
    b"..",
    b".",
    b"%",
    b"%z",
    b"%e2%82",
    b"%0d%0a",
    b"%20",
    b"\x00",
    b"\xff",
    b"\xc0\xae",
    b"caf%C3%A9",
    b"a" * 300,
    b"index.html",
    b"demo.js",
    b"history",
    b"members",
    b"messages",
    b"lobby",
    b"",
]

_PREFIXES = [
    b"",
    b"static/",
    b"api/",
    b"api/xnests/",
    b"api/conversations/",
    b"xgate/",
    b"xgate/http",
    b"xgate/websocket/",
    b"socket.io/",
    b"healthz",
    b"metrics",
]

_QUERY_NAMES = [b"EIO", b"transport", b"sid", b"cursor", b"limit", b"before", b"nickname", b"t"]
_QUERY_VALUES = [b"4", b"3", b"polling", b"websocket", b"0", b"-1", b"x" * 200, *_SPECIAL]

_METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"BREW"]

_HEADER_NAMES = [
    b"Content-Type",
    b"Authorization",
    b"Origin",
    b"Upgrade",
    b"Connection",
    b"Cookie",
    b"Sec-WebSocket-Key",
    b"Sec-WebSocket-Version",
    b"Transfer-Encoding",
    b"Expect",
    b"X-Anything",
]
_HEADER_VALUES = [
    b"application/json",
    b"text/plain;charset=\xff",
    b"Bearer \xff\x00",
    b"http://evil.example",
    b"null",
    b"websocket",
    b"Upgrade",
    b"keep-alive, Upgrade",
    b"dGhlIHNhbXBsZSBub25jZQ==",
    b"13",
    b"chunked",
    b"100-continue",
    b"nickname=%ff",
]

_segment = st.lists(
    st.one_of(st.sampled_from(_SPECIAL), st.binary(min_size=1, max_size=6)), max_size=3
).map(b"".join)
_path = st.builds(
    lambda prefix, segments: b"/" + prefix + b"/".join(segments),
    st.sampled_from(_PREFIXES),
    st.lists(_segment, max_size=4),
)
_query = st.one_of(
    st.just(b""),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(_QUERY_NAMES), _segment),
            st.one_of(st.sampled_from(_QUERY_VALUES), _segment),
        ),
        max_size=4,
    ).map(lambda pairs: b"?" + b"&".join(name + b"=" + value for name, value in pairs)),
)
_method = st.one_of(st.sampled_from(_METHODS), st.binary(min_size=1, max_size=8))
_headers = st.lists(
    st.tuples(
        st.sampled_from(_HEADER_NAMES),
        st.one_of(st.sampled_from(_HEADER_VALUES), st.binary(max_size=20)),
    ),
    max_size=4,
)
_body = st.one_of(st.just(b""), st.binary(max_size=64), st.just(b'{"request_id": 1}'))


def _request(method: bytes, path: bytes, query: bytes, headers: Any, body: bytes) -> bytes:
    lines = [method + b" " + path + query + b" HTTP/1.1", b"Host: x"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class FuzzTests(_NodeTestCase):
    """
    Arbitrary requests against the whole resource tree.
    """

    def check(self, data: bytes) -> None:
        """
        The node's answer to C{data}, if any yet, is not a 5xx and shows
        no traceback; its log has no error and at most one line.
        """
        self.log.clear()
        connection = InMemoryConnection(self.node.site)
        try:
            connection.send(data)
            self.clock.advance(0)
            written = connection.written()
        finally:
            connection.end()
        if written.startswith(b"HTTP/1.1 "):
            status = int(written.split(b" ", 2)[1])
            self.assertLess(status, 500, data)
        self.assertNotIn(b"Traceback", written)
        self.assertNotIn(b'File "', written)
        self.assertEqual(self.log.errors(), [], data)
        self.assertLessEqual(len(self.log.noticed()), 1, data)

    @settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "1500")))
    @given(_method, _path, _query, _headers, _body)
    def test_any_request(
        self, method: bytes, path: bytes, query: bytes, headers: Any, body: bytes
    ) -> None:
        """
        Any method, path, query, headers and body.
        """
        self.check(_request(method, path, query, headers, body))

    @settings(max_examples=500)
    @given(st.binary(max_size=200))
    def test_any_bytes(self, data: bytes) -> None:
        """
        Any bytes at all, as a request line, then as a path.
        """
        self.check(data + b"\r\n\r\n")
        self.check(b"GET /" + data + b" HTTP/1.1\r\n\r\n")


class _RawClient(Protocol):
    """
    Sends raw bytes, keeps everything answered until the server closes.
    """

    def __init__(self, data: bytes, done: defer.Deferred[bytes]) -> None:
        self.data = data
        self.done = done
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(self.data)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(self.received)


class _RawFactory(ClientFactory):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> _RawClient:
        return _RawClient(self.data, self.done)


class RealSocketTests(TestCase):
    """
    Raw malformed request lines to a node on a real port.
    """

    @defer.inlineCallbacks
    def test_invalid_bytes(self) -> Any:
        """
        Invalid bytes in the request line and malformed escapes in the
        path: 400 or 404, never 500, no traceback, nothing logged at error
        level.
        """
        log = LogRecorder(self)
        running = start_xmeet(self)
        cases = [
            (b"GET /static/\xff\xfe HTTP/1.1\r\n\r\n", 400),
            (b"G\x80T / HTTP/1.1\r\n\r\n", 400),
            (b"GET /\x00 HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX\x00: y\r\n\r\n", 400),
            (b"GET /static/%00 HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
            (b"GET /static/%c0%ae%c0%ae/x HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
            (b"GET /api/xnests/%ff HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        ]
        for data, status in cases:
            factory = _RawFactory(data)
            reactor.connectTCP("127.0.0.1", running.port, factory)  # type: ignore[attr-defined]
            received = yield factory.done
            response = parse_response(received)
            self.assertEqual(response.status, status, data)
            self.assertNotIn(b"Traceback", received)
            if not data.startswith(b"GET /static/%"):
                self.assertEqual(response.json()["statusCode"], status)
        self.assertEqual(log.errors(), [])
