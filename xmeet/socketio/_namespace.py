# -*- test-case-name: tests.test_socketio_server -*-
"""
Namespaces: the application's handlers, the connected sockets, their rooms,
and broadcasting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._engine import EngineServer
from ._socket import Socket, check_event_name
from .packets import Packet, PacketType, PreparedEvent, encode_event_json, encode_packet

__all__ = ["BroadcastOperator", "Namespace", "NamespaceOwner", "PreparedEvent"]

log = Logger()

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

#: Characters of an unknown event's name that its log line shows (as
#: C{repr}, which escapes whatever a log file could not encode).
_LOGGED_NAME = 100


def _event_name(value: Any) -> str:
    """
    The handler key of an event name, which clients may also send as a
    number (then named as JavaScript's C{String()} would).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return str(int(value))


class NamespaceOwner(Protocol):
    """
    What a namespace needs from the server it belongs to.
    """

    @property
    def engine(self) -> EngineServer:
        """
        The Engine.IO server, which prepares packets once for many sockets.
        """


@attrs.define(eq=False)
class Namespace:
    """
    A Socket.IO namespace such as C{"/"} or C{"/admin"}, obtained with
    L{SocketIOServer.of}.

    Handlers are registered with L{on}, one per event:

      - C{"connect"}: C{handler(socket, auth)} runs when a client connects.
        Raising L{ConnectionRefused} (or returning C{False}, or a
        L{Deferred} that does either) refuses the client; any other failure
        is logged and refuses it with C{"Internal server error"}.
      - C{"disconnect"}: C{handler(socket, reason)}, with the official
        reasons (C{"client namespace disconnect"},
        C{"server namespace disconnect"}, C{"transport close"},
        C{"ping timeout"}, C{"transport error"}, C{"parse error"},
        C{"forced close"}, C{"server shutting down"}).
      - any other name: C{handler(socket, *args)} for that event.  If the
        client asked for an acknowledgement, the handler's result (or the
        result of the L{Deferred} or coroutine it returns) becomes it:
        C{None} for no arguments, a C{tuple} for several, anything else as
        the single argument.  Failures are logged, and no acknowledgement
        is sent.

    An event without a handler is ignored, as the official server does,
    unless L{on_unknown_event} registered a handler for every such event.

    @ivar name: the namespace's name.
    """

    name: str
    _server: NamespaceOwner = attrs.field(repr=False)
    _handlers: dict[str, Callable[..., Any]] = attrs.field(factory=dict, init=False, repr=False)
    _ack_aware: set[str] = attrs.field(factory=set, init=False, repr=False)
    _unknown_event: Callable[..., Any] | None = attrs.field(default=None, init=False, repr=False)
    _sockets: dict[str, Socket] = attrs.field(factory=dict, init=False, repr=False)
    _rooms: dict[str, dict[Socket, None]] = attrs.field(factory=dict, init=False, repr=False)

    def on(self, event: str, *, ack_aware: bool = False) -> Callable[[_Handler], _Handler]:
        """
        Decorator registering the handler of C{event}, replacing any other.

        @param ack_aware: call the handler as C{handler(socket, acked,
            *args)}, C{acked} telling whether the client asked for an
            acknowledgement: a handler that reports errors otherwise (as an
            C{error} event) needs to know.
        """

        def register(handler: _Handler) -> _Handler:
            self._handlers[event] = handler
            if ack_aware:
                self._ack_aware.add(event)
            else:
                self._ack_aware.discard(event)
            return handler

        return register

    def on_unknown_event(self, handler: _Handler) -> _Handler:
        """
        Decorator registering the handler of every event that has none, as
        C{handler(socket, acked, event, *args)}: C{event} is the event's
        name and C{acked} tells whether the client asked for an
        acknowledgement, which the handler's result becomes as with L{on}.
        An application thus answers a call it does not know instead of
        leaving the client to wait for its timeout.
        """
        self._unknown_event = handler
        return handler

    @property
    def sockets(self) -> Mapping[str, Socket]:
        """
        The connected sockets, by id.
        """
        return self._sockets

    def to(self, *rooms: str) -> BroadcastOperator:
        """
        Broadcast to the sockets in any of C{rooms}.
        """
        return BroadcastOperator(self).to(*rooms)

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """
        Broadcast to every socket except those in C{rooms} (a socket id is
        a room too).
        """
        return BroadcastOperator(self).except_(*rooms)

    def emit(self, event: str, *args: Any) -> None:
        """
        Send the event to every connected socket of the namespace.
        """
        BroadcastOperator(self).emit(event, *args)

    def prepare(self, event: str, *args: Any) -> PreparedEvent:
        """
        Encode the event once, and prepare its Engine.IO packets once, for
        L{Socket.send_prepared} on many sockets of this namespace.
        """
        check_event_name(event)
        messages = encode_packet(Packet(PacketType.EVENT, self.name, [event, *args]))
        engine = self._server.engine
        return PreparedEvent(self.name, tuple(engine.prepare(m) for m in messages))

    def prepare_json(self, event: str, args_json: str) -> PreparedEvent:
        """
        Like L{prepare}, for arguments that are already JSON text (the
        items of the arguments array, comma-separated): nothing is decoded
        and encoded again.
        """
        check_event_name(event)
        text = encode_event_json(self.name, event, args_json)
        return PreparedEvent(self.name, (self._server.engine.prepare(text),))

    def _members(self, rooms: frozenset[str], excepts: frozenset[str]) -> list[Socket]:
        """
        The connected sockets in any of C{rooms} (all if empty) and in none
        of C{excepts}, each once, in the order they joined.
        """
        if rooms:
            chosen: dict[Socket, None] = {}
            for room in rooms:
                chosen.update(self._rooms.get(room, {}))
            candidates: Iterable[Socket] = chosen
        else:
            candidates = self._sockets.values()
        excluded = {s for room in excepts for s in self._rooms.get(room, ())}
        return [s for s in candidates if s.connected and s not in excluded]

    def add_to_room(self, socket: Socket, room: str) -> None:
        """
        C{socket} joined C{room}.
        """
        self._rooms.setdefault(room, {})[socket] = None

    def remove_from_room(self, socket: Socket, room: str) -> None:
        """
        C{socket} left C{room}.
        """
        members = self._rooms.get(room)
        if members is not None:
            members.pop(socket, None)
            if not members:
                del self._rooms[room]

    def run_connect_handler(self, socket: Socket) -> Deferred[Any]:
        """
        Run the C{connect} handler.

        @return: a L{Deferred} firing with C{None} to accept the client, or
            failing to refuse it.
        """
        handler = self._handlers.get("connect")
        if handler is None:
            return maybeDeferred(lambda: None)
        return maybeDeferred(handler, socket, socket.handshake.auth)

    def socket_connected(self, socket: Socket) -> None:
        """
        C{socket}'s client was told it is connected.
        """
        self._sockets[socket.id] = socket

    def dispatch(self, socket: Socket, event: Any, args: list[Any], ack_id: int | None) -> None:
        """
        Run the handler of an event a client sent, and acknowledge it with
        the handler's result if the client asked.
        """
        name = _event_name(event)
        handler = self._handlers.get(name)
        if handler is None:
            log.debug(
                "no handler for {event!r} in {namespace}",
                event=name[:_LOGGED_NAME],
                namespace=self.name,
            )
            if self._unknown_event is None:
                return
            d = maybeDeferred(self._unknown_event, socket, ack_id is not None, name, *args)
        elif name in self._ack_aware:
            d = maybeDeferred(handler, socket, ack_id is not None, *args)
        else:
            d = maybeDeferred(handler, socket, *args)
        if ack_id is not None:
            d.addCallback(lambda result: socket.acknowledge(ack_id, result))
        d.addErrback(self._handler_failed, name, socket)

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """
        Forget C{socket} and run the C{disconnect} handler.
        """
        self._sockets.pop(socket.id, None)
        handler = self._handlers.get("disconnect")
        if handler is not None:
            maybeDeferred(handler, socket, reason).addErrback(
                self._handler_failed, "disconnect", socket
            )

    def _handler_failed(self, failure: Failure, event: str, socket: Socket) -> None:
        log.failure(
            "handler of {event} in {namespace} failed for socket {socket}",
            failure,
            event=event,
            namespace=self.name,
            socket=socket.id,
        )


@attrs.frozen
class BroadcastOperator:
    """
    A selection of sockets of a namespace to emit to, built by chaining
    L{to} and L{except_}: C{ns.to("a").to("b").except_("c").emit(...)}
    reaches the sockets in room C{a} or C{b} but not in C{c}.

    The event is encoded once and its Engine.IO packets prepared once,
    whatever the number of sockets reached.
    """

    namespace: Namespace
    rooms: frozenset[str] = frozenset()
    excepts: frozenset[str] = frozenset()

    def to(self, *rooms: str) -> BroadcastOperator:
        """
        Also reach the sockets in C{rooms}.
        """
        return attrs.evolve(self, rooms=self.rooms.union(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """
        Leave out the sockets in C{rooms}.
        """
        return attrs.evolve(self, excepts=self.excepts.union(rooms))

    @property
    def sockets(self) -> list[Socket]:
        """
        The sockets currently selected.
        """
        return self.namespace._members(self.rooms, self.excepts)

    def emit(self, event: str, *args: Any) -> None:
        """
        Send the event to the selected sockets.
        """
        targets = self.sockets
        if targets:
            prepared = self.namespace.prepare(event, *args)
            for socket in targets:
                socket.send_prepared(prepared)

    def send_prepared(self, prepared: PreparedEvent) -> None:
        """
        Send an event prepared with L{Namespace.prepare} to the selected
        sockets.
        """
        for socket in self.sockets:
            socket.send_prepared(prepared)
