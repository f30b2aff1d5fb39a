# -*- test-case-name: tests.test_resp -*-
"""
The Redis serialization protocol (RESP2), both ways, without I/O.

xmeet's pub/sub connection reads every room message a cluster carries: a
parser that takes a whole TCP read and returns its replies, with no
per-reply callbacks, pauses or Deferreds, keeps that cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProtocolError", "ReplyError", "RespParser", "encode_command"]

MAX_BULK = 512 * 1024 * 1024
"""
The largest bulk string Redis sends; a longer one means a broken stream.
"""


class ProtocolError(Exception):
    """
    The bytes received are not RESP: the connection cannot go on.
    """


class ReplyError(Exception):
    """
    An error reply (C{-ERR ...}) from Redis, as a value among the replies.
    """


class _Incomplete:
    """
    Marks a reply whose bytes have not all arrived.
    """


_INCOMPLETE = _Incomplete()

_BULK, _ARRAY, _SIMPLE, _ERROR, _INTEGER = b"$*+-:"


MAX_DEPTH = 8
"""
Arrays nested deeper than this are refused; Redis nests pub/sub and
command replies two deep at most.
"""


def _parse(buffer: bytes, start: int, depth: int = 0) -> Any:
    """
    The reply at C{start}: C{(value, next start)}, or L{_INCOMPLETE}.
    """
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return _INCOMPLETE
    kind = buffer[start]
    line = buffer[start + 1 : end]
    after = end + 2
    if kind == _BULK:
        length = _number(line)
        if length < 0:
            return None, after
        if length > MAX_BULK:
            raise ProtocolError(f"bulk string of {length} bytes")
        stop = after + length
        if len(buffer) < stop + 2:
            return _INCOMPLETE
        if buffer[stop : stop + 2] != b"\r\n":
            raise ProtocolError("bulk string not followed by CRLF")
        return buffer[after:stop], stop + 2
    if kind == _ARRAY:
        count = _number(line)
        if count < 0:
            return None, after
        if depth == MAX_DEPTH:
            raise ProtocolError("arrays nested too deep")
        items = []
        for _ in range(count):
            parsed = _parse(buffer, after, depth + 1)
            if parsed is _INCOMPLETE:
                return _INCOMPLETE
            value, after = parsed
            items.append(value)
        return items, after
    if kind == _SIMPLE:
        return line.decode("utf-8", "replace"), after
    if kind == _ERROR:
        return ReplyError(line.decode("utf-8", "replace")), after
    if kind == _INTEGER:
        return _number(line), after
    raise ProtocolError(f"unknown reply type {bytes([kind])!r}")


def _number(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolError(f"not a number: {line[:20]!r}") from None


class RespParser:
    """
    Replies out of a stream of bytes, however the stream is cut.

    Values: bulk strings as C{bytes}, simple strings as C{str}, integers as
    C{int}, nil as C{None}, arrays as C{list}, error replies as
    L{ReplyError} instances.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Any]:
        """
        Take C{data}; return the replies it completes, in order.

        @raise ProtocolError: the stream is broken; the parser is then of
            no further use.
        """
        buffer = self._buffer + data if self._buffer else data
        replies = []
        start = 0
        size = len(buffer)
        while start < size:
            parsed = _parse(buffer, start)
            if parsed is _INCOMPLETE:
                break
            value, start = parsed
            replies.append(value)
        self._buffer = buffer[start:]
        return replies


def encode_command(*arguments: str | bytes | int) -> bytes:
    """
    One command as Redis reads it: an array of bulk strings.
    """
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, str):
            argument = argument.encode("utf-8")
        elif isinstance(argument, int):
            argument = b"%d" % argument
        parts.append(b"$%d\r\n%s\r\n" % (len(argument), argument))
    return b"".join(parts)
