# -*- test-case-name: tests.test_engineio_session -*-
"""
The one interface between Engine.IO and whatever runs on top of it.

The Socket.IO server implements L{IEngineIOHandler}; Engine.IO calls it and
never the other way round, so either side can be tested alone.
"""

from __future__ import annotations

from zope.interface import Interface

__all__ = ["IEngineIOHandler"]


class IEngineIOHandler(Interface):
    """
    Receives the life of every Engine.IO session of one server.

    Exceptions raised by these methods are logged and otherwise ignored: a
    bug above Engine.IO must not kill the session machinery.
    """

    def connection_made(socket):
        """
        A new Engine.IO session opened; its open packet is already sent.

        @param socket: the L{xmeet.engineio.EngineIOSocket}.
        """

    def message_received(socket, data):
        """
        A message packet arrived.

        @param data: C{str} for a text message, C{bytes} for a binary one.
        """

    def connection_lost(socket, reason):
        """
        The session ended; C{socket} will not be used again.

        @param reason: as the official server names it: C{"transport close"},
            C{"ping timeout"}, C{"parse error"}, C{"transport error"},
            C{"forced close"} or C{"server shutting down"}.
        """
