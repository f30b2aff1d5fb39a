# -*- test-case-name: tests.test_im_socketio -*-
"""
xmeet's Socket.IO application on the default namespace: the IM protocol
and the xnest events, with the C{connect} and C{disconnect} handlers they
share.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from xmeet.config import Settings
from xmeet.handlers.im_events import client_of, register_im_events
from xmeet.handlers.xnest_events import XnestEvents
from xmeet.im.service import IMService
from xmeet.rooms import RoomService
from xmeet.socketio import Namespace, Socket

__all__ = ["register_socketio_app"]


def register_socketio_app(
    namespace: Namespace,
    im: IMService,
    rooms: RoomService,
    settings: Settings,
    clock: IReactorTime,
) -> None:
    """
    Serve the IM protocol and the xnest events on C{namespace}.

    On connection the client gets C{connected} with its socket id; on
    disconnection its session ends and it leaves its xnests.
    """
    register_im_events(namespace, im, clock)
    xnests = XnestEvents(namespace, rooms, settings, clock)

    @namespace.on("connect")
    def connect(socket: Socket, auth: Any) -> None:
        socket.emit("connected", {"socketId": socket.id})

    @namespace.on("disconnect")
    def disconnect(socket: Socket, reason: str) -> None:
        im.socket_closed(client_of(socket))
        xnests.disconnected(socket)
