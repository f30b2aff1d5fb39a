# -*- test-case-name: tests.test_engineio_resource -*-
"""
Tests for L{xmeet.engineio.EngineIOResource}: request checks with the
official error answers, CORS, and long-polling through the resource, with
in-memory requests.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from xmeet.engineio import EngineIOResource

from .test_engineio_session import body_of, header, make_request, make_server


def render(resource: EngineIOResource, request: DummyRequest) -> DummyRequest:
    """
    Render C{request} and return it.
    """
    request.render(resource)
    return request


class ResourceTestCase(SynchronousTestCase):
    """
    A resource over a fresh server.
    """

    server_settings: dict[str, Any] = {}

    def setUp(self) -> None:
        self.server, self.clock, self.handler = make_server(echo=True, **self.server_settings)
        self.resource = EngineIOResource(self.server)

    def request(
        self,
        method: bytes = b"GET",
        body: bytes = b"",
        headers: dict[bytes, bytes] | None = None,
        **query: str,
    ) -> DummyRequest:
        return render(self.resource, make_request(method, query, body, headers))

    def assertRefused(self, request: DummyRequest, code: int, message: str) -> None:
        self.assertEqual(request.responseCode, 400)
        self.assertEqual(header(request, b"content-type"), b"application/json")
        self.assertEqual(json.loads(body_of(request)), {"code": code, "message": message})

    def handshake(self, headers: dict[bytes, bytes] | None = None, **query: str) -> str:
        query = {"EIO": "4", "transport": "polling", **query}
        request = render(self.resource, make_request(query=query, headers=headers))
        sid: str = json.loads(body_of(request)[1:])["sid"]
        return sid


class ErrorTests(ResourceTestCase):
    """
    Refused requests get HTTP 400 and the official code and message.
    """

    def test_unknown_transport(self) -> None:
        """
        A missing or unknown transport is code 0.
        """
        self.assertRefused(self.request(EIO="4"), 0, "Transport unknown")
        self.assertRefused(self.request(EIO="4", transport="flash"), 0, "Transport unknown")

    def test_unknown_sid(self) -> None:
        """
        An unknown session id is code 1, for polling and WebSocket alike.
        """
        self.assertRefused(
            self.request(EIO="4", transport="polling", sid="nope"), 1, "Session ID unknown"
        )
        self.assertRefused(
            self.request(
                EIO="4",
                transport="websocket",
                sid="nope",
                headers={b"upgrade": b"websocket"},
            ),
            1,
            "Session ID unknown",
        )

    def test_bad_handshake_method(self) -> None:
        """
        A handshake must be a GET: anything else is code 2.
        """
        for method in [b"POST", b"PUT", b"OPTIONS"]:
            with self.subTest(method=method):
                self.assertRefused(
                    self.request(method, EIO="4", transport="polling"), 2, "Bad handshake method"
                )

    def test_websocket_without_upgrade(self) -> None:
        """
        A plain GET with C{transport=websocket} is a bad request (code 3).
        """
        self.assertRefused(self.request(EIO="4", transport="websocket"), 3, "Bad request")

    def test_transport_mismatch(self) -> None:
        """
        Using a session with another transport than its own is code 3.
        """
        sid = self.handshake()
        self.assertRefused(self.request(EIO="4", transport="websocket", sid=sid), 3, "Bad request")

    def test_unsupported_protocol(self) -> None:
        """
        C{EIO} other than 4 (or 3, when allowed) is code 5.
        """
        for eio in [None, "abc", "5", "2"]:
            query = (
                {"transport": "polling"} if eio is None else {"EIO": eio, "transport": "polling"}
            )
            with self.subTest(eio=eio):
                request = render(self.resource, make_request(query=query))
                self.assertRefused(request, 5, "Unsupported protocol version")

    def test_protocol_mismatch(self) -> None:
        """
        A request for a session with another revision is code 5.
        """
        sid = self.handshake()
        self.assertRefused(
            self.request(EIO="3", transport="polling", sid=sid), 5, "Unsupported protocol version"
        )

    def test_other_method_on_session(self) -> None:
        """
        Polling is GET and POST only.
        """
        sid = self.handshake()
        self.assertRefused(
            self.request(b"PUT", EIO="4", transport="polling", sid=sid), 3, "Bad request"
        )

    def test_invalid_origin(self) -> None:
        """
        An Origin header with control characters is a bad request.
        """
        request = self.request(EIO="4", transport="polling", headers={b"origin": b"http://a\x01"})
        self.assertRefused(request, 3, "Bad request")


class NoEIO3Tests(ResourceTestCase):
    """
    Revision 3 can be switched off.
    """

    server_settings = {"allow_eio3": False}

    def test_eio3_refused(self) -> None:
        """
        Without C{allow_eio3}, C{EIO=3} is code 5.
        """
        self.assertRefused(
            self.request(EIO="3", transport="polling"), 5, "Unsupported protocol version"
        )


class AllowRequestTests(ResourceTestCase):
    """
    The C{allow_request} hook can refuse handshakes.
    """

    server_settings = {"allow_request": lambda query, headers: query.get("token") == "ok"}

    def test_refused(self) -> None:
        """
        A refused handshake gets HTTP 403 with code 4, and no session.
        """
        request = self.request(EIO="4", transport="polling", token="bad")
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(json.loads(body_of(request)), {"code": 4, "message": "Forbidden"})
        self.assertEqual(self.server.sockets, {})

    def test_allowed(self) -> None:
        """
        An accepted handshake opens a session.
        """
        self.assertIn(self.handshake(token="ok"), self.server.sockets)


class PollingThroughResourceTests(ResourceTestCase):
    """
    A whole long-polling exchange through the resource.
    """

    def test_echo(self) -> None:
        """
        Messages posted come back on the next poll; the session keeps the
        handshake's query and headers.
        """
        sid = self.handshake(foo="bar")
        socket = self.server.sockets[sid]
        self.assertEqual(socket.query["foo"], "bar")
        post = self.request(b"POST", b"4hello\x1ebAQI=", EIO="4", transport="polling", sid=sid)
        self.assertEqual(body_of(post), b"ok")
        self.assertEqual(header(post, b"content-type"), b"text/html")
        poll = self.request(EIO="4", transport="polling", sid=sid)
        self.assertEqual(body_of(poll), b"4hello\x1ebAQI=")

    def test_v3_echo(self) -> None:
        """
        Revision 3 sessions work through the resource with length-prefixed
        payloads.
        """
        request = self.request(EIO="3", transport="polling", b64="1")
        handshake = body_of(request).decode()
        sid = json.loads(handshake[handshake.index(":") + 2 :])["sid"]
        self.request(b"POST", b"3:4hi", EIO="3", transport="polling", sid=sid)
        self.assertEqual(body_of(self.request(EIO="3", transport="polling", sid=sid)), b"3:4hi")

    def test_headers_recorded(self) -> None:
        """
        Handshake headers are kept with lowercase names.
        """
        sid = self.handshake(headers={b"X-Token": b"abc"})
        self.assertEqual(self.server.sockets[sid].headers["x-token"], "abc")


class NoCORSTests(ResourceTestCase):
    """
    Without configured origins, no CORS header is ever sent.
    """

    def test_no_headers(self) -> None:
        """
        A cross-origin handshake succeeds but carries no CORS header.
        """
        request = self.request(
            EIO="4",
            transport="polling",
            headers={b"origin": b"http://elsewhere.example"},
        )
        self.assertEqual(request.responseCode, None)
        self.assertIsNone(header(request, b"access-control-allow-origin"))


class AnyOriginCORSTests(ResourceTestCase):
    """
    C{("*",)} allows any origin, but never with credentials.
    """

    server_settings = {"cors_origins": ("*",)}

    def test_any_origin_without_credentials(self) -> None:
        """
        Any page may read the answers (C{Access-Control-Allow-Origin: *}),
        but credentials are not allowed: a page of any site must not act
        with its visitor's cookies.
        """
        request = self.request(
            EIO="4", transport="polling", headers={b"origin": b"http://a.example"}
        )
        self.assertEqual(header(request, b"access-control-allow-origin"), b"*")
        self.assertIsNone(header(request, b"access-control-allow-credentials"))

    def test_errors_carry_cors(self) -> None:
        """
        Error answers carry the CORS headers too, so browsers can read them.
        """
        request = self.request(EIO="9", transport="polling", headers={b"origin": b"http://a"})
        self.assertEqual(request.responseCode, 400)
        self.assertEqual(header(request, b"access-control-allow-origin"), b"*")

    def test_preflight(self) -> None:
        """
        OPTIONS is a preflight: 204 with the allowed methods and the
        requested headers.
        """
        request = self.request(
            b"OPTIONS",
            EIO="4",
            transport="polling",
            headers={
                b"origin": b"http://a",
                b"access-control-request-headers": b"content-type",
            },
        )
        self.assertEqual(request.responseCode, 204)
        self.assertIn(b"POST", header(request, b"access-control-allow-methods") or b"")
        self.assertEqual(header(request, b"access-control-allow-headers"), b"content-type")
        self.assertEqual(body_of(request), b"")
        self.assertEqual(self.server.sockets, {})


class ListedOriginCORSTests(ResourceTestCase):
    """
    A list of origins allows exactly those.
    """

    server_settings = {"cors_origins": ("http://good.example",)}

    def test_listed(self) -> None:
        """
        A listed origin is allowed.
        """
        request = self.request(
            EIO="4", transport="polling", headers={b"origin": b"http://good.example"}
        )
        self.assertEqual(header(request, b"access-control-allow-origin"), b"http://good.example")

    def test_listed_other_spelling(self) -> None:
        """
        The listed origin spelled otherwise (case, default port) is the
        same origin; its own spelling is echoed.
        """
        request = self.request(
            EIO="4", transport="polling", headers={b"origin": b"http://Good.example:80"}
        )
        self.assertEqual(header(request, b"access-control-allow-origin"), b"http://Good.example:80")
        self.assertEqual(header(request, b"access-control-allow-credentials"), b"true")

    def test_vary_without_origin(self) -> None:
        """
        Answers depend on C{Origin}, so even one without it says so to
        caches.
        """
        request = self.request(EIO="4", transport="polling")
        self.assertEqual(header(request, b"vary"), b"Origin")

    def test_unlisted(self) -> None:
        """
        Another origin gets no allow header.
        """
        request = self.request(
            EIO="4", transport="polling", headers={b"origin": b"http://evil.example"}
        )
        self.assertIsNone(header(request, b"access-control-allow-origin"))
