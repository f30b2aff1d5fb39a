# -*- test-case-name: tests.test_engineio_packets -*-
"""
Engine.IO packet and payload codecs, protocol revisions 4 and 3.

Pure functions and values: no I/O, no reactor. The session and transports
decide I{when} to encode; this module only knows I{how}, so it can be tested
exhaustively (including with hypothesis) and reused by benchmarks.

Decoders raise L{PacketDecodeError} and nothing else on malformed input, so
callers need exactly one C{except} clause to turn bad client input into a
"parse error" close.

Revision 4 (Engine.IO 4+, Socket.IO 3+):
  - a WebSocket frame holds one packet; binary messages are raw frames;
  - a polling payload joins packets with C{\\x1e}; binary messages are
    C{b<base64>}.

Revision 3 (Engine.IO 3, Socket.IO 1/2):
  - a WebSocket binary frame is the packet type byte followed by the data;
  - a text polling payload is C{<length>:<packet>...} where the length counts
    UTF-16 code units (JavaScript string length); binary packets are
    C{b<type><base64>} unless the client supports binary payloads, in which
    case the whole payload is the byte format C{<0|1><digits...>\\xff<bytes>}.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re

import attrs

__all__ = [
    "RECORD_SEPARATOR",
    "Packet",
    "PacketDecodeError",
    "PacketType",
    "decode_packet_v3",
    "decode_packet_v4",
    "decode_payload_v3",
    "decode_payload_v4",
    "encode_packet_v3",
    "encode_packet_v4",
    "encode_payload_v3",
    "encode_payload_v4",
    "encode_polling_packet_v4",
    "encode_v3_binary_segment",
    "encode_v3_text_segment",
    "utf16_length",
]

RECORD_SEPARATOR = "\x1e"

_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


class PacketType(enum.IntEnum):
    """
    The seven Engine.IO packet types, numbered as on the wire.
    """

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPE_BY_CHAR = {str(int(t)): t for t in PacketType}
_TYPE_BY_BYTE = {int(t): t for t in PacketType}


class PacketDecodeError(ValueError):
    """
    The bytes or text received are not a valid packet or payload.

    The official server answers this with a C{"parse error"} close.

    @ivar decoded: the valid packets that preceded the malformed one in a
        revision 4 payload; the official server handles them before it
        closes the session.
    """

    def __init__(self, message: str, decoded: tuple[Packet, ...] = ()) -> None:
        super().__init__(message)
        self.decoded = decoded


@attrs.frozen
class Packet:
    """
    One decoded Engine.IO packet.

    @ivar type: the packet type.
    @ivar data: C{str} for text (possibly empty), C{bytes} for binary data.
    """

    type: PacketType
    data: str | bytes = ""

    @property
    def is_binary(self) -> bool:
        """
        Whether this packet carries binary data.
        """
        return isinstance(self.data, bytes)


def utf16_length(text: str) -> int:
    """
    Length of C{text} in UTF-16 code units, as JavaScript counts it.

    Revision 3 payloads are length-prefixed with this count, so characters
    outside the Basic Multilingual Plane count twice.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    """
    Decode base64 as leniently as Node's C{Buffer.from(s, "base64")}.

    Node ignores characters outside the alphabet and missing padding, and so
    do the official clients' peers; being stricter would close sessions the
    official server keeps.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as e:
        raise PacketDecodeError("non-ASCII base64") from e
    raw = _BASE64_JUNK.sub(b"", raw.replace(b"-", b"+").replace(b"_", b"/"))
    if len(raw) % 4 == 1:
        raise PacketDecodeError("truncated base64")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4))
    except binascii.Error as e:
        raise PacketDecodeError("invalid base64") from e


def _packet_type(char: str) -> PacketType:
    try:
        return _TYPE_BY_CHAR[char]
    except KeyError:
        raise PacketDecodeError(f"unknown packet type {char!r}") from None


def _text_packet(text: str) -> Packet:
    if not text:
        raise PacketDecodeError("empty packet")
    return Packet(_packet_type(text[0]), text[1:])


# --- revision 4 ---------------------------------------------------------------


def encode_packet_v4(packet: Packet, supports_binary: bool = True) -> str | bytes:
    """
    Encode one packet for its own WebSocket frame (revision 4).

    Binary data is sent raw (the type is implicitly "message"), or as
    C{b<base64>} text when the client asked for base64 (C{b64} query).
    """
    if isinstance(packet.data, bytes):
        if supports_binary:
            return packet.data
        return "b" + _b64encode(packet.data)
    return str(int(packet.type)) + packet.data


def encode_polling_packet_v4(packet: Packet) -> str:
    """
    Encode one packet as a record of a polling payload (revision 4).
    """
    if isinstance(packet.data, bytes):
        return "b" + _b64encode(packet.data)
    return str(int(packet.type)) + packet.data


def encode_payload_v4(packets: list[Packet]) -> str:
    """
    Join packets into one polling payload (revision 4).
    """
    return RECORD_SEPARATOR.join(encode_polling_packet_v4(p) for p in packets)


def decode_packet_v4(data: str | bytes) -> Packet:
    """
    Decode one packet (a WebSocket frame, or one record of a payload).

    @raise PacketDecodeError: on an unknown type, an empty text packet or
        invalid base64.
    """
    if isinstance(data, bytes):
        return Packet(PacketType.MESSAGE, data)
    if data[:1] == "b":
        return Packet(PacketType.MESSAGE, _b64decode(data[1:]))
    return _text_packet(data)


def decode_payload_v4(payload: str) -> list[Packet]:
    """
    Split and decode a polling payload (revision 4).

    @raise PacketDecodeError: if any record is malformed, with the packets
        before it as C{decoded}.
    """
    packets: list[Packet] = []
    for record in payload.split(RECORD_SEPARATOR):
        try:
            packets.append(decode_packet_v4(record))
        except PacketDecodeError as e:
            raise PacketDecodeError(str(e), tuple(packets)) from e
    return packets


# --- revision 3 ---------------------------------------------------------------


def encode_packet_v3(packet: Packet, supports_binary: bool = True) -> str | bytes:
    """
    Encode one packet for its own WebSocket frame (revision 3).

    Binary data is the type byte followed by the data, or C{b<type><base64>}
    text for clients without binary support.
    """
    if isinstance(packet.data, bytes):
        if supports_binary:
            return bytes((int(packet.type),)) + packet.data
        return "b" + str(int(packet.type)) + _b64encode(packet.data)
    return str(int(packet.type)) + packet.data


def encode_v3_text_segment(packet: Packet) -> str:
    """
    Encode one packet as a C{<length>:<packet>} segment of a text payload.
    """
    encoded = encode_packet_v3(packet, supports_binary=False)
    assert isinstance(encoded, str)
    return f"{utf16_length(encoded)}:{encoded}"


def encode_v3_binary_segment(packet: Packet) -> bytes:
    """
    Encode one packet as a segment of a binary payload.

    Text packets are marked 0 and counted in UTF-8 bytes, binary packets
    are marked 1; each length is written one decimal digit per byte and
    closed by 255.
    """
    if isinstance(packet.data, bytes):
        body = bytes((int(packet.type),)) + packet.data
        marker = 1
    else:
        body = (str(int(packet.type)) + packet.data).encode("utf-8")
        marker = 0
    digits = bytes(int(d) for d in str(len(body)))
    return bytes((marker,)) + digits + b"\xff" + body


def encode_payload_v3(packets: list[Packet], supports_binary: bool) -> str | bytes:
    """
    Encode packets into one polling payload (revision 3).

    The byte format is used only when the client supports binary and some
    packet is binary, as the official server does.
    """
    if supports_binary and any(p.is_binary for p in packets):
        return b"".join(encode_v3_binary_segment(p) for p in packets)
    if not packets:
        return "0:"
    return "".join(encode_v3_text_segment(p) for p in packets)


def decode_packet_v3(data: str | bytes) -> Packet:
    """
    Decode one packet (a WebSocket frame, or one segment of a payload).

    @raise PacketDecodeError: on an unknown type, an empty packet or invalid
        base64.
    """
    if isinstance(data, bytes):
        if not data or data[0] not in _TYPE_BY_BYTE:
            raise PacketDecodeError("invalid binary packet")
        return Packet(_TYPE_BY_BYTE[data[0]], data[1:])
    if data[:1] == "b":
        return Packet(_packet_type(data[1:2]), _b64decode(data[2:]))
    return _text_packet(data)


def _decode_text_payload_v3(payload: str) -> list[Packet]:
    units = payload.encode("utf-16-le", "surrogatepass")
    packets: list[Packet] = []
    position = 0
    if not units:
        raise PacketDecodeError("empty payload")
    while position < len(units):
        colon = units.find(b":\x00", position)
        if colon < 0 or (colon - position) % 2:
            raise PacketDecodeError("missing length")
        digits = units[position:colon].decode("utf-16-le", "replace")
        if not digits or not digits.isdigit() or not digits.isascii():
            raise PacketDecodeError("bad length")
        start = colon + 2
        end = start + 2 * int(digits)
        if end > len(units):
            raise PacketDecodeError("length past the end")
        if end > start:
            try:
                message = units[start:end].decode("utf-16-le")
            except UnicodeDecodeError as e:
                raise PacketDecodeError("split surrogate pair") from e
            packets.append(decode_packet_v3(message))
        position = end
    return packets


def _decode_binary_payload_v3(payload: bytes) -> list[Packet]:
    packets: list[Packet] = []
    position = 0
    while position < len(payload):
        marker = payload[position]
        end_of_length = payload.find(b"\xff", position + 1)
        digits = payload[position + 1 : end_of_length]
        if marker not in (0, 1) or end_of_length < 0 or not digits or max(digits) > 9:
            raise PacketDecodeError("bad binary payload header")
        if len(digits) > 16:
            raise PacketDecodeError("binary payload length too long")
        start = end_of_length + 1
        end = start + int("".join(str(d) for d in digits))
        if end > len(payload):
            raise PacketDecodeError("length past the end")
        body = payload[start:end]
        if marker == 0:
            try:
                packets.append(decode_packet_v3(body.decode("utf-8")))
            except UnicodeDecodeError as e:
                raise PacketDecodeError("invalid UTF-8") from e
        else:
            packets.append(decode_packet_v3(body))
        position = end
    return packets


def decode_payload_v3(payload: str | bytes) -> list[Packet]:
    """
    Decode a polling payload (revision 3), text or binary format.

    Unlike revision 4, a malformed revision 3 payload is rejected whole, as
    the official parser does.

    @raise PacketDecodeError: if the payload is malformed anywhere.
    """
    if isinstance(payload, bytes):
        return _decode_binary_payload_v3(payload)
    return _decode_text_payload_v3(payload)
