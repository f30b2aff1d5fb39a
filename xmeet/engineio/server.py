# -*- test-case-name: tests.test_engineio_session,tests.test_engineio_websocket -*-
"""
The Engine.IO server: settings, the session registry, handshakes.

It knows nothing of HTTP routing (that is L{xmeet.engineio.resource}) and
nothing of Socket.IO (that is the L{IEngineIOHandler} it is given).
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from xmeet.core.admission import Lease
from xmeet.transport.send import Outbox

from .interfaces import IEngineIOHandler, SessionConfig, Transport
from .packets import Packet, PacketType
from .polling import PollingTransport
from .prepared import PreparedPacket
from .socket import EngineIOSocket
from .websocket import (
    EngineIOWebSocketProtocol,
    WebSocketTransport,
    make_websocket_factory,
)

__all__ = ["EngineIOServer", "ErrorCode"]

log = Logger()

LATE_POLL_GRACE = 1.0
"""
Seconds after a client's close packet during which one poll of that
session is still answered (with a noop).
"""


class ErrorCode(enum.IntEnum):
    """
    The official error codes of a refused Engine.IO request.
    """

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5

    @property
    def message(self) -> str:
        """
        The official message that goes with the code.
        """
        return _MESSAGES[self]


_MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


def _may_probe(socket: EngineIOSocket | None, revision: int) -> bool:
    return socket is not None and socket.revision == revision and socket.can_upgrade()


class EngineIOServer:
    """
    All Engine.IO sessions of one endpoint and the settings they share.

    It is the owner of its sessions (L{xmeet.engineio.interfaces.SessionOwner})
    and the opener of its WebSocket connections: they call it by method.

    @ivar sockets: open sessions by id.
    @ivar config: what every session shares (clock, heartbeat, upgrade
        timeout).
    @ivar handler: the L{IEngineIOHandler} told about every session.
    @ivar websocket_factory: the Autobahn factory of the WebSocket transport.
    @ivar upgrade_timeout: seconds a probing WebSocket has to complete.
    @ivar max_buffered_packets: packets a session may have waiting for a
        slow client (polling buffer, paused WebSocket) before it is dropped.
    @ivar max_buffered_bytes: bytes a session may have waiting for a slow
        client (frames on the wire for a paused WebSocket, the answer's
        records for long-polling) before it is dropped.
    @ivar allow_request: called with the query and headers of each
        handshake; returning false refuses it with the official "Forbidden"
        answer (HTTP 403, code 4), like the official C{allowRequest}.
    @ivar http_compression_threshold: polling answers of at least this many
        bytes are gzip- or deflate-compressed when the client accepts it,
        as with the official C{httpCompression} default; C{None} disables.
    """

    def __init__(
        self,
        clock: IReactorTime,
        handler: IEngineIOHandler | None,
        *,
        ping_interval: float,
        ping_timeout: float,
        max_payload: int,
        cors_origins: tuple[str, ...] = (),
        allow_eio3: bool = True,
        websocket_options: dict[str, Any] | None = None,
        upgrade_timeout: float = 10.0,
        max_buffered_packets: int = 10_000,
        max_buffered_bytes: int = 4 * 1024 * 1024,
        allow_request: Callable[[dict[str, str], dict[str, str]], bool] | None = None,
        http_compression_threshold: int | None = 1024,
        outbox: Outbox | None = None,
    ) -> None:
        self.clock = clock
        self.handler = handler
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.cors_origins = cors_origins
        self.allow_eio3 = allow_eio3
        self.upgrade_timeout = upgrade_timeout
        self.max_buffered_packets = max_buffered_packets
        self.max_buffered_bytes = max_buffered_bytes
        self.allow_request = allow_request
        self.http_compression_threshold = http_compression_threshold
        self.config = SessionConfig(clock, ping_interval, ping_timeout, upgrade_timeout)
        self.sockets: dict[str, EngineIOSocket] = {}
        self._late_polls: dict[str, tuple[float, PollingTransport]] = {}
        self.websocket_factory = make_websocket_factory(
            self,
            clock,
            max_payload,
            websocket_options,
            outbox or Outbox(clock),
            max_buffered_packets,
            max_buffered_bytes,
        )

    def prepare(self, data: str | bytes) -> PreparedPacket:
        """
        Encode one message once, to send it to many sockets.
        """
        return PreparedPacket.message(data)

    def closed_by_client(self, sid: str, polling: PollingTransport) -> None:
        """
        A long-polling client closed its session. Its poll may be on its
        way on another connection, racing with the close: for
        L{LATE_POLL_GRACE} seconds one such poll gets a noop, as it would
        have had it arrived first, instead of an unknown-session error.
        """
        now = self.clock.seconds()
        self._forget_late_polls(now)
        self._late_polls[sid] = (now + LATE_POLL_GRACE, polling)

    def late_poll(self, sid: str) -> PollingTransport | None:
        """
        The transport of a session closed by its client an instant ago, for
        answering one late poll; C{None} otherwise.
        """
        self._forget_late_polls(self.clock.seconds())
        late = self._late_polls.pop(sid, None)
        return None if late is None else late[1]

    def _forget_late_polls(self, now: float) -> None:
        """
        Drop the expired entries, oldest first (the dict keeps them in the
        order they were added), so the map stays as small as one grace
        period's closes.
        """
        while self._late_polls:
            sid, (deadline, _) = next(iter(self._late_polls.items()))
            if deadline > now:
                break
            del self._late_polls[sid]

    def close_all(self) -> None:
        """
        End every session (C{"server shutting down"}).
        """
        for socket in list(self.sockets.values()):
            socket.shut_down()

    def allows(self, query: dict[str, str], headers: dict[str, str]) -> bool:
        """
        Whether the C{allow_request} hook (if any) accepts a handshake.
        """
        return self.allow_request is None or bool(self.allow_request(query, headers))

    def revision_of(self, query: dict[str, str]) -> int | None:
        """
        The revision a request asks for, or C{None} if not served.

        Unlike the official server, a missing or unknown C{EIO} is refused
        rather than taken for 3: the published test suite requires it and
        every real client sends it.
        """
        eio = query.get("EIO")
        if eio == "4":
            return 4
        if eio == "3" and self.allow_eio3:
            return 3
        return None

    # --- sessions ---------------------------------------------------------------

    def _open(
        self,
        transport: Transport,
        revision: int,
        query: dict[str, str],
        headers: dict[str, str],
        remote_address: str,
    ) -> EngineIOSocket:
        sid = secrets.token_urlsafe(15)
        socket = EngineIOSocket(
            self.config, self, sid, revision, transport, query, headers, remote_address
        )
        transport.take_over(socket)
        self.sockets[sid] = socket
        upgrades = ["websocket"] if transport.name == "polling" else []
        socket.open(self._open_packet(sid, upgrades))
        log.debug(
            "session {sid} opened over {transport_name}", sid=sid, transport_name=transport.name
        )
        return socket

    def _open_packet(self, sid: str, upgrades: list[str]) -> PreparedPacket:
        handshake = {
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": round(self.ping_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000),
            "maxPayload": self.max_payload,
        }
        return PreparedPacket(Packet(PacketType.OPEN, json.dumps(handshake, separators=(",", ":"))))

    def open_polling(
        self,
        request: Request,
        revision: int,
        query: dict[str, str],
        headers: dict[str, str],
        remote_address: str,
        lease: Lease | None = None,
    ) -> bytes | int:
        """
        Handshake over long-polling: answer C{request} with the open packet,
        then tell the handler (what it sends goes in the next poll, as with
        the official server). The session holds C{lease}, if any, until it
        ends.
        """
        transport = PollingTransport(
            revision,
            "b64" not in query,
            clock=self.clock,
            max_payload=self.max_payload,
            max_buffered=self.max_buffered_packets,
            max_buffered_bytes=self.max_buffered_bytes,
            compression_threshold=self.http_compression_threshold,
        )
        socket = self._open(transport, revision, query, headers, remote_address)
        socket.lease = lease
        response = transport.handle_get(request)
        self._connection_made(socket)
        return response

    def websocket_opened(self, connection: EngineIOWebSocketProtocol) -> WebSocketTransport | None:
        """
        A verified WebSocket opened: a new session, or an upgrade probe.

        Returns the transport, or C{None} after closing a connection that
        can no longer join its session.
        """
        revision = self.revision_of(connection.query)
        sid = connection.query.get("sid")
        existing = None if sid is None else self.sockets.get(sid)
        if revision is None or (sid is not None and not _may_probe(existing, revision)):
            log.debug("refusing websocket for session {sid}", sid=sid)
            connection.sendClose()
            return None
        transport = WebSocketTransport(connection, revision)
        if existing is not None:
            transport.take_over(existing)
            existing.start_upgrade(transport)
            return transport
        peer = connection.transport.getPeer() if connection.transport else None
        socket = self._open(
            transport,
            revision,
            connection.query,
            connection.request_headers,
            getattr(peer, "host", ""),
        )
        self._connection_made(socket)
        return transport

    def session_message(self, socket: EngineIOSocket, data: str | bytes) -> None:
        """
        A session received a message: the handler hears it.
        """
        handler = self.handler
        if handler is not None:
            with _logged("message_received"):
                handler.message_received(socket, data)

    def session_ended(self, socket: EngineIOSocket, reason: str) -> None:
        """
        A session ended: it leaves the registry, and the handler hears it.
        """
        if self.sockets.get(socket.sid) is socket:
            del self.sockets[socket.sid]
        handler = self.handler
        if handler is not None:
            with _logged("connection_lost"):
                handler.connection_lost(socket, reason)

    def _connection_made(self, socket: EngineIOSocket) -> None:
        handler = self.handler
        if handler is not None:
            with _logged("connection_made"):
                handler.connection_made(socket)


@contextmanager
def _logged(event: str) -> Iterator[None]:
    """
    Log (never raise) what the handler raises in C{event}: a bug above
    Engine.IO must not break the session machinery.
    """
    try:
        yield
    except Exception:
        log.failure("Engine.IO handler failed in {event}", event=event)
