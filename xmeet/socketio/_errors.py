# -*- test-case-name: tests.test_socketio_server -*-
"""
Exceptions of the Socket.IO API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AckTimeout", "ConnectionRefused", "SocketDisconnected"]


class ConnectionRefused(Exception):
    """
    Raised by a C{connect} handler to refuse a client: the client receives
    C{CONNECT_ERROR} with C{{"message": message, "data": data}} (C{data} only
    if not C{None}), which C{socket.io-client} reports as C{connect_error}.
    """

    def __init__(self, message: str = "Connection rejected by server", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(Exception):
    """
    The client did not acknowledge a L{Socket.call} in time.
    """


class SocketDisconnected(Exception):
    """
    The socket disconnected before the client acknowledged a L{Socket.call}.

    @ivar reason: the disconnect reason, e.g. C{"transport close"}.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
