# -*- test-case-name: tests.test_rooms,tests.test_rooms_redis -*-
"""
The room service: every xnest live on this node, who is in it, and what a
member's message does.

Front ends (the xgate WebSocket protocol, Socket.IO handlers, the HTTP API)
call this service and never change an xnest themselves. A broadcast builds
its frame once and hands the same L{Frame} to every local member's sink;
the backend tells the other nodes, which rebuild the same frame for their
own members.

An xnest is live on a node while the node has members in it: the node
keeps its L{Room} (L{LiveRooms}). Taking an xnest live asks the backend
for its state (its history, the members on other nodes), which in a
cluster takes a round trip: L{RoomService.join} therefore answers with a
L{Deferred}. With the in-memory backend it has fired already when
returned. The frames of events are built by L{RoomFrames}.
"""

from __future__ import annotations

from random import Random

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

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
from xmeet.core.events import RoomEvent
from xmeet.core.frames import Frame, dumps
from xmeet.core.history import History
from xmeet.core.ids import IdGenerator
from xmeet.core.room import Member, Room
from xmeet.core.rules import InvalidName, choose_nickname, normalize_nickname
from xmeet.live_rooms import LiveRooms
from xmeet.room_frames import RoomFrames
from xmeet.room_joining import Greeting, IMemberSink, Joining
from xmeet.store.interfaces import IRoomBackend, IRoomListener, RoomState

__all__ = ["Greeting", "IMemberSink", "RoomService", "RoomView"]


class RoomView:
    """
    A read-only look at an xnest for the HTTP API: its members and history,
    live or not.
    """

    def __init__(self, members: list[dict[str, str]], history: History | None) -> None:
        self.members = members
        self._history = history

    def history_page(self, cursor: int) -> str:
        """
        Page C{cursor} of the history as JSON.
        """
        return self._history.page_json(cursor) if self._history is not None else "[]"


@implementer(IRoomListener)
class RoomService:
    """
    All xnests of one node.

    @ivar backend: where xnests are kept and how other nodes are told.
    @ivar messages_received: texts members sent, commands included.
    @ivar frames_sent: frames handed to local members by broadcasts.
    """

    def __init__(
        self,
        clock: IReactorTime,
        settings: Settings,
        ids: IdGenerator,
        backend: IRoomBackend,
        rng: Random | None = None,
    ) -> None:
        """
        @param rng: where random nicknames come from (seed it to repeat
            them); a generator seeded by the system by default.
        """
        self._rng = rng if rng is not None else Random()
        self._settings = settings
        self.backend = backend
        self._frames = RoomFrames(clock, settings.timezone)
        self._rooms = LiveRooms(settings, backend)
        self._joining = Joining(ids, backend, self._frames, self._broadcast)
        self.messages_received = 0
        self.frames_sent = 0

    def start(self) -> None:
        """
        Start hearing other nodes through the backend.
        """
        self.backend.start(self)

    def stop(self) -> Deferred[None]:
        """
        Leave the cluster: the backend removes this node's members.
        """
        return self.backend.stop()

    @property
    def active_rooms(self) -> int:
        """
        How many xnests have members on this node now.
        """
        return len(self._rooms)

    def live(self, xnest_id: str) -> Room | None:
        """
        The L{Room} of C{xnest_id} if the xnest has members on this node.
        """
        return self._rooms.get(xnest_id)

    def view(self, xnest_id: str) -> Deferred[RoomView]:
        """
        The members and history of an xnest, live here or not, without
        taking it live.
        """
        room = self._rooms.get(xnest_id)
        if room is not None:
            return succeed(RoomView(room.members_payload(), room.history))
        return self.backend.peek(xnest_id, self._settings.history_size).addCallback(_view_of)

    def choose_nickname(self, requested: str | None, remembered: str | None = None) -> str:
        """
        The nickname of a member about to join: the one it asked for, else
        the one remembered for it (the xgate cookie), else a random one
        from this service's generator.

        Kept apart from L{join} because xgate must name the nickname in
        its handshake response, before the member joins.

        @raise InvalidName: C{requested} is given and breaks the rules (a
            C{remembered} one that does is ignored).
        """
        return choose_nickname(requested, remembered, self._rng)

    def join(
        self,
        xnest_id: str,
        nickname: str,
        sink: IMemberSink,
        store_history: bool = True,
    ) -> Deferred[Greeting]:
        """
        Add a new member to C{xnest_id}, taking the xnest live if needed
        (C{store_history} matters only for a new xnest), and tell every
        other member C{join}.

        The L{Greeting} is for the front end to give the new member in its
        own form before anything else. It is the room as it was when the
        member was added; it is given, and the other members of this node
        told C{join}, only once the backend has stored the membership
        where every node reads it (L{IRoomBackend.stored}): whoever joins
        the xnest afterwards, on any node, finds the member in its own
        greeting. In memory that is at once, in the same turn; in a cluster
        it is one Redis round trip, bounded when Redis does not answer.
        Frames for the member meanwhile are kept and follow its greeting,
        in order.

        @param nickname: a nickname from L{choose_nickname}.
        """
        return self._rooms.take_live(xnest_id, store_history).addCallback(
            self._joining.admit, nickname, sink
        )

    def leave(self, member: Member) -> None:
        """
        Remove C{member} from its xnest and tell the others C{leave}.
        Idempotent: a member that already left is ignored.
        """
        room = member.room
        if room is None or not room.remove(member):
            return
        event = RoomEvent(
            "leave",
            self.backend.node_id,
            room.xnest_id,
            member.id,
            member.nickname,
            self._frames.now(),
        )
        self._broadcast(room, self._frames.leave(room, event))
        self.backend.publish(event, None)
        if not room.local:
            self._rooms.take_offline(room)

    def receive(self, member: Member, text: str) -> None:
        """
        Act on one message from C{member}: chat, or one of the C{@}
        commands. Malformed commands get an C{error} frame.
        """
        room = member.room
        if room is None:
            return
        self.messages_received += 1
        try:
            command = parse_command(text)
        except CommandError as error:
            self.send_error(member, str(error))
            return
        if isinstance(command, Chat):
            self._chat(member, room, command.text)
        elif isinstance(command, ChangeName):
            self._change_name(member, room, command.nickname)
        elif isinstance(command, HistoryRequest):
            self._send_history(member, room, command.cursor)
        elif isinstance(command, PrivateMessage):
            self._private(member, room, command)
        else:
            assert isinstance(command, Ignored)

    def send_error(self, member: Member, message: str) -> None:
        """
        Send an C{error} frame to C{member} alone.
        """
        if member.room is not None and member.sink is not None:
            frame = self._frames.frame(
                member.id, member.room, "error", dumps(message), self._frames.now()
            )
            member.sink.deliver(frame)

    def _broadcast(self, room: Room, frame: Frame, excluded: Member | None = None) -> None:
        self.frames_sent += len(room.local) - (excluded is not None)
        for other in tuple(room.local.values()):
            if other is not excluded:
                other.sink.deliver(frame)

    def _event(
        self, kind: str, member: Member, room: Room, payload: str = "", to: str = ""
    ) -> RoomEvent:
        return RoomEvent(
            kind,
            self.backend.node_id,
            room.xnest_id,
            member.id,
            member.nickname,
            self._frames.now(),
            payload,
            to,
        )

    def _chat(self, member: Member, room: Room, text: str) -> None:
        event = self._event("normal", member, room, text)
        entry = room.record(member.id, member.nickname, text, event.send_time)
        self._broadcast(room, self._frames.normal(room, event))
        self.backend.publish(event, entry)

    def _change_name(self, member: Member, room: Room, nickname: str) -> None:
        try:
            nickname = normalize_nickname(nickname)
        except InvalidName as error:
            self.send_error(member, str(error))
            return
        member.nickname = nickname
        event = self._event("rename", member, room)
        self._broadcast(room, self._frames.rename(room, event))
        self.backend.publish(event, None)

    def _send_history(self, member: Member, room: Room, cursor: int) -> None:
        page = room.history.page_json(cursor)
        member.sink.deliver(
            self._frames.frame(member.id, room, "history", page, self._frames.now())
        )

    def _private(self, member: Member, room: Room, message: PrivateMessage) -> None:
        target = room.members.get(message.to)
        if target is None:
            self.send_error(member, f"no member {message.to!r} in this xnest")
            return
        event = self._event("private", member, room, message.text, target.id)
        frame = self._frames.private(room, event)
        member.sink.deliver(frame)
        if target.sink is None:
            self.backend.publish(event, None)
        elif target is not member:
            target.sink.deliver(frame)

    def room_resync(self, xnest_id: str, state: RoomState) -> None:
        """
        Take a live xnest's stored history, and bring its remote members in
        line with the stored ones, telling local members who joined and
        who left meanwhile.
        """
        room = self._rooms.get(xnest_id)
        if room is None:
            return
        if room.store_history and state.history is not None:
            room.history = state.history
            self.backend.history_budget.go_live(xnest_id, room.history)
        now = self._frames.now()
        present = {remote.id for remote in state.members}
        for gone in [m for m in room.members.values() if m.sink is None and m.id not in present]:
            room.remove(gone)
            self._broadcast(room, self._frames.frame(gone.id, room, "leave", '"leave"', now))
        for remote in state.members:
            if remote.id not in room.members:
                room.add(Member(remote.id, remote.nickname))
                joined = dumps(remote.nickname)
                self._broadcast(room, self._frames.frame(remote.id, room, "join", joined, now))

    def room_event(self, event: RoomEvent) -> None:
        """
        Apply another node's event to the live xnest it concerns.
        """
        room = self._rooms.get(event.xnest)
        if room is None:
            return
        if event.kind == "join":
            if event.member not in room.members:
                room.add(Member(event.member, event.nickname))
                self._broadcast(room, self._frames.join(room, event))
        elif event.kind == "leave":
            gone = room.members.get(event.member)
            if gone is not None and gone.sink is None:
                room.remove(gone)
                self._broadcast(room, self._frames.leave(room, event))
        elif event.kind == "rename":
            renamed = room.members.get(event.member)
            if renamed is not None:
                renamed.nickname = event.nickname
                self._broadcast(room, self._frames.rename(room, event))
        elif event.kind == "normal":
            room.record(event.member, event.nickname, event.payload, event.send_time)
            self._broadcast(room, self._frames.normal(room, event))
        else:
            target = room.local.get(event.to)
            if target is not None:
                target.sink.deliver(self._frames.private(room, event))


def _view_of(state: RoomState | None) -> RoomView:
    if state is None:
        return RoomView([], None)
    members = [{"pid": remote.id, "nickname": remote.nickname} for remote in state.members]
    return RoomView(members, state.history)
