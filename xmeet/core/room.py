# -*- test-case-name: tests.test_rooms -*-
"""
One xnest's state: its members in joining order, their nicknames and its
history. Pure data with its invariants; delivering frames is the room
service's job.
"""

from __future__ import annotations

from typing import Any

from xmeet.core.frames import dumps
from xmeet.core.history import History

__all__ = ["Member", "Room", "history_entry"]


def history_entry(sender_id: str, nickname: str, payload: str, send_time: str) -> str:
    """
    One C{normal} message as a history entry, in JSON. Every node builds
    the same text from the same message, so entries can be compared as
    strings.
    """
    return dumps(
        {
            "from": sender_id,
            "nickname": nickname,
            "type": "normal",
            "payload": payload,
            "send_time": send_time,
        }
    )


class Member:
    """
    One connection's membership of one room.

    @ivar id: the member id, unique across nodes and restarts.
    @ivar nickname: the current, validated nickname.
    @ivar sink: what takes this member's frames (a WebSocket connection, a
        Socket.IO socket), opaque to the core; C{None} for a member
        connected to another node.
    @ivar room: the room, or C{None} once the member has left.
    """

    __slots__ = ("id", "nickname", "room", "sink")

    def __init__(self, member_id: str, nickname: str, sink: Any = None) -> None:
        self.id = member_id
        self.nickname = nickname
        self.sink = sink
        self.room: Room | None = None

    def __repr__(self) -> str:
        return f"<Member {self.id} {self.nickname!r}>"


class Room:
    """
    An xnest: every member of the cluster keyed by id in joining order, the
    members of this node among them, and a bounded history.

    @ivar xnest_id: the decoded room id.
    @ivar xnest_json: C{xnest_id} encoded as JSON once, for every frame.
    @ivar store_history: C{False} for rooms created with
        C{is_store_history=false}: their history stays empty.
    @ivar members: every member, local or remote.
    @ivar local: the members connected to this node, who get frames.
    """

    def __init__(self, xnest_id: str, history: History, store_history: bool = True) -> None:
        self.xnest_id = xnest_id
        self.xnest_json = dumps(xnest_id)
        self.store_history = store_history
        self.history = history
        self.members: dict[str, Member] = {}
        self.local: dict[str, Member] = {}

    def __len__(self) -> int:
        return len(self.members)

    def add(self, member: Member) -> None:
        """
        Add a member that is in no room yet; it is local when it has a sink.
        """
        if member.room is not None:
            raise ValueError(f"{member!r} is already in a room")
        self.members[member.id] = member
        if member.sink is not None:
            self.local[member.id] = member
        member.room = self

    def remove(self, member: Member) -> bool:
        """
        Remove C{member}; C{False} if it was not here (leaving is idempotent).
        """
        if self.members.get(member.id) is not member:
            return False
        del self.members[member.id]
        self.local.pop(member.id, None)
        member.room = None
        return True

    def members_payload(self) -> list[dict[str, str]]:
        """
        The C{members} payload: C{pid} and C{nickname} of every member.
        """
        return [{"pid": member.id, "nickname": member.nickname} for member in self.members.values()]

    def record(self, sender_id: str, nickname: str, payload: str, send_time: str) -> str | None:
        """
        Record a C{normal} message in the history; return the entry as JSON,
        or C{None} for rooms that keep no history.
        """
        if not self.store_history:
            return None
        entry = history_entry(sender_id, nickname, payload, send_time)
        self.history.append(entry)
        return entry
