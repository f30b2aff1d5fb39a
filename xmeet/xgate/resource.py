# -*- test-case-name: tests.test_xgate -*-
"""
C{/xgate/websocket/{xnest_id}} inside twisted.web: validates the room id
from the raw URL, admits the handshake (origin, node and per-address
limits, and with C{--xgate-jwt} the C{?token=} JWT) and hands the request
to that xnest's Autobahn factory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from xmeet.admission import Admission
from xmeet.config import Settings
from xmeet.core.admission import Refusal
from xmeet.core.errors import error_code
from xmeet.core.im import IMError
from xmeet.core.rules import InvalidName, decode_xnest_segment
from xmeet.core.tokens import XnestGrant, grant_xnest
from xmeet.rooms import RoomService
from xmeet.transport.lean import lean_protocol
from xmeet.transport.lease import upgrade_with_lease
from xmeet.transport.send import Outbox
from xmeet.web_errors import ErrorPage
from xmeet.xgate.protocol import XgateProtocol, XnestFactory

__all__ = ["XgateResource", "XnestHandshake"]


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

    @ivar admission: the node's origin policy and per-address limits,
        shared with its other front ends.
    """

    def __init__(
        self,
        rooms: RoomService,
        settings: Settings,
        clock: IReactorTime,
        outbox: Outbox | None = None,
        admission: Admission | None = None,
    ) -> None:
        super().__init__()
        self.admission = admission or Admission.of(settings, clock)
        self.rooms = rooms
        self.settings = settings
        self.clock = clock
        self.outbox = outbox or Outbox(clock)
        self._connections = 0
        self._endpoints: dict[str, XnestFactory] = {}
        self._protocol: type[XgateProtocol] | None = None

    def protocol_class(self, factory: XnestFactory) -> type[XgateProtocol]:
        """
        The protocol class of every xnest's factory: an L{XgateProtocol}
        carrying the options all xnests share (see
        L{xmeet.transport.lean}), the outbox and the limits of the send
        queue, made from the first factory.
        """
        if self._protocol is None:
            self._protocol = lean_protocol(XgateProtocol, factory)
            self._protocol.outbox = self.outbox
            self._protocol.max_queued_frames = self.settings.max_send_queue
            self._protocol.max_queued_bytes = self.settings.max_send_buffer
        return self._protocol

    @property
    def connections(self) -> int:
        """
        WebSocket connections of every xnest on this node, counted from the
        start of their handshake.
        """
        return self._connections

    def connection_started(self) -> None:
        """
        A connection of one of the xnests starts its handshake.
        """
        self._connections += 1

    def connection_ended(self, factory: XnestFactory) -> None:
        """
        A connection of C{factory} ended; after its last one, C{factory}
        is released.
        """
        self._connections -= 1
        if factory.connections == 0 and self._endpoints.get(factory.xnest_id) is factory:
            del self._endpoints[factory.xnest_id]

    @property
    def factories(self) -> int:
        """
        How many xnest factories exist now.
        """
        return len(self._endpoints)

    def getChild(self, path: bytes, request: Request) -> Any:
        """
        The handshake of the xnest named by the rest of the URL, or 400
        for an invalid xnest id.
        """
        try:
            xnest_id = decode_xnest_segment(_raw_path_from(request, len(request.prepath or ())))
        except InvalidName as error:
            return ErrorPage(400, str(error))
        request.postpath = []
        return XnestHandshake(self, xnest_id)

    def refusal(self, request: Request) -> Refusal | None:
        """
        Why C{request} may not open a connection: its origin (403), or a
        full node (503); C{None} if it may, as far as the node goes.
        """
        refusal = self.admission.origin_refusal(request)
        if refusal is not None:
            return refusal
        limit = self.settings.max_connections
        if limit and self.connections >= limit:
            return Refusal(503, error_code(503), "too many connections")
        return None

    def grant(self, request: Request, xnest_id: str) -> XnestGrant | Refusal | None:
        """
        With C{--xgate-jwt}, what the request's C{?token=} JWT allows in
        C{xnest_id}, or why it is refused (401, 403); C{None} without it.
        """
        verifier = self.settings.jwt
        if not self.settings.xgate_jwt or verifier is None:
            return None
        token = ((request.args or {}).get(b"token") or [None])[-1]
        text = token.decode("ascii", "replace") if token is not None else None
        try:
            return grant_xnest(verifier, text, xnest_id, self.clock.seconds())
        except IMError as error:
            return Refusal(error.status_code, error.code, error.message)

    def factory(self, xnest_id: str) -> XnestFactory:
        """
        The factory of C{xnest_id}, created for its first connection.
        """
        factory = self._endpoints.get(xnest_id)
        if factory is None:
            factory = self._endpoints[xnest_id] = XnestFactory(xnest_id, self)
        return factory


class XnestHandshake(Resource):
    """
    One xgate handshake: admitted (origin, node limit, token, per-address
    limits) before its xnest's factory is made or used, so a refused
    handshake leaves nothing behind; refusals get the JSON error object.
    """

    isLeaf = True

    def __init__(self, gate: XgateResource, xnest_id: str) -> None:
        super().__init__()
        self._gate = gate
        self._xnest_id = xnest_id

    def render(self, request: Request) -> bytes | int:
        """
        Refuse, or upgrade to the xnest's WebSocket holding a lease and
        the token's grant, if any.
        """
        gate = self._gate
        admission = gate.admission
        refusal = gate.refusal(request)
        if refusal is not None:
            return admission.refuse(request, refusal)
        grant = gate.grant(request, self._xnest_id)
        if isinstance(grant, Refusal):
            return admission.refuse(request, grant)
        admitted = admission.admit(request)
        if isinstance(admitted, Refusal):
            return admission.refuse(request, admitted)
        factory = gate.factory(self._xnest_id)
        factory.next_grant = grant
        try:
            return upgrade_with_lease(request, factory, admitted)
        finally:
            factory.next_grant = None
