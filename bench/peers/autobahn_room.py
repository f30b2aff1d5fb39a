"""
The ceiling of xmeet's own stack: a minimal room server on raw Autobahn and
Twisted, with nothing xmeet adds (no history, rate limits, greetings).

One room per URL path; a text message from a member is sent to every member
of its room (sender included) as the xgate C{normal} frame, encoded once and
then framed per member with C{sendMessage}: the naive broadcast that xmeet's
prepared-message fan-out has to beat.

Usage: python bench/peers/autobahn_room.py PORT
"""

from __future__ import annotations

import itertools
import json
import sys
import time

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet import reactor

_ids = itertools.count()
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RoomProtocol(WebSocketServerProtocol):
    """
    One member: joins the room named by its URL path on open.
    """

    factory: RoomFactory
    room: set[RoomProtocol] | None = None
    room_name = ""
    member_id = ""

    def onConnect(self, request: ConnectionRequest) -> None:
        """
        Remember the room; every path is a room.
        """
        self.room_name = request.path.rsplit("/", 1)[-1]

    def onOpen(self) -> None:
        """
        Join the room.
        """
        self.member_id = f"m{next(_ids)}"
        self.room = self.factory.rooms.setdefault(self.room_name, set())
        self.room.add(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Broadcast the message to the whole room.
        """
        if self.room is None or isBinary:
            return
        frame = _encode(
            {
                "from": self.member_id,
                "xnest": self.room_name,
                "type": "normal",
                "payload": payload.decode("utf-8"),
                "send_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            }
        ).encode("utf-8")
        for member in self.room:
            member.sendMessage(frame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Leave the room; an empty room is forgotten.
        """
        room, self.room = self.room, None
        if room is not None:
            room.discard(self)
            if not room:
                del self.factory.rooms[self.room_name]


class RoomFactory(WebSocketServerFactory):
    """
    Holds the rooms: name to the set of its members.
    """

    protocol = RoomProtocol  # type: ignore[assignment]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.rooms: dict[str, set[RoomProtocol]] = {}
        # The same heartbeat and limits as xmeet's defaults, so both hold the
        # same per-connection timers.
        self.setProtocolOptions(autoPingInterval=25, autoPingTimeout=20, openHandshakeTimeout=10)


def main() -> None:
    """
    Serve on 127.0.0.1:PORT until killed.
    """
    port = int(sys.argv[1])
    factory = RoomFactory(f"ws://127.0.0.1:{port}")
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
