# -*- test-case-name: tests.test_engineio_websocket -*-
"""
The WebSocket transport, on Autobahn.

Each Engine.IO packet is one WebSocket message. Sending goes through
L{PreparedPacket.frame}, so a broadcast frames a message once and every
WebSocket-transport socket writes the same bytes with
C{sendPreparedMessage}. Autobahn's own auto-ping stays off: the Engine.IO
heartbeat is made of Engine.IO packets and is run by the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.types import ConnectionRequest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from xmeet.transport.internals import registered_producer
from xmeet.transport.lean import compact, lean_protocol
from xmeet.transport.lease import LeasedConnection
from xmeet.transport.send import Outbox

from .interfaces import TransportOwner
from .packets import PacketDecodeError, decode_packet_v3, decode_packet_v4
from .prepared import PreparedPacket, WebSocketFlavour

__all__ = [
    "EngineIOWebSocketProtocol",
    "WebSocketOpener",
    "WebSocketTransport",
    "make_websocket_factory",
]

log = Logger()


def _flavour(revision: int, query: dict[str, str]) -> WebSocketFlavour:
    base64 = "b64" in query
    if revision == 4:
        return WebSocketFlavour.V4_BASE64 if base64 else WebSocketFlavour.V4
    return WebSocketFlavour.V3_BASE64 if base64 else WebSocketFlavour.V3


class WebSocketTransport:
    """
    A session's view of one WebSocket connection.

    The connection is the push producer of its TCP connection
    (L{xmeet.transport.producer}): while the kernel buffer is full,
    packets wait in its bounded queue (shared prepared packets, not
    copies); a client that cannot keep up ends its session with a
    transport error instead of the server's memory growing without bound.

    @ivar name: C{"websocket"}.
    @ivar revision: the Engine.IO revision of its session, 3 or 4.
    """

    __slots__ = (
        "_decode",
        "_open",
        "_socket",
        "connection",
        "flavour",
        "revision",
    )

    name = "websocket"

    def __init__(self, connection: EngineIOWebSocketProtocol, revision: int) -> None:
        self.connection = connection
        self.revision = revision
        self.flavour = _flavour(revision, connection.query)
        self._decode = decode_packet_v4 if revision == 4 else decode_packet_v3
        self._socket: TransportOwner | None = None
        self._open = True
        # The HTTP channel that accepted the upgrade is still registered as
        # the connection's producer; the WebSocket now produces instead.
        # (TCP and TLS transports allow unregistering when none is; test
        # transports that keep a None producer do not.)
        unregister = None
        if registered_producer(connection.transport) is not None:
            unregister = connection.unregisterProducer
        connection.become_producer(unregister)

    def take_over(self, owner: TransportOwner) -> None:
        """
        Report this connection's packets to C{owner}.
        """
        self._socket = owner

    def write(self, packet: PreparedPacket) -> None:
        """
        Send one packet as one WebSocket message, or queue it while the
        connection is paused.
        """
        if self._open:
            self.connection.send_bounded(packet.frame(self.flavour))

    def too_slow(self, frames: int, size: int) -> None:
        """
        The client went past a limit of the send queue.
        """
        if self._socket is not None:
            self._socket.transport_error(
                self, f"send queue full ({frames} packets, {size} bytes): client too slow"
            )

    def shutdown(self, polite: bool) -> None:
        """
        Close the connection (with a close frame, after the packets that
        wait for it; WebSocket has no ruder way that clients tell apart).
        """
        if self._open:
            self._open = False
            self.connection.sendClose()

    def drain_and_close(self, done: Callable[[], None]) -> None:
        """
        Everything written is already on its way: done at once.
        """
        done()

    def prompt_upgrade(self) -> None:
        """
        Nothing to prompt: a WebSocket is never upgraded.
        """

    def cancel_upgrade(self) -> None:
        """
        Nothing to cancel: a WebSocket is never upgraded.
        """

    def hand_over(self) -> list[PreparedPacket]:
        """
        A WebSocket is never replaced; nothing is left over.
        """
        return []

    def message(self, payload: bytes, is_binary: bool) -> None:
        """
        Decode one incoming message and pass it to the session.
        """
        if self._socket is None:
            return
        try:
            packet = self._decode(payload if is_binary else payload.decode("utf-8"))
        except (PacketDecodeError, UnicodeDecodeError):
            self._socket.parse_error(self)
            return
        self._socket.packet_received(self, packet)

    def closed(self, by_autobahn: bool) -> None:
        """
        The connection ended; tell the session how.

        @param by_autobahn: whether the server side started the close.
            Unless the session asked for it, that is Autobahn failing the
            connection (oversized message, protocol violation): a
            C{"transport error"}, as C{ws} errors are for the official
            server.
        """
        failed = by_autobahn and self._open
        self._open = False
        if self._socket is None:
            return
        if failed:
            self._socket.transport_error(self, "websocket failed")
        else:
            self._socket.transport_closed(self)


class WebSocketOpener(Protocol):
    """
    What a WebSocket connection tells once it is open: the Engine.IO
    server.
    """

    def websocket_opened(self, connection: EngineIOWebSocketProtocol) -> WebSocketTransport | None:
        """
        Make C{connection} a new session or an upgrade probe; C{None}
        after closing a connection that can join no session.
        """


class EngineIOWebSocketProtocol(LeasedConnection):
    """
    Autobahn protocol of Engine.IO WebSocket connections.

    The request was already verified by L{xmeet.engineio.EngineIOResource};
    on open, the server makes it a new session or an upgrade probe. A new
    session's connection holds its lease (L{xmeet.admission}) until the
    connection is lost; an upgrade probe belongs to a session already
    counted.

    @ivar query: the request's query parameters (first value of each).
    @ivar request_headers: its headers, lowercase names.
    @ivar transport_adapter: the L{WebSocketTransport} once attached.
    """

    factory: EngineIOWebSocketFactory
    query: dict[str, str]
    request_headers: dict[str, str]
    transport_adapter: WebSocketTransport | None = None

    def onConnect(self, request: ConnectionRequest) -> None:
        self.query = {name: values[0] for name, values in request.params.items() if values}
        self.request_headers = {name.lower(): value for name, value in request.headers.items()}

    def onOpen(self) -> None:
        self.transport_adapter = self.factory.opener.websocket_opened(self)
        compact(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.transport_adapter is not None:
            self.transport_adapter.message(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        adapter = self.transport_adapter
        if adapter is not None:
            self.transport_adapter = None
            adapter.closed(by_autobahn=self.closedByMe)

    def send_queue_full(self, frames: int, size: int) -> None:
        """
        The client does not read fast enough: its session ends.
        """
        if self.transport_adapter is not None:
            self.transport_adapter.too_slow(frames, size)


class EngineIOWebSocketFactory(WebSocketServerFactory):
    """
    Autobahn factory that knows who opens its connections' sessions.
    """

    protocol = EngineIOWebSocketProtocol  # type: ignore[assignment]

    def __init__(self, opener: WebSocketOpener, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.opener = opener


def make_websocket_factory(
    opener: WebSocketOpener,
    clock: IReactorTime,
    max_payload: int,
    options: dict[str, Any] | None,
    outbox: Outbox,
    max_queued: int,
    max_queued_bytes: int,
) -> EngineIOWebSocketFactory:
    """
    Build the Autobahn factory, capped at C{max_payload} like the official
    server's C{ws}: beyond it, a close frame with 1009 (not a dropped
    connection). Autobahn's auto-ping stays off. Its protocol class
    carries the options (L{xmeet.transport.lean.lean_protocol}), the
    C{outbox} and the limits of the send queue: set them here, not on
    the factory later.
    """
    factory = EngineIOWebSocketFactory(opener, reactor=clock)
    settings: dict[str, Any] = {
        "maxFramePayloadSize": max_payload,
        "maxMessagePayloadSize": max_payload,
        "autoPingInterval": 0,
        "autoFragmentSize": 0,
        "failByDrop": False,
    }
    settings.update(options or {})
    factory.setProtocolOptions(**settings)
    factory.protocol = lean_protocol(EngineIOWebSocketProtocol, factory)
    factory.protocol.outbox = outbox
    factory.protocol.max_queued_frames = max_queued
    factory.protocol.max_queued_bytes = max_queued_bytes
    return factory
