# -*- test-case-name: tests.test_engineio_session -*-
"""
The interfaces of Engine.IO: between it and whatever runs on top of it,
and between its own parts.

The Socket.IO server implements L{IEngineIOHandler}; Engine.IO calls it and
never the other way round, so either side can be tested alone.

Inside, a session (L{xmeet.engineio.socket.EngineIOSocket}) is given its
L{SessionConfig} and a L{SessionOwner} (the server) and calls the owner by
method; a transport reports to its L{TransportOwner} (the session); the
session drives its transports through L{Transport}. No part imports the
one above it, not even for types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface

from .packets import Packet
from .prepared import PreparedPacket

__all__ = ["IEngineIOHandler", "SessionConfig", "SessionOwner", "Transport", "TransportOwner"]


@attrs.frozen
class SessionConfig:
    """
    What every session of a server shares.

    @ivar clock: the clock of heartbeats and upgrade timeouts.
    @ivar ping_interval: seconds between pings (revision 4).
    @ivar ping_timeout: seconds a pong (revision 4) or ping (revision 3)
        may take.
    @ivar upgrade_timeout: seconds a probing WebSocket has to complete.
    """

    clock: IReactorTime
    ping_interval: float
    ping_timeout: float
    upgrade_timeout: float = 10.0


class TransportOwner(Protocol):
    """
    What a transport reports to: its session.
    """

    def packet_received(self, transport: Transport, packet: Packet) -> None:
        """
        C{transport} decoded one packet.
        """

    def parse_error(self, transport: Transport) -> None:
        """
        C{transport} received something that does not decode.
        """

    def transport_error(self, transport: Transport, description: str) -> None:
        """
        C{transport} broke a rule or failed.
        """

    def transport_closed(self, transport: Transport) -> None:
        """
        The client closed C{transport}.
        """


class Transport(Protocol):
    """
    What a session needs from a transport.
    """

    name: str

    def write(self, packet: PreparedPacket) -> None:
        """
        Send (or buffer) one packet.
        """

    def shutdown(self, polite: bool) -> None:
        """
        Stop the transport for good; when C{polite}, tell the client first
        (a close packet on a pending poll, a close frame on a WebSocket).
        """

    def drain_and_close(self, done: Callable[[], None]) -> None:
        """
        Deliver what is buffered and a close packet, then call C{done}.
        """

    def prompt_upgrade(self) -> None:
        """
        A WebSocket probe succeeded: answer polls at once with a noop.
        """

    def cancel_upgrade(self) -> None:
        """
        The probe went away: polls wait for data again.
        """

    def hand_over(self) -> list[PreparedPacket]:
        """
        Stop for good and return the packets not yet delivered, for the
        transport that replaces this one.
        """

    def take_over(self, owner: TransportOwner) -> None:
        """
        Report to C{owner} from now on (a new session, or the session
        this transport was upgraded to).
        """


class SessionOwner(Protocol):
    """
    What a session tells the server that holds it.
    """

    def session_message(self, socket: Any, data: str | bytes) -> None:
        """
        C{socket} received a message packet.
        """

    def session_ended(self, socket: Any, reason: str) -> None:
        """
        C{socket} ended for C{reason}: forget it, tell the handler.
        """

    def closed_by_client(self, sid: str, polling: Any) -> None:
        """
        The client of long-polling session C{sid} sent a close packet
        (whose late polls C{polling} may still answer).
        """


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
