# -*- test-case-name: tests.test_xgate -*-
"""
C{/xgate/websocket/{xnest_id}} inside twisted.web: validates the room id
from the raw URL and hands the request to that xnest's Autobahn factory.
"""

from __future__ import annotations

from random import Random
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from xmeet.config import Settings
from xmeet.core.rules import InvalidName, decode_xnest_segment
from xmeet.fastsend import Outbox, outbox
from xmeet.rooms import RoomService
from xmeet.web_errors import ErrorPage
from xmeet.wsmemory import UpgradeResource, lean_protocol
from xmeet.xgate.protocol import XgateProtocol, XnestFactory

__all__ = ["XgateResource"]


def _raw_path_from(request: Request, index: int) -> bytes:
    """
    The undecoded path of C{request} from segment C{index} on: twisted.web
    decodes segments before we see them, which would let a malformed
    escape through.
    """
    path = request.uri.split(b"?", 1)[0]
    return b"/".join(path.split(b"/")[index:])


class XgateResource(Resource):
    """
    The parent of every xnest's WebSocket endpoint.

    Keeps one L{XnestFactory} per xnest that has connections: created on
    first use, released when its last connection ends.

    @ivar connections: WebSocket connections of every xnest on this node,
        counted from the start of their handshake.
    """

    def __init__(
        self,
        rooms: RoomService,
        settings: Settings,
        clock: IReactorTime,
        rng: Random,
        outbox: Outbox = outbox,
    ) -> None:
        super().__init__()
        self.rooms = rooms
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.outbox = outbox
        self.connections = 0
        self._endpoints: dict[str, tuple[XnestFactory, WebSocketResource]] = {}
        self._protocol: type[XgateProtocol] | None = None

    def protocol_class(self, factory: XnestFactory) -> type[XgateProtocol]:
        """
        The protocol class of every xnest's factory: an L{XgateProtocol}
        carrying the options all xnests share (see L{xmeet.wsmemory}),
        made from the first factory.
        """
        if self._protocol is None:
            self._protocol = lean_protocol(XgateProtocol, factory)
            self._protocol.outbox = self.outbox
        return self._protocol

    @property
    def factories(self) -> int:
        """
        How many xnest factories exist now.
        """
        return len(self._endpoints)

    def getChild(self, path: bytes, request: Request) -> Any:
        """
        The WebSocket endpoint of the xnest named by the rest of the URL, or
        an error page: 400 for an invalid xnest id, 503 when the node is
        full.
        """
        try:
            xnest_id = decode_xnest_segment(_raw_path_from(request, len(request.prepath or ())))
        except InvalidName as error:
            return ErrorPage(400, str(error))
        limit = self.settings.max_connections
        if limit and self.connections >= limit:
            return ErrorPage(503, "too many connections")
        request.postpath = []
        return self._endpoint(xnest_id)

    def _endpoint(self, xnest_id: str) -> WebSocketResource:
        endpoint = self._endpoints.get(xnest_id)
        if endpoint is None:
            factory = XnestFactory(xnest_id, self)
            endpoint = self._endpoints[xnest_id] = (factory, UpgradeResource(factory))
        return endpoint[1]

    def release(self, factory: XnestFactory) -> None:
        """
        Forget C{factory}, whose last connection ended.
        """
        current = self._endpoints.get(factory.xnest_id)
        if current is not None and current[0] is factory:
            del self._endpoints[factory.xnest_id]
