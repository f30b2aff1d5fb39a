# -*- test-case-name: tests.test_engineio_session -*-
"""
The heartbeat of one Engine.IO session (L{xmeet.engineio.socket}). In
revision 4 the server pings every C{ping_interval} and the client must
answer within C{ping_timeout}; in revision 3 the client pings and the
session times out after C{ping_interval + ping_timeout} without one. Either
way one timer per session, reset rather than replaced, so that thousands
of idle sessions cost the reactor one delayed call each. Apart from the
session because its timing rules per revision are a concern of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall

from .interfaces import SessionConfig
from .packets import Packet, PacketType
from .prepared import PreparedPacket

__all__ = ["PING", "Heartbeat"]

PING = PreparedPacket(Packet(PacketType.PING))


class Heartbeat:
    """
    The one heartbeat timer of a session.

    @param send: writes a packet on the session's current transport.
    @param timed_out: ends the session (C{"ping timeout"}).
    """

    __slots__ = ("_awaiting_pong", "_config", "_revision", "_send", "_timed_out", "_timer")

    def __init__(
        self,
        config: SessionConfig,
        revision: int,
        send: Callable[[PreparedPacket], None],
        timed_out: Callable[[], None],
    ) -> None:
        self._config = config
        self._revision = revision
        self._send = send
        self._timed_out = timed_out
        self._timer: IDelayedCall | None = None
        self._awaiting_pong = False

    @property
    def _v3_timeout(self) -> float:
        return self._config.ping_interval + self._config.ping_timeout

    def start(self) -> None:
        """
        Start the timer, as the session opens.
        """
        delay = self._config.ping_interval if self._revision == 4 else self._v3_timeout
        self._timer = self._config.clock.callLater(delay, self._fire)

    def stop(self) -> None:
        """
        Stop the timer, as the session ends.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def pinged(self) -> None:
        """
        The client pinged (revision 3): it may stay silent again as long.
        """
        if self._timer is not None:
            self._timer.reset(self._v3_timeout)

    def ponged(self) -> None:
        """
        The client answered our ping (revision 4): ping again after the
        interval.
        """
        self._awaiting_pong = False
        if self._timer is not None:
            self._timer.reset(self._config.ping_interval)

    def _fire(self) -> None:
        """
        The timer fired: time to ping (revision 4, between pings) or the
        client was silent too long.
        """
        self._timer = None
        if self._revision == 3 or self._awaiting_pong:
            self._timed_out()
            return
        self._awaiting_pong = True
        self._send(PING)
        self._timer = self._config.clock.callLater(self._config.ping_timeout, self._fire)
