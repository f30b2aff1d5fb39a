"""
python-socketio 5.x on its fastest server, uvicorn with uvloop and
httptools: the Python peer xmeet's Socket.IO has to beat.

Implements the two events of PROTOCOL.md section 3 that the benchmark uses:
C{xnest/join {xnest, nickname}} (ack C{{statusCode: 200, body: {...}}}) and
C{xnest/send {xnest, payload}}, which emits the event C{xnest} with the
xgate C{normal} frame to the whole room, sender included.

Usage: python bench/peers/psio_room.py PORT
"""

from __future__ import annotations

import sys
import time
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
nicknames: dict[str, str] = {}


@sio.on("xnest/join")
async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    """
    Enter the room and answer with its members, as xmeet's ack does.
    """
    xnest = data["xnest"]
    nicknames[sid] = data.get("nickname", sid)
    await sio.enter_room(sid, xnest)
    members = [
        {"pid": member, "nickname": nicknames.get(member, member)}
        for member, _ in sio.manager.get_participants("/", xnest)
    ]
    body = {"self": sid, "member_count": len(members), "members": members, "history": []}
    return {"statusCode": 200, "body": body}


@sio.on("xnest/send")
async def send(sid: str, data: dict[str, Any]) -> None:
    """
    Broadcast the xgate frame to the room (python-socketio encodes it once).
    """
    frame = {
        "from": sid,
        "xnest": data["xnest"],
        "type": "normal",
        "payload": data["payload"],
        "send_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    await sio.emit("xnest", frame, room=data["xnest"])


@sio.on("disconnect")
async def disconnect(sid: str, *args: Any) -> None:
    """
    Forget the nickname; python-socketio leaves the rooms itself.
    """
    nicknames.pop(sid, None)


def main() -> None:
    """
    Serve on 127.0.0.1:PORT until killed.
    """
    uvicorn.run(
        socketio.ASGIApp(sio),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws="websockets",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
