# -*- test-case-name: tests.test_core_events -*-
"""
Room events as nodes tell them to each other.

A node applies a member's action to its own members at once, then hands
the event to its backend, which stores it and passes it to the other
nodes; they rebuild the very same frames from it (the event carries the
sender's C{send_time}), so every member of the cluster sees one story.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

__all__ = [
    "EVENT_KINDS",
    "EventError",
    "RoomEvent",
    "decode_event",
    "encode_event",
    "event_prefixes",
]

EVENT_KINDS = frozenset({"join", "leave", "rename", "normal", "private", "resync"})


class EventError(ValueError):
    """
    Bytes from the bus that are not a room event of this version.
    """


@attrs.frozen
class RoomEvent:
    """
    One thing that happened in an xnest.

    @ivar kind: C{join}, C{leave}, C{rename}, C{normal}, C{private}, or
        C{resync}: the room's stored state changed behind the events (a
        node wrote what it kept during an outage), read it again.
    @ivar node: the node whose member did it.
    @ivar xnest: the room id.
    @ivar member: the acting member's id.
    @ivar nickname: the member's nickname after the event.
    @ivar send_time: when, as the C{send_time} of the frames.
    @ivar payload: the text of C{normal} and C{private} events.
    @ivar to: the target member of a C{private} event.
    """

    kind: str
    node: str
    xnest: str
    member: str
    nickname: str
    send_time: str
    payload: str = ""
    to: str = ""


_FIELDS = ("kind", "node", "xnest", "member", "nickname", "send_time", "payload", "to")


def encode_event(event: RoomEvent) -> str:
    """
    The event as compact JSON.
    """
    return json.dumps([getattr(event, name) for name in _FIELDS], ensure_ascii=False)


def decode_event(data: str | bytes) -> RoomEvent:
    """
    Parse what L{encode_event} made.

    @raise EventError: for anything else.
    """
    try:
        fields: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EventError("room event is not JSON") from None
    if (
        not isinstance(fields, list)
        or len(fields) != len(_FIELDS)
        or not all(isinstance(field, str) for field in fields)
    ):
        raise EventError("room event must be a list of 8 strings")
    event = RoomEvent(*fields)
    if event.kind not in EVENT_KINDS:
        raise EventError(f"unknown room event kind {event.kind!r}")
    return event


def event_prefixes(node: str) -> tuple[str, ...]:
    """
    How every event of C{node} encoded by L{encode_event} begins: pub/sub
    hands a node its own events back, and with these it drops them without
    parsing them (half of a busy room's events, on a node of two).
    """
    return tuple(
        json.dumps([kind, node], ensure_ascii=False)[:-1] + ", " for kind in sorted(EVENT_KINDS)
    )
