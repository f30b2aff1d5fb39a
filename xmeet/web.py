# -*- test-case-name: tests.test_web -*-
"""
The resource tree of one xmeet node: the demo page, ops endpoints and
every protocol endpoint, served by one twisted.web C{Site} on one port.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File

from xmeet.core.frames import dumps
from xmeet.handlers.xnest_api import XgateHTTPResource, XnestsResource
from xmeet.metrics import MetricsResource
from xmeet.rooms import RoomService
from xmeet.web_errors import ErrorPage, error_body
from xmeet.xgate import XgateResource

__all__ = ["APIRoot", "BoundedRequest", "HealthResource", "StaticFiles", "XmeetSite", "build_root"]


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


class XmeetSite(Site):
    """
    The node's C{Site}: no tracebacks to clients, bounded request bodies,
    and idle keep-alive connections closed after a minute instead of
    twisted.web's twelve hours (the timeout is off while a request is being
    answered, so long-polls and WebSocket connections are not affected).

    @ivar max_body: the largest request body kept, in bytes.
    @ivar access_log: whether each request is logged (twisted.web's
        combined log format, to the node's log).
    """

    IDLE_TIMEOUT = 60

    requestFactory = BoundedRequest
    displayTracebacks = False

    def __init__(self, resource: Any, max_body: int, access_log: bool) -> None:
        super().__init__(resource, timeout=self.IDLE_TIMEOUT)
        self.max_body = max_body
        self.access_log = access_log

    def log(self, request: http.Request) -> None:
        """
        Log C{request} only with an access log: with Engine.IO
        long-polling every message a client sends or receives is a request,
        and a line for each is a large share of a busy node's long-polling
        work (bench/README.rst, finding 9).
        """
        if self.access_log:
            super().log(request)


class APIRoot(Resource):
    """
    C{/api/}: unknown paths get the JSON error object, not an HTML page.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        """
        Known children are found before this is asked.
        """
        return ErrorPage(404, "no such resource")


class StaticFiles(File):
    """
    The demo page's files; directories are not listed.
    """

    def directoryListing(self) -> Resource:
        """
        No listing: a directory is simply not found.
        """
        return ErrorPage(404, "not found")


class HealthResource(Resource):
    """
    C{/healthz}: 200 and a small JSON status while the node serves.

    The node serves even while Redis is away (from memory), so that is
    C{"status": "degraded"}, still with 200: a load balancer should keep
    sending clients, an operator should look.
    """

    isLeaf = True

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
    root = Resource()
    root.putChild(b"", StaticFiles(str(static / "index.html"), defaultType="text/html"))
    root.putChild(b"static", StaticFiles(str(static)))
    root.putChild(b"healthz", HealthResource(health))
    root.putChild(b"metrics", MetricsResource(numbers))
    xgate = Resource()
    xgate.putChild(b"websocket", gate)
    xgate.putChild(b"http", XgateHTTPResource(rooms, gate.settings.max_message_size))
    root.putChild(b"xgate", xgate)
    api = APIRoot()
    api.putChild(b"xnests", XnestsResource(rooms))
    api.putChild(b"conversations", conversations)
    root.putChild(b"socket.io", socketio)
    root.putChild(b"api", api)
    return root
