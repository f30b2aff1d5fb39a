# -*- test-case-name: tests.test_engineio_session -*-
"""
One Engine.IO session: its state machine and transport upgrade; its
heartbeat is L{Heartbeat}.

The session owns no sockets and no HTTP requests: it talks to its current
transport (polling or WebSocket) through the small L{Transport} protocol, so
its rules (heartbeat direction per revision, close reasons, the upgrade
dance) are tested with a L{twisted.internet.task.Clock} and fake transports.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from xmeet.core.admission import Lease

from .heartbeat import Heartbeat
from .interfaces import SessionConfig, SessionOwner, Transport
from .packets import Packet, PacketType
from .polling import PollingTransport
from .prepared import PreparedPacket

__all__ = ["EngineIOSocket", "Transport"]

log = Logger()

PONG = PreparedPacket(Packet(PacketType.PONG))
PROBE_PONG = PreparedPacket(Packet(PacketType.PONG, "probe"))


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class EngineIOSocket:
    """
    One Engine.IO session, as seen by the layer above.

    It is given the settings it shares with the server's other sessions
    and the L{SessionOwner} it reports to (the server), and reports by
    method.

    @ivar sid: the session id.
    @ivar revision: the Engine.IO protocol revision, 3 or 4.
    @ivar query: decoded query parameters of the handshake request.
    @ivar headers: headers of the handshake request, lowercase names.
    @ivar remote_address: the client's IP address.
    @ivar lease: what counts a long-polling session for its client
        address (L{xmeet.admission}), released when the session ends; a
        session opened over WebSocket is counted by its connection.
    """

    __slots__ = (
        "_config",
        "_heartbeat",
        "_owner",
        "_probe",
        "_probed",
        "_state",
        "_transport",
        "_upgrade_timer",
        "headers",
        "lease",
        "query",
        "remote_address",
        "revision",
        "sid",
        "upgraded",
    )

    def __init__(
        self,
        config: SessionConfig,
        owner: SessionOwner,
        sid: str,
        revision: int,
        transport: Transport,
        query: dict[str, str],
        headers: dict[str, str],
        remote_address: str,
    ) -> None:
        self._config = config
        self._owner = owner
        self.sid = sid
        self.revision = revision
        self.query = query
        self.headers = headers
        self.remote_address = remote_address
        self.lease: Lease | None = None
        self._transport = transport
        self._state = _State.OPEN
        self._heartbeat = Heartbeat(config, revision, self._write, self._ping_timeout)
        self._probe: Transport | None = None
        self._probed = False
        self._upgrade_timer: IDelayedCall | None = None
        self.upgraded = False

    def __repr__(self) -> str:
        return f"<EngineIOSocket {self.sid} EIO={self.revision} {self.transport_name}>"

    @property
    def transport_name(self) -> str:
        """
        The name of the current transport, C{"polling"} or C{"websocket"}.
        """
        return self._transport.name

    def polling_transport(self) -> PollingTransport | None:
        """
        The long-polling transport, while the session still uses one.
        """
        transport = self._transport
        return transport if isinstance(transport, PollingTransport) else None

    @property
    def closed(self) -> bool:
        """
        Whether the session has ended (or is ending).
        """
        return self._state is not _State.OPEN

    @property
    def upgrading(self) -> bool:
        """
        Whether a WebSocket is probing this session.
        """
        return self._probe is not None

    # --- sending ------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """
        Send one message packet; ignored once the session is closing.
        """
        self.send_prepared(PreparedPacket.message(data))

    def send_prepared(self, packet: PreparedPacket) -> None:
        """
        Send a packet prepared once by L{EngineIOServer.prepare}.
        """
        if self._state is _State.OPEN:
            self._transport.write(packet)

    # --- life cycle ---------------------------------------------------------

    def open(self, open_packet: PreparedPacket) -> None:
        """
        Send the open packet and start the heartbeat.
        """
        self._transport.write(open_packet)
        self._heartbeat.start()

    def _write(self, packet: PreparedPacket) -> None:
        self._transport.write(packet)

    def _ping_timeout(self) -> None:
        self._end("ping timeout", polite=True)

    def close(self) -> None:
        """
        Close the session from the server side (C{"forced close"}).

        Packets already sent are delivered first, then a close packet; the
        handler hears C{connection_lost} once the transport is done.
        """
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSING
        self._heartbeat.stop()
        self._abort_upgrade()
        self._transport.drain_and_close(lambda: self._end("forced close", polite=True))

    def shut_down(self) -> None:
        """
        Close at once because the server stops (C{"server shutting down"}).
        """
        self._end("server shutting down", polite=True)

    def _end(self, reason: str, polite: bool) -> None:
        """
        The one place a session ends: timers, transports, registry, handler.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._heartbeat.stop()
        self._abort_upgrade()
        self._transport.shutdown(polite)
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()
        log.debug("session {sid} closed: {reason}", sid=self.sid, reason=reason)
        self._owner.session_ended(self, reason)

    # --- events from transports ---------------------------------------------

    def transport_closed(self, transport: Transport) -> None:
        """
        The client went away (WebSocket closed, close packet received).
        """
        self._transport_ended(transport, "transport close", polite=False)

    def transport_error(self, transport: Transport, description: str) -> None:
        """
        A transport broke a rule or failed (C{"transport error"}).
        """
        log.info("session {sid}: {description}", sid=self.sid, description=description)
        self._transport_ended(transport, "transport error", polite=True)

    def parse_error(self, transport: Transport) -> None:
        """
        The client sent something that does not decode (C{"parse error"}).
        """
        log.info("session {sid}: parse error", sid=self.sid)
        self._transport_ended(transport, "parse error", polite=True)

    def _transport_ended(self, transport: Transport, reason: str, polite: bool) -> None:
        """
        The active transport failing ends the session; a probing one failing
        only ends the upgrade attempt.
        """
        if transport is self._transport:
            self._end(reason, polite)
        elif transport is self._probe:
            self._abort_upgrade()

    def packet_received(self, transport: Transport, packet: Packet) -> None:
        """
        Dispatch one decoded packet from C{transport}.
        """
        if transport is self._probe:
            self._probe_packet(packet)
        elif transport is self._transport and self._state is _State.OPEN:
            handler = self._handlers.get(packet.type)
            if handler is not None:
                handler(self, packet)

    def _on_ping(self, packet: Packet) -> None:
        if self.revision != 3:
            self.transport_error(self._transport, "invalid heartbeat direction")
            return
        self._heartbeat.pinged()
        self._transport.write(PONG)

    def _on_pong(self, packet: Packet) -> None:
        if self.revision == 3:
            self.transport_error(self._transport, "invalid heartbeat direction")
            return
        self._heartbeat.ponged()

    def _on_message(self, packet: Packet) -> None:
        self._owner.session_message(self, packet.data)

    def _on_close(self, packet: Packet) -> None:
        polling = self.polling_transport()
        if polling is not None and not polling.polling:
            self._owner.closed_by_client(self.sid, polling)
        self._end("transport close", polite=False)

    _handlers: dict[PacketType, Callable[[EngineIOSocket, Packet], None]] = {
        PacketType.PING: _on_ping,
        PacketType.PONG: _on_pong,
        PacketType.MESSAGE: _on_message,
        PacketType.CLOSE: _on_close,
    }

    # --- upgrade ------------------------------------------------------------

    def can_upgrade(self) -> bool:
        """
        Whether a new WebSocket may start probing this session.
        """
        return (
            self._state is _State.OPEN
            and self._probe is None
            and not self.upgraded
            and self._transport.name == "polling"
        )

    def start_upgrade(self, transport: Transport) -> None:
        """
        A WebSocket with this session id opened: wait for its probe.
        """
        self._probe = transport
        self._probed = False
        self._upgrade_timer = self._config.clock.callLater(
            self._config.upgrade_timeout, self._abort_upgrade
        )

    def _probe_packet(self, packet: Packet) -> None:
        assert self._probe is not None
        if packet.type is PacketType.PING and packet.data == "probe":
            self._probe.write(PROBE_PONG)
            self._probed = True
            # Answer the pending (and next) poll at once so the client can
            # pause polling and send the upgrade packet.
            self._transport.prompt_upgrade()
        elif packet.type is PacketType.UPGRADE and self._probed:
            self._complete_upgrade()
        else:
            self._abort_upgrade()

    def _complete_upgrade(self) -> None:
        probe = self._probe
        assert probe is not None
        self._stop_upgrade_timer()
        self._probe = None
        old, self._transport = self._transport, probe
        self.upgraded = True
        probe.take_over(self)
        for packet in old.hand_over():
            probe.write(packet)
        log.debug(
            "session {sid} upgraded to {transport_name}", sid=self.sid, transport_name=probe.name
        )

    def _abort_upgrade(self) -> None:
        probe, self._probe = self._probe, None
        self._stop_upgrade_timer()
        if probe is not None:
            probe.shutdown(True)
            self._transport.cancel_upgrade()

    def _stop_upgrade_timer(self) -> None:
        if self._upgrade_timer is not None and self._upgrade_timer.active():
            self._upgrade_timer.cancel()
        self._upgrade_timer = None
