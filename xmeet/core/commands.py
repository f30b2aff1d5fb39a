# -*- test-case-name: tests.test_core_commands -*-
"""
Parsing the text a member sends into what it asks for (PROTOCOL.md
section 1): a chat message, C{@changename:}, C{@history:} or C{@to:}.

Parsing is separate from acting so that every front end (xgate WebSocket,
Socket.IO C{xnest/send}) understands the same text the same way.
"""

from __future__ import annotations

import attrs

__all__ = [
    "ChangeName",
    "Chat",
    "Command",
    "CommandError",
    "HistoryRequest",
    "Ignored",
    "MAX_CURSOR_DIGITS",
    "PrivateMessage",
    "parse_command",
]

MAX_CURSOR_DIGITS = 9

_CHANGENAME = "@changename:"
_HISTORY = "@history:"
_TO = "@to:"


class CommandError(ValueError):
    """
    A command was malformed; C{str(error)} is shown to the sender.
    """


@attrs.frozen
class Chat:
    """
    Plain chat text, broadcast to the room and kept in history.
    """

    text: str


@attrs.frozen
class ChangeName:
    """
    C{@changename:NEW}; the name is validated by the room, not here.
    """

    nickname: str


@attrs.frozen
class HistoryRequest:
    """
    C{@history:CURSOR}: page C{cursor} of history, newest first.
    """

    cursor: int


@attrs.frozen
class PrivateMessage:
    """
    C{@to:ID|TEXT}: text for one member, not kept in history.
    """

    to: str
    text: str


@attrs.frozen
class Ignored:
    """
    Empty or white-space-only text: nothing happens.
    """


Command = Chat | ChangeName | HistoryRequest | PrivateMessage | Ignored


def parse_cursor(text: str) -> int:
    """
    Parse a history cursor: a non-negative decimal integer of at most
    L{MAX_CURSOR_DIGITS} digits.

    @raise CommandError: for anything else.
    """
    cursor = text.strip()
    if not cursor.isascii() or not cursor.isdigit():
        raise CommandError(f"history cursor must be a non-negative integer, not {text!r}")
    if len(cursor) > MAX_CURSOR_DIGITS:
        raise CommandError(f"history cursor has more than {MAX_CURSOR_DIGITS} digits")
    return int(cursor)


def _parse_private(argument: str) -> PrivateMessage:
    member_id, separator, text = argument.partition("|")
    if not separator:
        raise CommandError("private message must look like @to:ID|TEXT")
    if not member_id:
        raise CommandError("private message has no member id")
    if not text.strip():
        raise CommandError("private message is empty")
    return PrivateMessage(to=member_id, text=text)


def parse_command(text: str) -> Command:
    """
    Say what C{text}, one message from a member, asks for.

    @raise CommandError: when a command is recognised but malformed.
    """
    if not text.strip():
        return Ignored()
    if text.startswith(_CHANGENAME):
        return ChangeName(nickname=text[len(_CHANGENAME) :])
    if text.startswith(_HISTORY):
        return HistoryRequest(cursor=parse_cursor(text[len(_HISTORY) :]))
    if text.startswith(_TO):
        return _parse_private(text[len(_TO) :])
    return Chat(text=text)
