# -*- test-case-name: tests.test_xgate -*-
"""
C{/xgate/websocket/{xnest_id}} inside twisted.web: validates the room id
from the raw URL (and, with C{--xgate-jwt}, the C{?token=} JWT) and hands
the request to that xnest's Autobahn factory.
"""

from __future__ import annotations

from random import Random
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from xmeet.config import Settings
from xmeet.core.im import IMError
from xmeet.core.rules import InvalidName, decode_xnest_segment
from xmeet.core.tokens import XnestGrant, grant_xnest
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
        full, 401 or 403 (with C{--xgate-jwt}) for a missing or bad token
        or one that does not name the xnest.
        """
        try:
            xnest_id = decode_xnest_segment(_raw_path_from(request, len(request.prepath or ())))
        except InvalidName as error:
            return ErrorPage(400, str(error))
        limit = self.settings.max_connections
        if limit and self.connections >= limit:
            return ErrorPage(503, "too many connections")
        request.postpath = []
        if not self.settings.xgate_jwt:
            return self._endpoint(xnest_id)[1]
        try:
            grant = self._grant(request, xnest_id)
        except IMError as error:
            return ErrorPage(error.status_code, error.message, error.code)
        factory, endpoint = self._endpoint(xnest_id)
        return _GrantedUpgrade(factory, endpoint, grant)

    def _grant(self, request: Request, xnest_id: str) -> XnestGrant:
        verifier = self.settings.jwt
        assert verifier is not None
        tokens = (request.args or {}).get(b"token") or [None]
        token = tokens[-1]
        text = token.decode("ascii", "replace") if token is not None else None
        return grant_xnest(verifier, text, xnest_id, self.clock.seconds())

    def _endpoint(self, xnest_id: str) -> tuple[XnestFactory, WebSocketResource]:
        endpoint = self._endpoints.get(xnest_id)
        if endpoint is None:
            factory = XnestFactory(xnest_id, self)
            endpoint = self._endpoints[xnest_id] = (factory, UpgradeResource(factory))
        return endpoint

    def release(self, factory: XnestFactory) -> None:
        """
        Forget C{factory}, whose last connection ended.
        """
        current = self._endpoints.get(factory.xnest_id)
        if current is not None and current[0] is factory:
            del self._endpoints[factory.xnest_id]


class _GrantedUpgrade(Resource):
    """
    The upgrade of one connection whose token was accepted: the protocol
    that C{endpoint} builds for it (at once, in L{render}) gets C{grant}.
    """

    isLeaf = True

    def __init__(
        self, factory: XnestFactory, endpoint: WebSocketResource, grant: XnestGrant
    ) -> None:
        super().__init__()
        self._factory = factory
        self._endpoint = endpoint
        self._grant = grant

    def render(self, request: Request) -> Any:
        """
        Upgrade with the factory holding the grant for the protocol it
        builds now.
        """
        self._factory.next_grant = self._grant
        try:
            return self._endpoint.render(request)
        finally:
            self._factory.next_grant = None
