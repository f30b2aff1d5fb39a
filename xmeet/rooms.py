# -*- test-case-name: tests.test_rooms -*-
"""
The room service: every xnest of this node, who is in it, and what a
member's message does.

Front ends (the xgate WebSocket protocol, Socket.IO handlers, the HTTP API)
call this service and never change a room themselves. A broadcast builds
its frame once and hands the same L{Frame} to every member's sink.
"""

from __future__ import annotations

from collections import OrderedDict
from zoneinfo import ZoneInfo

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from xmeet.config import Settings
from xmeet.core.commands import (
    ChangeName,
    Chat,
    CommandError,
    HistoryRequest,
    Ignored,
    PrivateMessage,
    parse_command,
)
from xmeet.core.frames import Frame, SendTimeFormatter, dumps, frame_json
from xmeet.core.ids import IdGenerator
from xmeet.core.room import Member, Room
from xmeet.core.rules import InvalidName, normalize_nickname

__all__ = ["IMemberSink", "RoomService"]

log = Logger()


class IMemberSink(Interface):
    """
    Whatever takes a member's frames: a WebSocket connection, a Socket.IO
    socket. One frame object is shared by all members of a broadcast.
    """

    def deliver(frame: Frame) -> None:
        """
        Send C{frame} to this member; must not raise and must not block.
        """


class RoomService:
    """
    All xnests of one node.

    Rooms with members live in C{_active}. A room whose last member left
    keeps its history in C{_idle}, a least-recently-used map bounded by
    C{settings.max_idle_rooms}, so clients inventing room ids cannot
    exhaust memory.
    """

    def __init__(self, clock: IReactorTime, settings: Settings, ids: IdGenerator) -> None:
        self._clock = clock
        self._settings = settings
        self._ids = ids
        self._send_time = SendTimeFormatter(ZoneInfo(settings.timezone))
        self._active: dict[str, Room] = {}
        self._idle: OrderedDict[str, Room] = OrderedDict()

    @property
    def active_rooms(self) -> int:
        """
        How many rooms have members now.
        """
        return len(self._active)

    @property
    def idle_rooms(self) -> int:
        """
        How many empty rooms still keep their history.
        """
        return len(self._idle)

    def find(self, xnest_id: str) -> Room | None:
        """
        The room C{xnest_id}, with members or idle, without creating it or
        refreshing its place in the idle list.
        """
        return self._active.get(xnest_id) or self._idle.get(xnest_id)

    def history_page(self, xnest_id: str, cursor: int) -> str:
        """
        Page C{cursor} of a room's history as JSON; an unknown room has an
        empty history.
        """
        room = self.find(xnest_id)
        return room.history.page_json(cursor) if room is not None else "[]"

    def _now(self) -> str:
        return self._send_time.format(self._clock.seconds())

    def _frame(
        self,
        sender_id: str,
        room: Room,
        frame_type: str,
        payload_json: str,
        send_time: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> Frame:
        return Frame(
            frame_json(
                sender_id,
                room.xnest_json,
                frame_type,
                payload_json,
                send_time or self._now(),
                extra,
            )
        )

    def _open_room(self, xnest_id: str, store_history: bool) -> Room:
        room = self._active.get(xnest_id)
        if room is None:
            room = self._idle.pop(xnest_id, None)
            if room is None:
                room = Room(xnest_id, self._settings.history_size, store_history)
                log.debug("xnest {xnest!r} created", xnest=xnest_id)
            self._active[xnest_id] = room
        return room

    def _close_room(self, room: Room) -> None:
        del self._active[room.xnest_id]
        if not len(room.history):
            return
        self._idle[room.xnest_id] = room
        while len(self._idle) > self._settings.max_idle_rooms:
            forgotten, _ = self._idle.popitem(last=False)
            log.debug("idle xnest {xnest!r} forgotten", xnest=forgotten)

    def join(
        self, xnest_id: str, nickname: str, sink: IMemberSink, store_history: bool = True
    ) -> Member:
        """
        Add a new member to C{xnest_id}, creating the room if needed
        (C{store_history} matters only then).

        The new member gets C{self}, C{member_count}, C{members} and the
        newest C{history} page, in that order; every other member gets
        C{join}.

        @param nickname: an already validated nickname.
        """
        room = self._open_room(xnest_id, store_history)
        member = Member(self._ids.next_id(), nickname, sink)
        room.add(member)
        now = self._now()
        for frame_type, payload_json in (
            ("self", dumps(member.id)),
            ("member_count", str(len(room))),
            ("members", dumps(room.members_payload())),
            ("history", room.history.page_json(0)),
        ):
            sink.deliver(self._frame(member.id, room, frame_type, payload_json, now))
        self._broadcast(room, self._frame(member.id, room, "join", dumps(nickname), now), member)
        return member

    def leave(self, member: Member) -> None:
        """
        Remove C{member} from its room and tell the others C{leave}.
        Idempotent: a member that already left is ignored.
        """
        room = member.room
        if room is None or not room.remove(member):
            return
        if len(room):
            self._broadcast(room, self._frame(member.id, room, "leave", '"leave"'))
        else:
            self._close_room(room)

    def receive(self, member: Member, text: str) -> None:
        """
        Act on one message from C{member}: chat, or one of the C{@}
        commands. Malformed commands get an C{error} frame.
        """
        if member.room is None:
            return
        try:
            command = parse_command(text)
        except CommandError as error:
            self.send_error(member, str(error))
            return
        if isinstance(command, Chat):
            self._chat(member, member.room, command.text)
        elif isinstance(command, ChangeName):
            self._change_name(member, member.room, command.nickname)
        elif isinstance(command, HistoryRequest):
            self._send_history(member, member.room, command.cursor)
        elif isinstance(command, PrivateMessage):
            self._private(member, member.room, command)
        else:
            assert isinstance(command, Ignored)

    def send_error(self, member: Member, message: str) -> None:
        """
        Send an C{error} frame to C{member} alone.
        """
        if member.room is not None:
            member.sink.deliver(self._frame(member.id, member.room, "error", dumps(message)))

    def _broadcast(self, room: Room, frame: Frame, excluded: Member | None = None) -> None:
        for other in room.members.values():
            if other is not excluded:
                other.sink.deliver(frame)

    def _chat(self, member: Member, room: Room, text: str) -> None:
        now = self._now()
        room.record(member, "normal", text, now)
        self._broadcast(room, self._frame(member.id, room, "normal", dumps(text), now))

    def _change_name(self, member: Member, room: Room, nickname: str) -> None:
        try:
            nickname = normalize_nickname(nickname)
        except InvalidName as error:
            self.send_error(member, str(error))
            return
        member.nickname = nickname
        self._broadcast(room, self._frame(member.id, room, "changename", dumps(nickname)))

    def _send_history(self, member: Member, room: Room, cursor: int) -> None:
        member.sink.deliver(self._frame(member.id, room, "history", room.history.page_json(cursor)))

    def _private(self, member: Member, room: Room, message: PrivateMessage) -> None:
        target = room.members.get(message.to)
        if target is None:
            self.send_error(member, f"no member {message.to!r} in this xnest")
            return
        frame = self._frame(
            member.id, room, "private", dumps(message.text), extra={"to": target.id}
        )
        target.sink.deliver(frame)
        if target is not member:
            member.sink.deliver(frame)
