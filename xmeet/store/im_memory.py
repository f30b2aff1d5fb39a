# -*- test-case-name: tests.test_im_backend -*-
"""
The IM backend of a node on its own: the service's memory is the whole
state, and there is nobody to tell.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from xmeet.store.im_interfaces import IIMBackend, IIMListener, IMEvent

__all__ = ["MemoryIMBackend"]


@implementer(IIMBackend)
class MemoryIMBackend:
    """
    No other node, no stored state: the service starts empty and serves at
    once.
    """

    connected = True

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id

    def start(self, listener: IIMListener) -> Deferred[None]:
        """
        Nothing to load.
        """
        return succeed(None)

    def publish(self, event: IMEvent) -> None:
        """
        The service's replica is everything; nobody else is told.
        """

    def stop(self) -> Deferred[None]:
        """
        Nothing to leave.
        """
        return succeed(None)
