# -*- test-case-name: tests.test_engineio_e2e -*-
"""
A handler that sends every message back: for conformance suites, tests and
smoke checks of a deployment.
"""

from __future__ import annotations

from zope.interface import implementer

from .interfaces import IEngineIOHandler
from .socket import EngineIOSocket

__all__ = ["EchoHandler"]


@implementer(IEngineIOHandler)
class EchoHandler:
    """
    Echo each message to the socket it came from.

    @ivar lost: C{(sid, reason)} of every session that ended, oldest first.
    """

    def __init__(self) -> None:
        self.lost: list[tuple[str, str]] = []

    def connection_made(self, socket: EngineIOSocket) -> None:
        """
        Nothing to do on open.
        """

    def message_received(self, socket: EngineIOSocket, data: str | bytes) -> None:
        """
        Send C{data} back unchanged.
        """
        socket.send(data)

    def connection_lost(self, socket: EngineIOSocket, reason: str) -> None:
        """
        Remember why the session ended.
        """
        self.lost.append((socket.sid, reason))
