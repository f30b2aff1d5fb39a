# -*- test-case-name: tests.test_im_socketio -*-
"""
The IM protocol over Socket.IO (PROTOCOL.md section 3): one line per
event, translating Socket.IO calls into L{IMService} calls.

Every event answers its acknowledgement when the client asked for one; an
error without an acknowledgement callback is emitted back as an C{error}
event carrying the same error object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from xmeet.core.im import IMError
from xmeet.im import IIMClient, IMService
from xmeet.socketio import Namespace, Socket

__all__ = ["SocketClient", "client_of", "register_im_events", "answer"]

IM_CALLS = {
    "logOut": IMService.log_out,
    "session/refresh": IMService.session_refresh,
    "message/direct": IMService.direct_message,
    "message/conversation": IMService.conversation_message,
    "conversation/add": IMService.conversation_add,
    "conversation/join": IMService.conversation_join,
    "conversation/leave": IMService.conversation_leave,
    "conversation/update": IMService.conversation_update,
    "conversation/get": IMService.conversation_get,
    "conversation/list": IMService.conversation_list,
    "conversation/history": IMService.conversation_history,
}


@implementer(IIMClient)
class SocketClient:
    """
    A Socket.IO socket as the IM service sees it.
    """

    def __init__(self, socket: Socket) -> None:
        self.id = socket.id
        self._socket = socket

    def push(self, event: str, data: dict[str, Any]) -> None:
        """
        Emit C{event} to the socket.
        """
        self._socket.emit(event, data)


def client_of(socket: Socket) -> SocketClient:
    """
    The IM client of C{socket}, made on first use.
    """
    client = socket.data.get("im")
    if client is None:
        client = socket.data["im"] = SocketClient(socket)
    return client


def answer(socket: Socket, acked: bool, error: IMError) -> dict[str, Any] | None:
    """
    The error object as the acknowledgement, or, with none asked for, as an
    C{error} event.
    """
    if acked:
        return error.as_ack()
    socket.emit("error", error.as_ack())
    return None


def _handler(im: IMService, call: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    def handle(socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        try:
            return call(im, client_of(socket), payload)
        except IMError as error:
            return answer(socket, acked, error)

    return handle


def register_im_events(namespace: Namespace, im: IMService, clock: IReactorTime) -> None:
    """
    Serve the IM events on C{namespace}; the application's C{connect} and
    C{disconnect} handlers (L{xmeet.handlers.socketio_app}) do the rest.

    C{logIn} delivers the user's offline queue right after its
    acknowledgement (on the next reactor turn: the service keeps newer
    messages behind the queue until then, so the order holds).
    """

    @namespace.on("logIn", ack_aware=True)
    def log_in(socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        client = client_of(socket)
        try:
            ack = im.log_in(client, payload)
        except IMError as error:
            return answer(socket, acked, error)
        clock.callLater(0, im.flush_offline, client)
        return ack

    for event, call in IM_CALLS.items():
        namespace.on(event, ack_aware=True)(_handler(im, call))
