# -*- test-case-name: tests.test_web,tests.test_web_deadline,tests.test_web_paths -*-
"""
The resource tree of one xmeet node: the demo page, ops endpoints and
every protocol endpoint, served by one twisted.web C{Site} on one port.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site, UnsupportedMethod
from twisted.web.static import File

from xmeet.core.frames import dumps
from xmeet.handlers.xnest_api import XgateHTTPResource, XnestsResource
from xmeet.metrics import MetricsResource
from xmeet.rooms import RoomService
from xmeet.web_errors import ErrorPage, ExactResource, error_body
from xmeet.xgate import XgateResource

__all__ = [
    "BoundedRequest",
    "DeadlineChannel",
    "Folder",
    "HealthResource",
    "StaticFiles",
    "XmeetSite",
    "build_root",
]


def _refusal(status: int, message: str) -> bytes:
    """
    A whole HTTP response carrying the JSON error object, that closes the
    connection: for a channel that refuses what it is receiving before
    any request object could answer.
    """
    body = error_body(status, message)
    head = b"HTTP/1.1 %d %s\r\n" % (status, http.RESPONSES[status])
    headers = (
        b"content-type: application/json; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + headers + body


class DeadlineChannel(http.HTTPChannel):
    """
    An HTTP channel that gives each request a deadline for I{arriving}.

    twisted.web's idle timeout restarts on every byte, so a client sending
    a header line every few seconds (slowloris) would keep its connection
    for ever. Here the request line and headers must all arrive within
    the site's C{header_timeout} of the request's first byte (or of the end
    of the previous response, for a request that arrived meanwhile); the
    body then gets C{header_timeout} more plus one second per
    C{body_min_rate} bytes received, so a body that keeps arriving at that
    rate is never cut, while one that stalls is. Over the deadline the
    client gets C{408} and the connection is closed; the site counts it.

    Nothing limits the time a request is I{answered} in: the deadline ends
    with the request's body, so long-polls wait as long as they need and a
    WebSocket connection, which takes the transport over after its
    handshake request, is governed by its heartbeat alone.

    Between requests the idle timeout of the site applies as before.
    """

    _deadline: IDelayedCall | None = None
    _body_started = 0.0
    _body_received = 0

    def dataReceived(self, data: bytes) -> None:
        """
        A request begins with its first byte.
        """
        self._await_request()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        """
        A request that arrived while the previous one was answered begins
        when its lines are read.
        """
        self._await_request()
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        """
        The headers are complete: a body, if any, gets its own deadline.
        """
        self._cancel_deadline()
        super().allHeadersReceived()
        if self.length != 0:
            self._await_body()

    def rawDataReceived(self, data: bytes) -> None:
        """
        Count the body's bytes: each one moves the body's deadline on.
        """
        if not self._handlingRequest:
            self._body_received += len(data)
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        """
        The request is complete: its answer may take as long as it needs.
        """
        self._cancel_deadline()
        super().allContentReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        No deadline outlives the connection.
        """
        self._cancel_deadline()
        super().connectionLost(reason)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """
        A malformed request line or header gets the JSON error object
        instead of twisted.web's bare status line.
        """
        self._cancel_deadline()
        transport: Any = self.transport
        transport.write(_refusal(400, "malformed or overlong request line or headers"))
        self.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        An overlong request line or header line gets the JSON error object
        too, rather than a silently closed connection.
        """
        self._respondToBadRequestAndDisconnect()

    def _await_request(self) -> None:
        if self._deadline is not None or self._handlingRequest or self._closing():
            return
        site: XmeetSite = self.site  # type: ignore[attr-defined]
        self._deadline = self.callLater(site.header_timeout, self._timed_out)

    def _await_body(self) -> None:
        site: XmeetSite = self.site  # type: ignore[attr-defined]
        self._body_started = site.reactor.seconds()
        self._body_received = 0
        self._deadline = self.callLater(site.header_timeout, self._body_due)

    def _body_due(self) -> None:
        """
        Time out a body that fell behind its rate, else look again when it
        would, given what has arrived so far.
        """
        site: XmeetSite = self.site  # type: ignore[attr-defined]
        allowed = site.header_timeout + self._body_received / site.body_min_rate
        left = self._body_started + allowed - site.reactor.seconds()
        if left > 0:
            self._deadline = self.callLater(left, self._body_due)
        else:
            self._timed_out()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _closing(self) -> bool:
        transport: Any = self.transport
        return transport is None or bool(transport.disconnecting)

    def _timed_out(self) -> None:
        """
        Answer 408 and close; abort a client that does not read it.
        """
        self._deadline = None
        if self._closing():
            return
        site: XmeetSite = self.site  # type: ignore[attr-defined]
        site.request_timeouts += 1
        transport: Any = self.transport
        transport.write(_refusal(408, "request not received in time"))
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()


class BoundedRequest(Request):
    """
    A request whose body is kept only up to its site's C{max_body} bytes,
    and left for the resource to read.

    twisted.web would otherwise spool any body to memory or disk before a
    resource can look at it; an oversized one is answered 413 without
    being kept. Unlike twisted.web's own requests, this one does not parse
    form bodies into C{args}, where a body would override the query (an
    Engine.IO C{sid}): xmeet reads JSON and Engine.IO payloads, and finding
    out whether a body was a form cost every long-polling POST a parse of
    its content type with the C{email} package.
    """

    _body_length = 0
    _oversized = False

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)

    def handleContentChunk(self, data: bytes) -> None:
        """
        Keep the chunk unless the body has grown past the limit.
        """
        self._body_length += len(data)
        if self._body_length > self._max_body():
            self._oversized = True
        elif not self._oversized:
            super().handleContentChunk(data)

    def _max_body(self) -> int:
        site: XmeetSite = self.channel.site  # type: ignore[attr-defined]
        return site.max_body

    def render(self, resrc: Any) -> None:
        """
        Render C{resrc}, whose refusal of the method becomes a 405 with the
        JSON error object instead of twisted.web's HTML page.
        """
        super().render(_MethodRefusals(resrc))

    def process(self) -> None:
        """
        Answer 413 for an oversized body, else serve as usual.
        """
        if not self._oversized:
            super().process()
            return
        limit = self._max_body()
        self.setResponseCode(413)
        self.setHeader(b"content-type", b"application/json; charset=utf-8")
        self.setHeader(b"connection", b"close")
        self.write(error_body(413, f"request body is larger than {limit} bytes"))
        self.finish()


class _MethodRefusals:
    """
    Renders a resource; a method it does not support gets 405, with the
    methods it does support in C{Allow}. C{HEAD} where C{GET} is allowed
    is answered as the C{GET} would be, without its body but with its
    length: twisted.web would do the same, logging a line for every such
    request, which any client could make.
    """

    def __init__(self, resource: Any) -> None:
        self._resource = resource

    def __repr__(self) -> str:
        return repr(self._resource)

    def render(self, request: Request) -> Any:
        """
        The resource's answer, or the 405 error object.
        """
        try:
            body = self._resource.render(request)
        except UnsupportedMethod as refused:
            allowed: list[bytes] = list(refused.allowedMethods)
            if request.method == b"HEAD" and b"GET" in allowed:
                raise
            method = (request.method or b"").decode("ascii", "replace")
            request.setResponseCode(405)
            request.setHeader(b"allow", b", ".join(allowed))
            request.setHeader(b"content-type", b"application/json; charset=utf-8")
            return error_body(405, f"method {method} is not allowed here")
        if request.method == b"HEAD" and isinstance(body, bytes) and body:
            request.setHeader(b"content-length", b"%d" % len(body))
            return b""
        return body


class XmeetSite(Site):
    """
    The node's C{Site}: no tracebacks to clients, bounded request bodies,
    a deadline for receiving each request (L{DeadlineChannel}), and idle
    keep-alive connections closed after a minute instead of twisted.web's
    twelve hours (the timeout is off while a request is being answered, so
    long-polls and WebSocket connections are not affected).

    Its channels speak HTTP/1.1 only: twisted.web's wrapper that switches
    to HTTP/2 when TLS negotiates it is left out (and needs the C{h2}
    package, which xmeet does not install).

    @ivar max_body: the largest request body kept, in bytes.
    @ivar access_log: whether each request is logged (twisted.web's
        combined log format, to the node's log).
    @ivar header_timeout: seconds from the first byte of a request to the
        end of its headers; also a body's allowance before its rate counts.
    @ivar body_min_rate: bytes per second a request body must keep up,
        after its first C{header_timeout} seconds.
    @ivar request_timeouts: connections closed because a request did not
        arrive in time (the C{/metrics} counter; they are not logged).
    """

    IDLE_TIMEOUT = 60

    protocol = DeadlineChannel  # type: ignore[assignment]
    requestFactory = BoundedRequest
    displayTracebacks = False

    def __init__(
        self,
        resource: Any,
        max_body: int,
        access_log: bool,
        *,
        header_timeout: float,
        body_min_rate: int,
        reactor: IReactorTime | None = None,
    ) -> None:
        super().__init__(resource, timeout=self.IDLE_TIMEOUT, reactor=reactor)
        self.max_body = max_body
        self.access_log = access_log
        self.header_timeout = header_timeout
        self.body_min_rate = body_min_rate
        self.request_timeouts = 0

    def log(self, request: http.Request) -> None:
        """
        Log C{request} only with an access log: with Engine.IO
        long-polling every message a client sends or receives is a request,
        and a line for each is a large share of a busy node's long-polling
        work (bench/README.rst, finding 9).
        """
        if self.access_log:
            super().log(request)


class Folder(Resource):
    """
    C{/}, C{/api/} and C{/xgate/}: unknown paths, and the folder itself,
    get the JSON error object, not an HTML page.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        """
        Known children are found before this is asked.
        """
        return ErrorPage(404, "no such resource")

    def render(self, request: Request) -> bytes:
        """
        Only the children are resources.
        """
        return ErrorPage(404, "no such resource").render(request)


class StaticFiles(File):
    """
    The demo page's files; directories are not listed.

    A path segment that is not UTF-8 or holds a NUL byte names no file:
    twisted.web would log a traceback for the first and answer 500 for
    the second (the file system refuses the name).
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        """
        Not found for a segment no file can be named by, else as C{File}.
        """
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            return self.childNotFound
        if "\x00" in name:
            return self.childNotFound
        return super().getChild(path, request)

    def directoryListing(self) -> Resource:
        """
        No listing: a directory is simply not found.
        """
        return ErrorPage(404, "not found")


class HealthResource(ExactResource):
    """
    C{/healthz}: 200 and a small JSON status while the node serves.

    The node serves even while Redis is away (from memory), so that is
    C{"status": "degraded"}, still with 200: a load balancer should keep
    sending clients, an operator should look.
    """

    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._health = health

    def render_GET(self, request: Request) -> bytes:
        """
        The status of the node.
        """
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return dumps(self._health()).encode("utf-8")


def build_root(
    rooms: RoomService,
    gate: XgateResource,
    socketio: Resource,
    conversations: Resource,
    health: Callable[[], dict[str, Any]],
    numbers: Callable[[], dict[str, Any]],
) -> Any:
    """
    The root resource: C{/} (demo page), C{/static/}, C{/healthz},
    C{/metrics}, C{/xgate/websocket/}, C{/xgate/http}, C{/socket.io/},
    C{/api/xnests/} and C{/api/conversations}.
    """
    static = files("xmeet") / "static"
    root = Folder()
    root.putChild(b"", StaticFiles(str(static / "index.html"), defaultType="text/html"))
    root.putChild(b"static", StaticFiles(str(static)))
    root.putChild(b"healthz", HealthResource(health))
    root.putChild(b"metrics", MetricsResource(numbers))
    xgate = Folder()
    xgate.putChild(b"websocket", gate)
    xgate.putChild(b"http", XgateHTTPResource(rooms, gate.settings.max_message_size))
    root.putChild(b"xgate", xgate)
    api = Folder()
    api.putChild(b"xnests", XnestsResource(rooms))
    api.putChild(b"conversations", conversations)
    root.putChild(b"socket.io", socketio)
    root.putChild(b"api", api)
    return root
