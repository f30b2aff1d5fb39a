# -*- test-case-name: tests.test_socketio_server -*-
"""
A client's connection to one namespace: the object application handlers get.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ._engine import EngineSocket
from ._errors import AckTimeout, SocketDisconnected
from .packets import (
    RESERVED_EVENTS,
    Packet,
    PacketType,
    PreparedEvent,
    encode_ack_json,
    encode_packet,
)

__all__ = [
    "Broadcast",
    "EncodedAck",
    "Handshake",
    "Socket",
    "SocketClient",
    "SocketNamespace",
    "ack_args",
    "ack_value",
    "check_event_name",
]

log = Logger()


@attrs.frozen
class EncodedAck:
    """
    A handler's result whose acknowledgement arguments are already JSON
    text, sent as they are (see L{Namespace.prepare_json} for events).

    @ivar args_json: the arguments, an array's items comma-separated,
        without brackets.
    """

    args_json: str


def ack_args(result: Any) -> list[Any]:
    """
    The acknowledgement arguments for a handler's result: C{None} gives
    none, a C{tuple} gives one argument per item, anything else (a C{list}
    included) is the single argument.
    """
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def ack_value(args: list[Any]) -> Any:
    """
    The inverse of L{ack_args}: what a L{Socket.call} fires with.
    """
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def check_event_name(event: str) -> None:
    """
    Refuse to emit an event the client library reserves for itself, as the
    official server does.
    """
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


#: What a socket sends: the messages of one encoded packet, or a prepared event.
_Outgoing = list[str | bytes] | PreparedEvent


class Broadcast(Protocol):
    """
    A selection of sockets of a namespace to emit to
    (L{xmeet.socketio.BroadcastOperator}).
    """

    def to(self, *rooms: str) -> Broadcast:
        """
        Also reach the sockets in C{rooms}.
        """

    def except_(self, *rooms: str) -> Broadcast:
        """
        Leave out the sockets in C{rooms}.
        """

    @property
    def sockets(self) -> list[Socket]:
        """
        The sockets currently selected.
        """

    def emit(self, event: str, *args: Any) -> None:
        """
        Send the event to the selected sockets.
        """

    def send_prepared(self, prepared: PreparedEvent) -> None:
        """
        Send a prepared event to the selected sockets.
        """


class SocketNamespace(Protocol):
    """
    What a socket needs from its namespace (L{xmeet.socketio.Namespace}).
    """

    name: str

    def add_to_room(self, socket: Socket, room: str) -> None:
        """
        C{socket} joined C{room}.
        """

    def remove_from_room(self, socket: Socket, room: str) -> None:
        """
        C{socket} left C{room}.
        """

    def socket_connected(self, socket: Socket) -> None:
        """
        C{socket}'s client was told it is connected.
        """

    def dispatch(self, socket: Socket, event: Any, args: list[Any], ack_id: int | None) -> None:
        """
        Run the handler of an event C{socket}'s client sent.
        """

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """
        C{socket} disconnected for C{reason}.
        """

    def prepare(self, event: str, *args: Any) -> PreparedEvent:
        """
        C{event} encoded once for many sockets of the namespace: front ends
        that push to a socket prepare their events through its namespace.
        """

    def except_(self, *rooms: str) -> Broadcast:
        """
        Broadcast to every socket except those in C{rooms}.
        """


class SocketClient(Protocol):
    """
    What a socket needs from the client (one Engine.IO session) it belongs
    to: the server's C{Client}.
    """

    @property
    def engine_socket(self) -> EngineSocket:
        """
        The Engine.IO session.
        """

    @property
    def clock(self) -> IReactorTime:
        """
        The clock of acknowledgement timeouts.
        """

    def send_packet(self, packet: Packet) -> None:
        """
        Encode and send one packet.
        """

    def send_messages(self, messages: list[str | bytes]) -> None:
        """
        Send the Engine.IO messages of one encoded packet.
        """

    def send_prepared(self, prepared: PreparedEvent) -> None:
        """
        Send the Engine.IO packets of a prepared event.
        """

    def disconnect(self) -> None:
        """
        Disconnect every socket of the session and close it.
        """

    def forget(self, socket: Socket) -> None:
        """
        Drop a socket that has disconnected or was refused.
        """


class _State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@attrs.frozen
class Handshake:
    """
    What the client presented when it connected to the namespace.

    @ivar auth: the CONNECT payload (protocol v5), or the namespace's query
        parameters (protocol v4, socket.io 2.x clients).
    @ivar query: the query parameters of the Engine.IO handshake request.
    @ivar headers: the headers of the Engine.IO handshake request.
    @ivar address: the peer's address.
    @ivar revision: the Socket.IO protocol revision, 5 or 4.
    """

    auth: Mapping[str, Any]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    address: str
    revision: int


@attrs.define(eq=False)
class Socket:
    """
    One client connected to one namespace.

    Emitting, calling, joining rooms and disconnecting all work from the
    namespace's C{connect} handler already: what is emitted there is sent
    once the client is told it is connected (see L{_connected}).

    @ivar id: the socket id, as the client sees it in C{socket.id}.
    @ivar namespace: the L{Namespace}.
    @ivar handshake: the L{Handshake}.
    @ivar data: a dictionary for the application's own per-socket state.
    """

    namespace: SocketNamespace
    _client: SocketClient = attrs.field(repr=False)
    id: str
    handshake: Handshake = attrs.field(repr=False)
    data: dict[str, Any] = attrs.field(factory=dict, repr=False)
    _rooms: set[str] = attrs.field(factory=set, init=False, repr=False)
    _state: _State = attrs.field(default=_State.CONNECTING, init=False)
    _held: list[_Outgoing] | None = attrs.field(factory=list, init=False, repr=False)
    _disconnect_requested: bool = attrs.field(default=False, init=False, repr=False)
    _acks: dict[int, Deferred[Any]] = attrs.field(factory=dict, init=False, repr=False)
    _next_ack_id: int = attrs.field(default=0, init=False, repr=False)

    @property
    def connected(self) -> bool:
        """
        Whether the client is connected to the namespace.
        """
        return self._state is _State.CONNECTED

    @property
    def rooms(self) -> frozenset[str]:
        """
        The rooms this socket is in; it is always in the room named by its id.
        """
        return frozenset(self._rooms)

    @property
    def engine(self) -> EngineSocket:
        """
        The Engine.IO session under this socket (transport, address...).
        """
        return self._client.engine_socket

    def emit(self, event: str, *args: Any) -> None:
        """
        Send the event C{event} with C{args} (JSON values and C{bytes}) to
        the client, asking for no acknowledgement.
        """
        check_event_name(event)
        self._send(encode_packet(Packet(PacketType.EVENT, self.namespace.name, [event, *args])))

    def call(self, event: str, *args: Any, timeout: float | None = 30.0) -> Deferred[Any]:
        """
        Send the event and wait for the client's acknowledgement.

        @param timeout: seconds to wait, or C{None} to wait as long as the
            socket is connected.
        @return: a L{Deferred} firing with the acknowledgement's arguments:
            C{None} for none, the value for one, a C{tuple} for several.  It
            fails with L{AckTimeout} after C{timeout}, or with
            L{SocketDisconnected} if the socket disconnects first.
            Cancelling it forgets the acknowledgement.
        """
        check_event_name(event)
        if self._state is _State.DISCONNECTED:
            return fail(SocketDisconnected("socket is disconnected"))
        ack_id = self._next_ack_id
        messages = encode_packet(
            Packet(PacketType.EVENT, self.namespace.name, [event, *args], ack_id)
        )
        self._next_ack_id += 1
        timer: IDelayedCall | None = None

        def forget(_: object) -> None:
            self._acks.pop(ack_id, None)

        d: Deferred[Any] = Deferred(forget)
        if timeout is not None:
            timer = self._client.clock.callLater(timeout, self._ack_timed_out, ack_id, timeout)

        def stop_timer(result: object) -> object:
            if timer is not None and timer.active():
                timer.cancel()
            return result

        d.addBoth(stop_timer)
        self._acks[ack_id] = d
        self._send(messages)
        return d

    def send_prepared(self, prepared: PreparedEvent) -> None:
        """
        Send an event prepared once with L{Namespace.prepare} for many
        sockets of this namespace.
        """
        if prepared.namespace != self.namespace.name:
            raise ValueError(
                f"event prepared for {prepared.namespace!r}, socket is in {self.namespace.name!r}"
            )
        self._send(prepared)

    def join(self, *rooms: str) -> None:
        """
        Enter C{rooms}; joining a room twice is harmless.
        """
        for room in rooms:
            if room not in self._rooms:
                self._rooms.add(room)
                self.namespace.add_to_room(self, room)

    def leave(self, *rooms: str) -> None:
        """
        Leave C{rooms}; leaving a room one is not in is harmless.
        """
        for room in rooms:
            if room in self._rooms:
                self._rooms.discard(room)
                self.namespace.remove_from_room(self, room)

    def to(self, *rooms: str) -> Broadcast:
        """
        Broadcast to the sockets in C{rooms}, except this one.
        """
        return self.broadcast.to(*rooms)

    in_ = to

    @property
    def broadcast(self) -> Broadcast:
        """
        Broadcast to every socket of the namespace except this one.
        """
        return self.namespace.except_(self.id)

    def disconnect(self, close: bool = False) -> None:
        """
        Disconnect the client from this namespace, with the reason
        C{"server namespace disconnect"}.

        Called from the C{connect} handler, it lets the client connect and
        disconnects it right after, as the official server does when its
        C{connection} handler disconnects.

        @param close: also close the Engine.IO session, disconnecting the
            client from every namespace.
        """
        if self._state is _State.CONNECTING:
            self._disconnect_requested = True
        elif self._state is _State.CONNECTED:
            self._client.send_packet(Packet(PacketType.DISCONNECT, self.namespace.name))
            self.lost("server namespace disconnect")
        if close:
            self._client.disconnect()

    def _send(self, item: _Outgoing) -> None:
        """
        Send an encoded packet (encoded by the caller, so that a value JSON
        cannot carry fails where it was emitted) or a prepared event.
        """
        if self._state is _State.DISCONNECTED:
            return
        if self._held is not None:
            self._held.append(item)
        elif isinstance(item, list):
            self._client.send_messages(item)
        else:
            self._client.send_prepared(item)

    def _ack_timed_out(self, ack_id: int, timeout: float) -> None:
        d = self._acks.pop(ack_id, None)
        if d is not None:
            d.errback(AckTimeout(f"no acknowledgement within {timeout} seconds"))

    def _connected(self) -> None:
        """
        The client was told it is connected: send what was emitted meanwhile,
        right behind the CONNECT packet.
        """
        self._state = _State.CONNECTED
        self.join(self.id)
        self._release()
        if self._disconnect_requested:
            self.disconnect()

    def _release(self) -> None:
        """
        Send what was held back, and stop holding.
        """
        held = self._stop_holding()
        for item in held:
            self._send(item)

    def _stop_holding(self) -> list[_Outgoing]:
        """
        Stop holding packets back; return those held.
        """
        held, self._held = self._held, None
        return held or []

    def received(self, packet: Packet) -> None:
        """
        Handle a packet the client sent to this namespace.
        """
        kind = packet.type
        if kind in (PacketType.EVENT, PacketType.BINARY_EVENT):
            if packet.data is not None:
                self.namespace.dispatch(self, packet.data[0], packet.data[1:], packet.id)
        elif kind in (PacketType.ACK, PacketType.BINARY_ACK):
            self._acknowledged(packet)
        elif kind is PacketType.DISCONNECT:
            self.lost("client namespace disconnect")

    def _acknowledged(self, packet: Packet) -> None:
        d = self._acks.pop(packet.id, None) if packet.id is not None else None
        if d is None:
            log.debug("ignoring unknown ack {ack_id} on {socket}", ack_id=packet.id, socket=self.id)
            return
        d.callback(ack_value(packet.data or []))

    def acknowledge(self, ack_id: int, result: Any) -> None:
        """
        Send a handler's result as the acknowledgement the client asked for.
        """
        if isinstance(result, EncodedAck):
            self._send([encode_ack_json(self.namespace.name, ack_id, result.args_json)])
            return
        self._send(
            encode_packet(Packet(PacketType.ACK, self.namespace.name, ack_args(result), ack_id))
        )

    def lost(self, reason: str) -> None:
        """
        The socket is gone: leave every room, fail pending calls, and run the
        C{disconnect} handler if the client had been connected.
        """
        if self._state is _State.DISCONNECTED:
            return
        was_connected = self._state is _State.CONNECTED
        self._state = _State.DISCONNECTED
        self.leave(*self._rooms)
        self._stop_holding()
        self._client.forget(self)
        acks, self._acks = self._acks, {}
        for d in acks.values():
            d.errback(SocketDisconnected(reason))
        if was_connected:
            self.namespace.socket_disconnected(self, reason)
