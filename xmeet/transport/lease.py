# -*- test-case-name: tests.test_admission -*-
"""
WebSocket connections that hold their admission's L{Lease} (see
L{xmeet.admission}) for as long as their TCP connection lives.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.server import Request

from xmeet.core.admission import Lease

from .lean import UpgradeResource
from .producer import BoundedSendProtocol

__all__ = ["LeasedConnection", "upgrade_with_lease"]


class LeasedConnection(BoundedSendProtocol):
    """
    The base of both front ends' WebSocket protocols: releases the
    connection's lease (given by L{upgrade_with_lease}) once its TCP
    connection is lost, which Twisted reports exactly once however the
    connection ended.
    """

    lease: Lease | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Release the lease after the protocol's own clean-up.
        """
        try:
            super().connectionLost(reason)
        finally:
            lease, self.lease = self.lease, None
            if lease is not None:
                lease.release()


class _LeasingFactory:
    """
    Stands for a WebSocket factory during one upgrade: the protocol it
    builds gets the lease.
    """

    def __init__(self, factory: Any, lease: Lease) -> None:
        self._factory = factory
        self.lease: Lease | None = lease

    def buildProtocol(self, address: Any) -> Any:
        protocol = self._factory.buildProtocol(address)
        if protocol is not None:
            protocol.lease, self.lease = self.lease, None
        return protocol


def upgrade_with_lease(request: Request, factory: Any, lease: Lease | None) -> bytes | int:
    """
    Hand C{request} to C{factory}'s WebSocket protocol, like
    L{UpgradeResource}, the new connection holding C{lease}, if any; if no
    connection was made, the lease is released at once.
    """
    if lease is None:
        plain: bytes | int = UpgradeResource(factory).render(request)
        return plain
    leasing = _LeasingFactory(factory, lease)
    try:
        result: bytes | int = UpgradeResource(leasing).render(request)
    finally:
        if leasing.lease is not None:
            leasing.lease.release()
    return result
