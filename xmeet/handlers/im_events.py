# -*- test-case-name: tests.test_im_events,tests.test_im_socketio -*-
"""
The IM protocol over Socket.IO (PROTOCOL.md section 3): one line per
event, translating Socket.IO calls into L{IMService} calls, whose values
L{xmeet.handlers.im_wire} renders.

Every event answers its acknowledgement when the client asked for one; an
error without an acknowledgement callback is emitted back as an C{error}
event carrying the same error object.

A push of the service is encoded once, as a Socket.IO packet prepared once
per namespace, for all the sockets it goes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from xmeet.core.im import IMError
from xmeet.handlers.im_wire import error_ack, render
from xmeet.im.client import Caller, IIMClient, Push
from xmeet.im.service import IMService
from xmeet.socketio import Namespace, PreparedEvent, Socket, SocketNamespace

__all__ = ["SocketClient", "client_of", "register_im_events", "answer"]

IM_CALLS: dict[str, Callable[[IMService, Caller, Any], object]] = {
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
        self._namespace = socket.namespace
        self._prepare = _preparer(socket.namespace)

    def push(self, push: Push) -> None:
        """
        Send the push to the socket, as the packet prepared once for every
        socket of this namespace.
        """
        self._socket.send_prepared(push.prepared(self._namespace, self._prepare))


def _preparer(namespace: SocketNamespace) -> Callable[[Push], PreparedEvent]:
    def prepare(push: Push) -> PreparedEvent:
        return namespace.prepare(push.event, push.data)

    return prepare


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
        return error_ack(error)
    socket.emit("error", error_ack(error))
    return None


def _handler(im: IMService, call: Callable[[IMService, Caller, Any], object]) -> Callable[..., Any]:
    def handle(socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        try:
            return render(call(im, Caller.socket(client_of(socket), payload), payload))
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
            logged_in = im.log_in(client, payload)
        except IMError as error:
            return answer(socket, acked, error)
        clock.callLater(0, im.flush_offline, client)
        return render(logged_in)

    for event, call in IM_CALLS.items():
        namespace.on(event, ack_aware=True)(_handler(im, call))
