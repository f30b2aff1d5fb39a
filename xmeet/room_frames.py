# -*- test-case-name: tests.test_rooms -*-
"""
The frames of xnest events, for the room service (L{xmeet.rooms}): each
built once per event as a L{Frame} that every local member's sink is
handed, and built the same way on every node from the same L{RoomEvent}.
Apart from the service so that the wire form of each event (PROTOCOL.md)
reads in one place.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from twisted.internet.interfaces import IReactorTime

from xmeet.core.events import RoomEvent
from xmeet.core.frames import Frame, SendTimeFormatter, dumps, frame_json
from xmeet.core.room import Room

__all__ = ["RoomFrames"]


class RoomFrames:
    """
    Frames of one node's xnests, their C{send_time} in the node's time zone.
    """

    def __init__(self, clock: IReactorTime, timezone: str) -> None:
        self._clock = clock
        self._send_time = SendTimeFormatter(ZoneInfo(timezone))

    def now(self) -> str:
        """
        The C{send_time} of now.
        """
        return self._send_time.format(self._clock.seconds())

    def frame(
        self,
        sender_id: str,
        room: Room,
        frame_type: str,
        payload_json: str,
        send_time: str,
        extra: dict[str, str] | None = None,
    ) -> Frame:
        """
        A frame of C{room}, its payload already JSON.
        """
        return Frame(
            frame_json(sender_id, room.xnest_json, frame_type, payload_json, send_time, extra)
        )

    def join(self, room: Room, event: RoomEvent) -> Frame:
        return self.frame(event.member, room, "join", dumps(event.nickname), event.send_time)

    def leave(self, room: Room, event: RoomEvent) -> Frame:
        return self.frame(event.member, room, "leave", '"leave"', event.send_time)

    def rename(self, room: Room, event: RoomEvent) -> Frame:
        return self.frame(event.member, room, "changename", dumps(event.nickname), event.send_time)

    def normal(self, room: Room, event: RoomEvent) -> Frame:
        return self.frame(event.member, room, "normal", dumps(event.payload), event.send_time)

    def private(self, room: Room, event: RoomEvent) -> Frame:
        return self.frame(
            event.member, room, "private", dumps(event.payload), event.send_time, {"to": event.to}
        )
