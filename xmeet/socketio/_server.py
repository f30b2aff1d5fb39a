# -*- test-case-name: tests.test_socketio_server -*-
"""
The Socket.IO server: the handler of Engine.IO sessions, and the per-session
client that routes packets to namespace sockets.
"""

from __future__ import annotations

import secrets
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from xmeet.engineio.interfaces import IEngineIOHandler

from ._engine import EngineServer, EngineSocket
from ._errors import ConnectionRefused
from ._namespace import BroadcastOperator, Namespace
from ._socket import Handshake, Socket
from .packets import (
    Packet,
    PacketDecodeError,
    PacketDecoder,
    PacketType,
    PreparedEvent,
    encode_packet,
    split_v4_namespace,
)

__all__ = ["Client", "SocketIOServer"]

log = Logger()


def _refuse_false(result: object) -> object:
    """
    A C{connect} handler returning C{False} refuses the client.
    """
    if result is False:
        raise ConnectionRefused()
    return result


#: Packet types a client may only send to a namespace it is not connected to
#: (and, for CONNECT_ERROR, never).
_CONNECTION_TYPES = frozenset([PacketType.CONNECT, PacketType.CONNECT_ERROR])


@attrs.define(eq=False)
class Client:
    """
    One Engine.IO session, and its sockets in each namespace.

    Malformed packets, packets for a namespace the client is not connected
    to, and a missing namespace connection after the connect timeout close
    the session, as the official server does.
    """

    server: SocketIOServer
    engine_socket: EngineSocket
    _decoder: PacketDecoder = attrs.field(factory=PacketDecoder, init=False)
    _sockets: dict[str, Socket] = attrs.field(factory=dict, init=False)
    _timeout: IDelayedCall | None = attrs.field(default=None, init=False)
    _open: bool = attrs.field(default=True, init=False)

    @property
    def clock(self) -> IReactorTime:
        """
        The server's clock.
        """
        return self.server.clock

    @property
    def revision(self) -> int:
        """
        The Socket.IO protocol revision: 5 on Engine.IO 4, 4 on Engine.IO 3.
        """
        return 5 if self.engine_socket.revision >= 4 else 4

    def start(self, connect_timeout: float) -> None:
        """
        Wait for a namespace connection; Engine.IO 3 clients are connected
        to the main namespace at once, as they do not ask for it.
        """
        self._timeout = self.clock.callLater(connect_timeout, self._connect_timed_out)
        if self.revision == 4:
            self._connect("/", {})

    def received(self, message: str | bytes) -> None:
        """
        Handle one Engine.IO message.
        """
        try:
            packet = self._decoder.feed(message)
        except PacketDecodeError as e:
            log.info(
                "closing {sid}: malformed Socket.IO packet ({error})",
                sid=self.engine_socket.sid,
                error=str(e),
            )
            self.close()
            return
        if packet is not None:
            self._route(packet)

    def _route(self, packet: Packet) -> None:
        name, query = packet.namespace, None
        if self.revision == 4:
            name, query = split_v4_namespace(name)
        socket = self._sockets.get(name)
        if socket is None and packet.type is PacketType.CONNECT:
            self._connect(name, query if query is not None else packet.data or {})
        elif socket is not None and socket.connected and packet.type not in _CONNECTION_TYPES:
            socket.received(packet)
        else:
            log.info(
                "closing {sid}: unexpected {type} packet for {namespace}",
                sid=self.engine_socket.sid,
                type=packet.type.name,
                namespace=name,
            )
            self.close()

    def _connect(self, name: str, auth: dict[str, Any]) -> None:
        namespace = self.server.find_namespace(name)
        if namespace is None:
            self._send_connect_error(name, "Invalid namespace", None)
            return
        engine = self.engine_socket
        socket = Socket(
            namespace,
            self,
            self._socket_id(name),
            Handshake(auth, engine.query, engine.headers, engine.remote_address, self.revision),
        )
        self._sockets[name] = socket
        d = namespace.run_connect_handler(socket)
        d.addCallback(_refuse_false)
        d.addCallbacks(self._accepted, self._refused, callbackArgs=(socket,), errbackArgs=(socket,))
        d.addErrback(lambda f: log.failure("connecting {socket} failed", f, socket=socket.id))

    def _socket_id(self, name: str) -> str:
        """
        A new socket id: random in protocol v5 (the Engine.IO id is a
        secret), derived from the Engine.IO id in v4 as 2.x clients expect.
        """
        if self.revision == 5:
            return secrets.token_urlsafe(15)
        sid = self.engine_socket.sid
        return sid if name == "/" else f"{name}#{sid}"

    def _accepted(self, _: object, socket: Socket) -> None:
        if not self._open or self._sockets.get(socket.namespace.name) is not socket:
            return
        timeout, self._timeout = self._timeout, None
        if timeout is not None and timeout.active():
            timeout.cancel()
        socket.namespace.socket_connected(socket)
        data = {"sid": socket.id} if self.revision == 5 else None
        self.send_packet(Packet(PacketType.CONNECT, socket.namespace.name, data))
        socket._connected()

    def _refused(self, failure: Failure, socket: Socket) -> None:
        socket.lost("connect refused")
        refusal = failure.value
        if isinstance(refusal, ConnectionRefused):
            message, data = refusal.message, refusal.data
        else:
            log.failure(
                "connect handler of {namespace} failed", failure, namespace=socket.namespace.name
            )
            message, data = "Internal server error", None
        self._send_connect_error(socket.namespace.name, message, data)

    def _send_connect_error(self, name: str, message: str, data: Any) -> None:
        """
        Refuse a namespace connection: protocol v5 sends C{{message, data}},
        v4 the bare message.
        """
        payload: Any = message
        if self.revision == 5:
            payload = {"message": message} if data is None else {"message": message, "data": data}
        self.send_packet(Packet(PacketType.CONNECT_ERROR, name, payload))

    def _connect_timed_out(self) -> None:
        self._timeout = None
        if not any(socket.connected for socket in self._sockets.values()):
            log.info("closing {sid}: no namespace connection in time", sid=self.engine_socket.sid)
            self.close()

    def forget(self, socket: Socket) -> None:
        """
        Drop a socket that has disconnected or was refused.
        """
        if self._sockets.get(socket.namespace.name) is socket:
            del self._sockets[socket.namespace.name]

    def send_packet(self, packet: Packet) -> None:
        """
        Encode and send one packet.
        """
        self.send_messages(encode_packet(packet))

    def send_messages(self, messages: list[str | bytes]) -> None:
        """
        Send the Engine.IO messages of one encoded packet.
        """
        if self._open:
            for message in messages:
                self.engine_socket.send(message)

    def send_prepared(self, prepared: PreparedEvent) -> None:
        """
        Send the Engine.IO packets of a prepared event.
        """
        if self._open:
            for packet in prepared.packets:
                self.engine_socket.send_prepared(packet)

    def disconnect(self) -> None:
        """
        Disconnect every socket from its namespace, then close the session.
        """
        for socket in list(self._sockets.values()):
            socket.disconnect()
        self.close()

    def close(self, reason: str = "forced close") -> None:
        """
        Close the Engine.IO session from this side.
        """
        if self._open:
            self.lost(reason)
            self.engine_socket.close()

    def lost(self, reason: str) -> None:
        """
        The session is over: every socket disconnects with C{reason}.
        """
        if not self._open:
            return
        self._open = False
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self.server._clients.pop(self.engine_socket.sid, None)
        for socket in list(self._sockets.values()):
            socket.lost(reason)


@implementer(IEngineIOHandler)
class SocketIOServer:
    """
    A Socket.IO server on an Engine.IO server, whose handler it is.

    Create it, then register handlers on its namespaces::

        sio = SocketIOServer(engine, reactor)
        chat = sio.of("/")

        @chat.on("connect")
        def connect(socket, auth):
            socket.emit("welcome", socket.id)

        @chat.on("say")
        def say(socket, text):
            socket.to("lobby").emit("said", socket.id, text)
            return "ok"  # the acknowledgement, if the client asked for one

    @ivar clock: the clock for timeouts.
    @ivar connect_timeout: seconds a client has, after the Engine.IO
        handshake, to connect to a namespace before its session is closed.
    """

    def __init__(
        self,
        engine: EngineServer | None,
        clock: IReactorTime,
        connect_timeout: float = 45.0,
    ) -> None:
        """
        @param engine: the Engine.IO server, or C{None} to L{attach} one later
            (for an Engine.IO server built with this one as its handler).
        """
        self.clock = clock
        self.connect_timeout = connect_timeout
        self._engine: EngineServer | None = None
        self._namespaces: dict[str, Namespace] = {}
        self._clients: dict[str, Client] = {}
        self.of("/")
        if engine is not None:
            self.attach(engine)

    @property
    def engine(self) -> EngineServer:
        """
        The Engine.IO server.

        @raise RuntimeError: none is attached yet.
        """
        if self._engine is None:
            raise RuntimeError("no Engine.IO server attached")
        return self._engine

    def attach(self, engine: EngineServer) -> None:
        """
        Serve the sessions of C{engine}, becoming its handler.
        """
        engine.handler = self
        self._engine = engine

    def of(self, name: str) -> Namespace:
        """
        The namespace C{name}, created on first use.  Clients asking for a
        namespace that was never created are refused with
        C{"Invalid namespace"}.
        """
        if not name.startswith("/"):
            name = "/" + name
        namespace = self._namespaces.get(name)
        if namespace is None:
            namespace = self._namespaces[name] = Namespace(name, self)
        return namespace

    def find_namespace(self, name: str) -> Namespace | None:
        """
        The namespace C{name} if it was created (with L{of}).
        """
        return self._namespaces.get(name)

    def emit(self, event: str, *args: Any) -> None:
        """
        Send the event to every socket of the main namespace.
        """
        self.of("/").emit(event, *args)

    def to(self, *rooms: str) -> BroadcastOperator:
        """
        Broadcast to C{rooms} of the main namespace.
        """
        return self.of("/").to(*rooms)

    def connection_made(self, socket: EngineSocket) -> None:
        """
        A new Engine.IO session opened.
        """
        client = self._clients[socket.sid] = Client(self, socket)
        client.start(self.connect_timeout)

    def message_received(self, socket: EngineSocket, data: str | bytes) -> None:
        """
        An Engine.IO message arrived: text as C{str}, binary as C{bytes}.
        """
        client = self._clients.get(socket.sid)
        if client is not None:
            client.received(data)

    def connection_lost(self, socket: EngineSocket, reason: str) -> None:
        """
        An Engine.IO session closed, for the official C{reason}.
        """
        client = self._clients.get(socket.sid)
        if client is not None:
            client.lost(reason)
