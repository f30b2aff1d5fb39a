# -*- test-case-name: tests.test_socketio_server -*-
"""
What the Socket.IO layer needs from the Engine.IO layer, as structural types.

Typing against these protocols instead of the concrete Engine.IO classes keeps
the two layers independent: the tests drive the Socket.IO layer with an
in-memory engine, and the real one satisfies the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["EngineServer", "EngineSocket"]


class EngineSocket(Protocol):
    """
    One Engine.IO session (C{xmeet.engineio.EngineIOSocket}).
    """

    @property
    def sid(self) -> str:
        """The Engine.IO session id."""

    @property
    def revision(self) -> int:
        """The Engine.IO protocol revision: 3 or 4."""

    @property
    def transport_name(self) -> str:
        """The name of the current transport: C{"polling"} or C{"websocket"}."""

    @property
    def query(self) -> Mapping[str, str]:
        """The query parameters of the handshake request."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers of the handshake request."""

    @property
    def remote_address(self) -> str:
        """The peer's address."""

    def send(self, data: str | bytes) -> None:
        """Queue one message: C{str} as text, C{bytes} as binary."""

    def send_prepared(self, packet: Any) -> None:
        """Queue one message prepared by L{EngineServer.prepare}."""

    def close(self) -> None:
        """Close the session after flushing what is queued."""


class EngineServer(Protocol):
    """
    The Engine.IO server (C{xmeet.engineio.EngineIOServer}).
    """

    handler: Any

    def prepare(self, data: str | bytes) -> Any:
        """Encode one message packet once, for sending to many sockets."""
