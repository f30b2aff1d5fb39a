# -*- test-case-name: tests.test_xnest_socketio,tests.test_lone_surrogates -*-
"""
Xmeet rooms from Socket.IO (PROTOCOL.md section 3, last bullet):
C{xnest/join}, C{xnest/send}, C{xnest/leave}, and room frames arriving as
the event C{xnest}.

A Socket.IO socket may be in several xnests; it is one member of each. The
room frames are the very frames WebSocket members get: a broadcast frame
is turned into one Socket.IO packet, prepared once, for every Socket.IO
member.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from xmeet.config import Settings
from xmeet.core.frames import Frame, dumps
from xmeet.core.im import IMError
from xmeet.core.limits import SenderPolicy, Verdict
from xmeet.core.room import Member
from xmeet.core.rules import InvalidName, not_unicode, validate_xnest_id
from xmeet.handlers.im_events import answer
from xmeet.rooms import Greeting, IMemberSink, RoomService
from xmeet.socketio import EncodedAck, Namespace, PreparedEvent, Socket

__all__ = ["TOO_MANY_XNESTS", "XnestEvents"]

_MEMBERSHIPS = "xnests"
_POLICY = "xnest-sender-policy"
TOO_MANY_XNESTS = "too_many_xnests"


def _bad(message: str) -> IMError:
    return IMError.of(400, message)


def _fields(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _bad("payload must be an object")
    return payload


def _xnest_id(fields: dict[str, Any]) -> str:
    xnest_id = fields.get("xnest")
    if not isinstance(xnest_id, str):
        raise _bad("xnest must be a string")
    try:
        return validate_xnest_id(xnest_id)
    except InvalidName as error:
        raise _bad(str(error)) from None


def _greeting_ack(greeting: Greeting) -> EncodedAck:
    """
    The C{xnest/join} acknowledgement C{{statusCode: 200, body: {self,
    member_count, members, history}}}, built from the greeting's JSON.
    """
    return EncodedAck(
        '{"statusCode":200,"body":{"self":'
        + dumps(greeting.member.id)
        + ',"member_count":'
        + str(greeting.member_count)
        + ',"members":'
        + greeting.members_json
        + ',"history":'
        + greeting.history_json
        + "}}"
    )


@implementer(IMemberSink)
class _SocketMember:
    """
    A Socket.IO socket as a member's sink.
    """

    __slots__ = ("_events", "_socket")

    def __init__(self, socket: Socket, events: XnestEvents) -> None:
        self._socket = socket
        self._events = events

    def deliver(self, frame: Frame) -> None:
        """
        Send the frame as the event C{xnest}, prepared once per frame.
        """
        self._socket.send_prepared(frame.prepared(self._events, self._events.prepare))


class XnestEvents:
    """
    The xnest events of one namespace.
    """

    def __init__(
        self, namespace: Namespace, rooms: RoomService, settings: Settings, clock: IReactorTime
    ) -> None:
        self._namespace = namespace
        self._rooms = rooms
        self._settings = settings
        self._clock = clock
        namespace.on("xnest/join", ack_aware=True)(self.join)
        namespace.on("xnest/send", ack_aware=True)(self.send)
        namespace.on("xnest/leave", ack_aware=True)(self.leave)

    def prepare(self, frame_text: str) -> PreparedEvent:
        """
        The C{xnest} event carrying one frame, encoded once.
        """
        return self._namespace.prepare_json("xnest", frame_text)

    @staticmethod
    def _memberships(socket: Socket) -> dict[str, Member | None]:
        return socket.data.setdefault(_MEMBERSHIPS, {})

    def join(self, socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        """
        C{xnest/join} C{{xnest, nickname, is_store_history?}}: the ack holds
        the greeting, C{{self, member_count, members, history}}.

        A socket may be in C{max_xnests_per_socket} xnests (429
        C{too_many_xnests} beyond), and each join takes a token of the
        socket's rate limit, as a message does.
        """
        try:
            fields = _fields(payload)
            xnest_id = _xnest_id(fields)
            nickname = self._nickname(fields.get("nickname"))
            store_history = fields.get("is_store_history", True)
            if not isinstance(store_history, bool):
                raise _bad("is_store_history must be true or false")
            memberships = self._memberships(socket)
            if xnest_id in memberships:
                raise _bad(f"already in xnest {xnest_id!r}")
            self._check_room_for_one_more(memberships)
            self._check_rate(socket)
        except IMError as error:
            return succeed(answer(socket, acked, error))
        memberships[xnest_id] = None
        joining = self._rooms.join(xnest_id, nickname, _SocketMember(socket, self), store_history)
        return joining.addCallback(self._joined, socket, xnest_id)

    def _joined(self, greeting: Greeting, socket: Socket, xnest_id: str) -> EncodedAck | None:
        member = greeting.member
        memberships = socket.data.get(_MEMBERSHIPS)
        if not socket.connected or memberships is None or xnest_id not in memberships:
            self._rooms.leave(member)
            return None
        memberships[xnest_id] = member
        return _greeting_ack(greeting)

    def _nickname(self, value: Any) -> str:
        if value is not None and not isinstance(value, str):
            raise _bad("nickname must be a string")
        try:
            return self._rooms.choose_nickname(value)
        except InvalidName as error:
            raise _bad(str(error)) from None

    def _member(self, socket: Socket, fields: dict[str, Any]) -> Member:
        xnest_id = _xnest_id(fields)
        member = self._memberships(socket).get(xnest_id)
        if member is None:
            raise IMError.of(403, f"not a member of xnest {xnest_id!r}: xnest/join first")
        return member

    def send(self, socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        """
        C{xnest/send} C{{xnest, payload}}: the payload is a message or an
        C{@} command, as on the WebSocket.
        """
        try:
            fields = _fields(payload)
            member = self._member(socket, fields)
            text = fields.get("payload")
            if not isinstance(text, str):
                raise _bad("payload must be a string")
            if _utf8_size(text) > self._settings.max_message_size:
                raise IMError.of(
                    413, f"payload is larger than {self._settings.max_message_size} bytes"
                )
            self._check_rate(socket)
        except IMError as error:
            return answer(socket, acked, error)
        self._rooms.receive(member, text)
        return {"statusCode": 200, "body": {}}

    def _check_room_for_one_more(self, memberships: dict[str, Member | None]) -> None:
        limit = self._settings.max_xnests_per_socket
        if len(memberships) >= limit:
            raise IMError(429, TOO_MANY_XNESTS, f"already in {limit} xnests: xnest/leave one first")

    def _check_rate(self, socket: Socket) -> None:
        """
        Judge one call by the socket's sender policy. Every call is
        answered, so every dropped one gets its 429; the policy closes no
        flood here, as the Engine.IO session also carries the IM protocol.
        """
        now = self._clock.seconds()
        policy = socket.data.get(_POLICY)
        if policy is None:
            policy = socket.data[_POLICY] = SenderPolicy(
                self._settings.rate, self._settings.burst, now, closes_floods=False
            )
        if policy.judge(now) is not Verdict.ACCEPT:
            raise IMError.of(429, f"more than {self._settings.rate:g} messages a second")

    def leave(self, socket: Socket, acked: bool, payload: Any = None, *ignored: Any) -> Any:
        """
        C{xnest/leave} C{{xnest}}.
        """
        try:
            member = self._member(socket, _fields(payload))
        except IMError as error:
            return answer(socket, acked, error)
        assert member.room is not None
        del self._memberships(socket)[member.room.xnest_id]
        self._rooms.leave(member)
        return {"statusCode": 200, "body": {}}

    def disconnected(self, socket: Socket) -> None:
        """
        The socket went away: it leaves every xnest it was in.
        """
        memberships = socket.data.pop(_MEMBERSHIPS, {})
        for member in memberships.values():
            if member is not None:
                self._rooms.leave(member)


def _utf8_size(payload: str) -> int:
    """
    The size of C{payload} in UTF-8, encoded once: text UTF-8 cannot carry
    (a lone surrogate from a JSON escape) is refused here.
    """
    try:
        return len(payload.encode("utf-8"))
    except UnicodeEncodeError:
        raise _bad(not_unicode("payload")) from None
