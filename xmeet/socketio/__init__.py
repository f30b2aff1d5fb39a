# -*- test-case-name: tests.test_socketio_server -*-
"""
Socket.IO on Twisted: protocol v5 (socket.io 3.x/4.x clients) and v4
(socket.io 1.x/2.x clients on Engine.IO 3), as the official Node server
speaks them.

L{SocketIOServer} is the handler of an Engine.IO server; applications
register handlers on its namespaces (L{SocketIOServer.of}) and talk to
clients through L{Socket}s and L{BroadcastOperator}s.  Everything is
asynchronous in Twisted's way: handlers may return L{Deferred}s or be
coroutines, L{Socket.call} returns a L{Deferred}, and no threads are used.
"""

from ._errors import AckTimeout, ConnectionRefused, SocketDisconnected
from ._namespace import BroadcastOperator, Namespace
from ._server import SocketIOServer
from ._socket import EncodedAck, Handshake, Socket, SocketNamespace
from .packets import PreparedEvent

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "EncodedAck",
    "Handshake",
    "Namespace",
    "PreparedEvent",
    "Socket",
    "SocketDisconnected",
    "SocketIOServer",
    "SocketNamespace",
]
