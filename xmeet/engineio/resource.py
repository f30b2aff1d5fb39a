# -*- test-case-name: tests.test_engineio_resource -*-
"""
The twisted.web resource of an Engine.IO endpoint.

It checks each request the way the official server does (transport, origin,
session id, method, protocol revision), answers refusals with the official
JSON error bodies, adds CORS headers, and routes what is left to
long-polling or, for WebSocket upgrades, to Autobahn's L{WebSocketResource},
so one L{twisted.web.server.Site} on one port serves everything.

Given an L{Admission} (an xmeet node always gives its own), every request
from a browser origin it does not allow is refused with 403, and each new
session (a handshake without C{sid}, over either transport) must be
admitted by its per-address limits: refusals of both kinds carry the JSON
error object of PROTOCOL.md rather than the Engine.IO one.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from xmeet.admission import Admission, client_address
from xmeet.core.admission import OriginPolicy, Refusal, normalize_origin
from xmeet.transport.lean import UpgradeResource
from xmeet.transport.lease import upgrade_with_lease

from .polling import bad_request
from .server import EngineIOServer, ErrorCode

__all__ = ["EngineIOResource"]

log = Logger()

_TRANSPORTS = ("polling", "websocket")
_PREFLIGHT_METHODS = b"GET,HEAD,PUT,PATCH,POST,DELETE"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def request_query(request: Request) -> dict[str, str]:
    """
    The query parameters of C{request}, first value of each, as text.
    """
    return {_text(name): _text(values[0]) for name, values in (request.args or {}).items()}


def request_headers(request: Request) -> dict[str, str]:
    """
    The headers of C{request} with lowercase names, repeated ones joined.
    """
    return {
        _text(name).lower(): ", ".join(_text(v) for v in values)
        for name, values in request.requestHeaders.getAllRawHeaders()
    }


def _is_websocket_upgrade(request: Request) -> bool:
    upgrade = request.getHeader(b"upgrade") or b""
    return b"websocket" in upgrade.lower()


def _invalid_header_value(value: bytes) -> bool:
    return any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value)


class EngineIOResource(Resource):
    """
    Serves one L{EngineIOServer} at the path it is mounted on (for example
    C{/socket.io/} or C{/engine.io/}).
    """

    isLeaf = True

    def __init__(self, server: EngineIOServer, admission: Admission | None = None) -> None:
        super().__init__()
        self._server = server
        self._admission = admission
        self._cors = OriginPolicy.of(server.cors_origins)
        self._websocket = UpgradeResource(server.websocket_factory)

    def render(self, request: Request) -> bytes | int:
        """
        Answer one Engine.IO HTTP request (or WebSocket upgrade).
        """
        origin = request.getHeader(b"origin")
        self._add_cors_headers(request, origin)
        admission = self._admission
        if admission is not None:
            refusal = admission.origin_refusal(request)
            if refusal is not None:
                return admission.refuse(request, refusal)
        if request.method == b"OPTIONS" and self._server.cors_origins:
            return self._preflight(request)
        query = request_query(request)
        transport_name = query.get("transport")
        if transport_name not in _TRANSPORTS:
            return self._refuse(request, ErrorCode.UNKNOWN_TRANSPORT)
        if origin is not None and _invalid_header_value(origin):
            return self._refuse(request, ErrorCode.BAD_REQUEST)
        if "sid" in query:
            return self._existing_session(request, query, transport_name)
        return self._handshake(request, query, transport_name)

    def _refuse(self, request: Request, code: ErrorCode) -> bytes:
        log.debug(
            "refused {method} {uri}: {message}",
            method=request.method,
            uri=request.uri,
            message=code.message,
        )
        status = 403 if code is ErrorCode.FORBIDDEN else 400
        return bad_request(request, int(code), code.message, status)

    def _handshake(
        self, request: Request, query: dict[str, str], transport_name: str
    ) -> bytes | int:
        if request.method != b"GET":
            return self._refuse(request, ErrorCode.BAD_HANDSHAKE_METHOD)
        upgrade = _is_websocket_upgrade(request)
        if transport_name == "websocket" and not upgrade:
            return self._refuse(request, ErrorCode.BAD_REQUEST)
        headers = request_headers(request)
        if not self._server.allows(query, headers):
            return self._refuse(request, ErrorCode.FORBIDDEN)
        revision = self._server.revision_of(query)
        if revision is None:
            return self._refuse(request, ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
        lease = None
        if self._admission is not None:
            admitted = self._admission.admit(request)
            if isinstance(admitted, Refusal):
                return self._admission.refuse(request, admitted)
            lease = admitted
        if transport_name == "websocket":
            return upgrade_with_lease(request, self._server.websocket_factory, lease)
        return self._server.open_polling(
            request, revision, query, headers, client_address(request), lease
        )

    def _existing_session(
        self, request: Request, query: dict[str, str], transport_name: str
    ) -> bytes | int:
        socket = self._server.sockets.get(query["sid"])
        if socket is None:
            late = self._server.late_poll(query["sid"])
            if late is not None and transport_name == "polling" and request.method == b"GET":
                return late.answer_late_poll(request)
            return self._refuse(request, ErrorCode.UNKNOWN_SID)
        upgrade = transport_name == "websocket" and _is_websocket_upgrade(request)
        if not upgrade and socket.transport_name != transport_name:
            return self._refuse(request, ErrorCode.BAD_REQUEST)
        if self._server.revision_of(query) != socket.revision:
            return self._refuse(request, ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
        if upgrade:
            return self._upgrade(request)
        polling = socket.polling_transport()
        if polling is None:
            return self._refuse(request, ErrorCode.BAD_REQUEST)
        if request.method == b"GET":
            return polling.handle_get(request)
        if request.method == b"POST":
            return polling.handle_post(request)
        return self._refuse(request, ErrorCode.BAD_REQUEST)

    def _upgrade(self, request: Request) -> bytes | int:
        result: bytes | int = self._websocket.render(request)
        return result

    def _add_cors_headers(self, request: Request, origin: bytes | None) -> None:
        """
        C{*} lets any page read the answers, but never with the user's
        credentials (a page of any site could otherwise act as its
        visitor); a listed origin (in any spelling of it) is echoed,
        credentials allowed.
        """
        cors = self._cors
        if cors.any_origin:
            request.setHeader(b"access-control-allow-origin", b"*")
            return
        if not cors.origins:
            return
        request.setHeader(b"vary", b"Origin")
        if origin is not None and normalize_origin(_text(origin)) in cors.origins:
            request.setHeader(b"access-control-allow-origin", origin)
            request.setHeader(b"access-control-allow-credentials", b"true")

    def _preflight(self, request: Request) -> bytes:
        request.setResponseCode(204)
        request.setHeader(b"access-control-allow-methods", _PREFLIGHT_METHODS)
        asked = request.getHeader(b"access-control-request-headers")
        if asked is not None:
            request.setHeader(b"access-control-allow-headers", asked)
            request.setHeader(b"vary", b"Origin, Access-Control-Request-Headers")
        request.setHeader(b"content-length", b"0")
        return b""
