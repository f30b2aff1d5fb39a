# -*- test-case-name: tests.test_im_socketio -*-
"""
xmeet's Socket.IO application on the default namespace: the IM protocol
and the xnest events, with the C{connect} and C{disconnect} handlers they
share.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IReactorTime

from xmeet.config import Settings
from xmeet.core.im import IMError
from xmeet.handlers.im_events import answer, client_of, register_im_events
from xmeet.handlers.xnest_events import XnestEvents
from xmeet.im.service import IMService
from xmeet.rooms import RoomService
from xmeet.socketio import Namespace, Socket

__all__ = ["register_socketio_app", "unknown_event"]

#: Characters of an unknown event's name repeated in the error message.
SHOWN_NAME = 100


def unknown_event(socket: Socket, acked: bool, event: str, *ignored: Any) -> Any:
    """
    Answer an event nobody handles (a typo, a call of a newer protocol
    version) with the error object C{404 unknown_event} naming it: as its
    acknowledgement, or as an C{error} event when none was asked for, so
    the client learns at once instead of at its timeout.
    """
    shown = event if len(event) <= SHOWN_NAME else event[:SHOWN_NAME] + "..."
    error = IMError(404, "unknown_event", f"unknown event {json.dumps(shown)}")
    return answer(socket, acked, error)


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
    disconnection its session ends and it leaves its xnests. An event the
    application does not know is answered with L{unknown_event}.
    """
    register_im_events(namespace, im, clock)
    namespace.on_unknown_event(unknown_event)
    xnests = XnestEvents(namespace, rooms, settings, clock)

    @namespace.on("connect")
    def connect(socket: Socket, auth: Any) -> None:
        socket.emit("connected", {"socketId": socket.id})

    @namespace.on("disconnect")
    def disconnect(socket: Socket, reason: str) -> None:
        im.socket_closed(client_of(socket))
        xnests.disconnected(socket)
