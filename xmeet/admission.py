# -*- test-case-name: tests.test_admission -*-
"""
Admission of WebSocket and Engine.IO handshakes, shared by both front
ends (xgate and C{/socket.io/}): the origin check and the per-address
limits of L{xmeet.core.admission}, applied to twisted.web requests.

The node builds one L{Admission} and gives it to both front ends, so a
client address's connections are counted together. An admitted
connection carries its L{Lease} until it ends: a WebSocket connection
holds it (L{xmeet.transport.lease}) and releases it when its TCP
connection is lost, an Engine.IO long-polling session when the session
ends.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from xmeet.config import Settings
from xmeet.core.admission import AddressLimits, Lease, OriginPolicy, Refusal
from xmeet.web_errors import error_body

__all__ = ["Admission", "client_address"]

log = Logger()


def client_address(request: Request) -> str:
    """
    The address a request counts for in the per-address limits: the
    TCP peer's host (C{""} for a peer without one, such as a UNIX socket).
    """
    return str(getattr(request.getClientAddress(), "host", ""))


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


class Admission:
    """
    The origin policy and per-address limits of one node.

    @ivar origins: the L{OriginPolicy} of C{--cors-origins}.
    @ivar limits: the L{AddressLimits} of every front end of the node.
    @ivar refused: handshakes refused so far, by refusal code.
    """

    def __init__(self, clock: IReactorTime, origins: OriginPolicy, limits: AddressLimits) -> None:
        self.clock = clock
        self.origins = origins
        self.limits = limits
        self.refused: Counter[str] = Counter()

    @classmethod
    def of(cls, settings: Settings, clock: IReactorTime) -> Admission:
        """
        The admission of a node with C{settings}.
        """
        return cls(
            clock,
            OriginPolicy.of(settings.cors_origins),
            AddressLimits(
                settings.max_connections_per_ip,
                settings.connection_rate_per_ip,
                settings.connection_burst_per_ip,
            ),
        )

    def origin_refusal(self, request: Request) -> Refusal | None:
        """
        The refusal of C{request} when its C{Origin} is not allowed.
        """
        return self.origins.refusal(_header(request, b"origin"), _header(request, b"host"))

    def admit(self, request: Request) -> Lease | Refusal | None:
        """
        A lease for one more connection from C{request}'s client, or the
        refusal of the per-address limits; C{None} when admitted with
        nothing to count (no connection limit).
        """
        return self.limits.admit(client_address(request), self.clock.seconds())

    def refuse(self, request: Request, refusal: Refusal) -> bytes:
        """
        Answer C{request} with C{refusal}'s status and JSON error object,
        logged as one info line and counted.
        """
        self.refused[refusal.code] += 1
        log.info(
            "refused handshake from {address}: {status} {message}",
            address=client_address(request),
            status=refusal.status,
            message=refusal.message,
        )
        request.setResponseCode(refusal.status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return error_body(refusal.status, refusal.message, refusal.code)
