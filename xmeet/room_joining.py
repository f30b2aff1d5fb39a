# -*- test-case-name: tests.test_rooms,tests.test_rooms_redis -*-
"""
Joining an xnest, for the room service (L{xmeet.rooms}): what a new member
is told (its L{Greeting}), and when. The greeting is the room as it was
when the member was added, given only once the backend has stored the
membership where every node reads it, so that whoever joins afterwards,
on any node, finds the member in its own greeting; frames for the member
meanwhile are held (L{HeldFrames}) and follow its greeting, in order.
Apart from the service because this ordering is its own small protocol,
and the sink interface the front ends implement lives with it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer

from xmeet.core.events import RoomEvent
from xmeet.core.frames import Frame, dumps
from xmeet.core.ids import IdGenerator
from xmeet.core.room import Member, Room
from xmeet.room_frames import RoomFrames
from xmeet.store.interfaces import IRoomBackend

__all__ = ["Greeting", "HeldFrames", "IMemberSink", "Joining"]


class IMemberSink(Interface):
    """
    Whatever takes a member's frames: a WebSocket connection, a Socket.IO
    socket. One frame object is shared by all members of a broadcast.
    """

    def deliver(frame: Frame) -> None:
        """
        Send C{frame} to this member; must not raise and must not block.
        """


@attrs.frozen
class Greeting:
    """
    What a new member is told on joining an xnest, in JSON text ready for
    any front end: xgate sends it as the C{self}, C{member_count},
    C{members} and C{history} frames (PROTOCOL.md section 1), Socket.IO as
    the body of the C{xnest/join} acknowledgement (section 3).

    @ivar member: the new membership (its id is C{self}).
    @ivar xnest_json: the xnest id as JSON.
    @ivar member_count: members in the xnest now, the new one included.
    @ivar members_json: the C{members} payload as JSON.
    @ivar history_json: the newest C{history} page as JSON.
    @ivar send_time: the C{send_time} of the join.
    """

    member: Member
    xnest_json: str
    member_count: int
    members_json: str
    history_json: str
    send_time: str


@implementer(IMemberSink)
class HeldFrames:
    """
    The sink of a member being admitted: keeps its frames until its
    greeting is out, the member's connection being ready for them only
    then.
    """

    def __init__(self) -> None:
        self._frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self._frames.append(frame)

    def hand_over(self, sink: IMemberSink) -> None:
        """
        Give C{sink} the frames kept so far, and any that come while it
        does, in order.
        """
        while self._frames:
            frames, self._frames = self._frames, []
            for frame in frames:
                sink.deliver(frame)


class Joining:
    """
    Admits new members to live rooms and greets them.

    @param broadcast: hands a frame to every local member of a room but
        the one excluded.
    """

    def __init__(
        self,
        ids: IdGenerator,
        backend: IRoomBackend,
        frames: RoomFrames,
        broadcast: Callable[[Room, Frame, Member | None], None],
    ) -> None:
        self._ids = ids
        self._backend = backend
        self._frames = frames
        self._broadcast = broadcast

    def admit(self, room: Room, nickname: str, sink: IMemberSink) -> Deferred[Greeting]:
        """
        Add a new member called C{nickname} to C{room}, which is live, and
        tell the backend; the L{Greeting} fires once the backend has stored
        the membership.
        """
        held = HeldFrames()
        member = Member(self._ids.next_id(), nickname, held)
        room.add(member)
        now = self._frames.now()
        greeting = Greeting(
            member,
            room.xnest_json,
            len(room),
            dumps(room.members_payload()),
            room.history.page_json(0),
            now,
        )
        event = RoomEvent("join", self._backend.node_id, room.xnest_id, member.id, nickname, now)
        self._backend.publish(event, None)
        greeted: Deferred[Greeting] = Deferred()
        self._backend.stored().addCallback(
            lambda _: self._greet(room, greeting, event, sink, held, greeted)
        )
        return greeted

    def _greet(
        self,
        room: Room,
        greeting: Greeting,
        event: RoomEvent,
        sink: IMemberSink,
        held: HeldFrames,
        greeted: Deferred[Greeting],
    ) -> None:
        """
        The new member is stored: tell the others of this node, hand the
        greeting to the front end (which gives it to the member at once),
        then the frames kept for the member meanwhile, and from now on
        every frame goes straight to its sink. A front end whose member is
        gone meanwhile makes it leave when given the greeting: nothing
        kept is sent then.
        """
        member = greeting.member
        self._broadcast(room, self._frames.join(room, event), member)
        greeted.callback(greeting)
        if member.room is not None:
            held.hand_over(sink)
            member.sink = sink
