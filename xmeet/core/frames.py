# -*- test-case-name: tests.test_core_frames -*-
"""
Building the JSON frames of Xmeet rooms (PROTOCOL.md section 1), once.

A broadcast builds one L{Frame}; each transport derives its own wire form
from it once (an Autobahn prepared message, a Socket.IO packet) through
L{Frame.prepared}, and every member of that transport gets the same object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, TypeVar

__all__ = [
    "Frame",
    "SendTimeFormatter",
    "dumps",
    "frame_json",
]

T = TypeVar("T")

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """
    Compact JSON with non-ASCII text kept as it is (smaller frames for
    Chinese text, and what clients of the original service saw).
    """
    return _encoder.encode(value)


class SendTimeFormatter:
    """
    Formats C{send_time} as C{Y-M-D H:M:S} without zero padding, in one time
    zone, remembering the last second formatted: a busy room formats each
    second once, not once per message.
    """

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._second = -1
        self._text = ""

    def format(self, epoch_seconds: float) -> str:
        """
        The C{send_time} of the moment C{epoch_seconds}.
        """
        second = int(epoch_seconds)
        if second != self._second:
            moment = datetime.fromtimestamp(second, self._zone)
            self._text = (
                f"{moment.year}-{moment.month}-{moment.day} "
                f"{moment.hour}:{moment.minute}:{moment.second}"
            )
            self._second = second
        return self._text


def frame_json(
    sender: str,
    xnest_json: str,
    frame_type: str,
    payload_json: str,
    send_time: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """
    One frame as JSON text.

    C{xnest_json} and C{payload_json} come already encoded: a room encodes
    its id once for its life, and a history page is joined from stored
    entries without decoding them.
    """
    tail = "".join(f",{dumps(key)}:{dumps(value)}" for key, value in extra.items()) if extra else ""
    return (
        f'{{"from":{dumps(sender)},"xnest":{xnest_json},"type":{dumps(frame_type)},'
        f'"payload":{payload_json},"send_time":{dumps(send_time)}{tail}}}'
    )


class Frame:
    """
    A frame ready to go out, with the wire forms derived from it.

    @ivar text: the frame as JSON text.
    """

    __slots__ = ("_forms", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._forms: dict[object, Any] = {}

    def prepared(self, key: object, build: Callable[[str], T]) -> T:
        """
        The wire form of this frame for the transport C{key}, built by
        C{build(text)} on first use and shared by every later caller.
        """
        try:
            return self._forms[key]
        except KeyError:
            form = self._forms[key] = build(self.text)
            return form
