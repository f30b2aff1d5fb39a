# -*- test-case-name: tests.test_socketio_packets -*-
"""
The Socket.IO packet codec (protocol v5, and v4 as spoken by socket.io 2.x
clients), with no I/O.

A Socket.IO packet travels as one Engine.IO text message, followed by one
Engine.IO binary message per binary attachment::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]

Encoding takes binary values (C{bytes}) out of the payload and replaces each
with C{{"_placeholder": true, "num": N}}; decoding puts them back once the N
binary messages have arrived.  The decoder is strict in the same places as the
official C{socket.io-parser} (an unknown type, a payload of the wrong shape
for its type, a bad attachment reference): every malformed input raises
L{PacketDecodeError} and nothing else, so the server can close the connection
as the official server does without a stray exception reaching the reactor.
"""

from __future__ import annotations

import enum
import json
from typing import Any
from urllib.parse import parse_qsl

import attrs

__all__ = [
    "MAX_ACK_ID",
    "Packet",
    "PacketDecodeError",
    "PacketDecoder",
    "PacketType",
    "PreparedEvent",
    "RESERVED_EVENTS",
    "encode_ack_json",
    "encode_event_json",
    "encode_packet",
    "split_v4_namespace",
]

#: The largest ack id a JavaScript client can represent exactly
#: (C{Number.MAX_SAFE_INTEGER}); larger ids are refused as malformed.
MAX_ACK_ID = 2**53 - 1

#: Event names a client may not send: the client library uses them itself.
RESERVED_EVENTS = frozenset(
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]
)


@attrs.frozen
class PreparedEvent:
    """
    An event encoded once, as Engine.IO packets prepared once, for sending
    to any number of sockets of one namespace with L{Socket.send_prepared}.

    @ivar namespace: the namespace's name.
    @ivar packets: the prepared Engine.IO packets: the text packet, then one
        per binary attachment.
    """

    namespace: str
    packets: tuple[Any, ...]


class PacketType(enum.IntEnum):
    """
    The packet types; C{CONNECT_ERROR} is called C{ERROR} in protocol v4.
    """

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_BINARY_TYPES = frozenset([PacketType.BINARY_EVENT, PacketType.BINARY_ACK])
_AS_BINARY = {PacketType.EVENT: PacketType.BINARY_EVENT, PacketType.ACK: PacketType.BINARY_ACK}


class PacketDecodeError(ValueError):
    """
    The data is not a well-formed Socket.IO packet (or binary attachment).
    """


@attrs.frozen
class Packet:
    """
    One Socket.IO packet.

    @ivar type: the packet type.  Encoding an C{EVENT} or C{ACK} whose data
        holds C{bytes} produces a C{BINARY_EVENT} / C{BINARY_ACK}, as the
        official encoder does; decoding reports the type found on the wire.
    @ivar namespace: the namespace, C{"/"} by default.
    @ivar data: the JSON payload (with C{bytes} in place of attachments), or
        C{None} when the packet has none.
    @ivar id: the acknowledgement id, or C{None}.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


def _dumps(value: Any) -> str:
    """
    Serialise like C{JSON.stringify}: compact, UTF-8 text kept as is, and
    lone surrogates (which UTF-8 cannot carry) escaped.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    """
    Copy C{value} with each binary value replaced by a placeholder, in the
    depth-first order the official encoder numbers them.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, buffers) for key, item in value.items()}
    return value


def _has_binary(value: Any) -> bool:
    """
    Whether C{value} holds a binary value anywhere, so the common text-only
    packet is encoded without copying its payload.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(_has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(_has_binary(item) for item in value.values())
    return False


def _header(kind: PacketType, namespace: str, ack_id: int | None) -> str:
    """
    The text before the JSON payload, binary attachment count excepted.
    """
    text = str(int(kind))
    if namespace != "/":
        text += namespace + ","
    if ack_id is not None:
        text += str(ack_id)
    return text


def encode_packet(packet: Packet) -> list[str | bytes]:
    """
    Encode C{packet} as the Engine.IO messages that carry it.

    @return: one text message, then one binary message per attachment.
    """
    kind = packet.type
    if kind in _AS_BINARY and _has_binary(packet.data):
        buffers: list[bytes] = []
        data = _deconstruct(packet.data, buffers)
        binary_kind = _AS_BINARY[kind]
        head = str(int(binary_kind)) + str(len(buffers)) + "-"
        head += _header(binary_kind, packet.namespace, packet.id)[1:]
        return [head + _dumps(data), *buffers]
    text = _header(kind, packet.namespace, packet.id)
    if packet.data is not None:
        text += _dumps(packet.data)
    return [text]


def encode_event_json(namespace: str, event: str, args_json: str) -> str:
    """
    Encode an EVENT packet whose arguments are already JSON text (an
    array's items, comma-separated, without brackets), with no binary
    attachments: a broadcast of a frame that is already JSON encodes it
    into the packet without decoding it again.
    """
    return _header(PacketType.EVENT, namespace, None) + "[" + _dumps(event) + "," + args_json + "]"


def encode_ack_json(namespace: str, ack_id: int, args_json: str) -> str:
    """
    Encode an ACK packet whose arguments are already JSON text (an array's
    items, comma-separated, without brackets), with no binary attachments:
    an acknowledgement built from stored JSON is not decoded to be encoded
    again.

    Text UTF-8 cannot carry (a lone surrogate a client sent as a JSON
    escape) is escaped, as L{encode_packet} does.
    """
    args = "[" + args_json + "]"
    if not args.isascii():
        try:
            args.encode("utf-8")
        except UnicodeEncodeError:
            args = _dumps(json.loads(args))
    return _header(PacketType.ACK, namespace, ack_id) + args


def _reject_constant(name: str) -> Any:
    """
    Refuse C{NaN} and C{Infinity}, which C{JSON.parse} does not accept.
    """
    raise PacketDecodeError(f"invalid JSON constant {name}")


def _loads(text: str) -> Any:
    """
    Parse JSON as C{JSON.parse} would, raising only L{PacketDecodeError}.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise PacketDecodeError("invalid JSON payload") from e


def _is_event_name(value: Any) -> bool:
    """
    Whether C{value} may name an event sent by a client.
    """
    if isinstance(value, str):
        return value not in RESERVED_EVENTS
    return isinstance(value, int | float) and not isinstance(value, bool)


def _payload_is_valid(kind: PacketType, payload: Any) -> bool:
    """
    The official decoder's check of the payload's shape for each type.
    """
    if kind is PacketType.CONNECT:
        return isinstance(payload, dict)
    if kind is PacketType.CONNECT_ERROR:
        return isinstance(payload, str | dict)
    if kind in (PacketType.EVENT, PacketType.BINARY_EVENT):
        return isinstance(payload, list) and bool(payload) and _is_event_name(payload[0])
    if kind in (PacketType.ACK, PacketType.BINARY_ACK):
        return isinstance(payload, list)
    return False


def _digits(text: str, start: int) -> int:
    """
    The index just past the run of ASCII digits starting at C{start}.
    """
    end = start
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return end


@attrs.frozen
class _Header:
    """
    The parsed text message of a packet, before attachments are known.
    """

    packet: Packet
    attachments: int


def _parse_text(text: str, max_attachments: int) -> _Header:
    """
    Parse one text message into a packet whose payload may still hold
    attachment placeholders.
    """
    if not text or text[0] not in "0123456":
        raise PacketDecodeError("unknown packet type")
    kind = PacketType(int(text[0]))
    index = 1
    attachments = 0
    if kind in _BINARY_TYPES:
        end = _digits(text, index)
        if end == index or end >= len(text) or text[end] != "-" or end - index > 6:
            raise PacketDecodeError("illegal attachments")
        attachments = int(text[index:end])
        if attachments > max_attachments:
            raise PacketDecodeError("too many attachments")
        index = end + 1
    namespace = "/"
    if text.startswith("/", index):
        comma = text.find(",", index)
        end = len(text) if comma < 0 else comma
        namespace = text[index:end]
        index = end + 1
    ack_id = None
    end = _digits(text, index)
    if end > index:
        if end - index > 16 or int(text[index:end]) > MAX_ACK_ID:
            raise PacketDecodeError("invalid ack id")
        ack_id = int(text[index:end])
        index = end
    data = None
    if index < len(text):
        data = _loads(text[index:])
        if not _payload_is_valid(kind, data):
            raise PacketDecodeError("invalid payload")
    return _Header(Packet(kind, namespace, data, ack_id), attachments)


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    """
    Copy C{value} with each attachment placeholder replaced by its buffer.
    """
    if isinstance(value, list):
        return [_reconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True:
            num = value.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise PacketDecodeError("illegal attachments")
            return buffers[num]
        return {key: _reconstruct(item, buffers) for key, item in value.items()}
    return value


@attrs.define
class PacketDecoder:
    """
    Decode the Engine.IO messages of one connection into packets.

    Stateful: a binary packet's text message is held until its attachments
    have arrived.  After a L{PacketDecodeError} the connection is to be
    closed; the decoder is not meant to be fed again.

    @ivar max_attachments: the most attachments one packet may declare,
        bounding what a client can make the server buffer.
    """

    max_attachments: int = 1000
    _pending: _Header | None = attrs.field(default=None, init=False)
    _buffers: list[bytes] = attrs.field(factory=list, init=False)

    def feed(self, message: str | bytes) -> Packet | None:
        """
        Take one Engine.IO message.

        @return: the packet it completes, or C{None} when more attachments
            are awaited.
        @raise PacketDecodeError: the message is malformed, or arrives when
            the other kind was expected.
        """
        if isinstance(message, str):
            return self._feed_text(message)
        return self._feed_binary(message)

    def _feed_text(self, text: str) -> Packet | None:
        if self._pending is not None:
            raise PacketDecodeError("got text data while reconstructing a packet")
        header = _parse_text(text, self.max_attachments)
        if header.attachments == 0:
            return header.packet
        self._pending = header
        return None

    def _feed_binary(self, data: bytes) -> Packet | None:
        header = self._pending
        if header is None:
            raise PacketDecodeError("got binary data when not reconstructing a packet")
        self._buffers.append(bytes(data))
        if len(self._buffers) < header.attachments:
            return None
        buffers, self._buffers, self._pending = self._buffers, [], None
        return attrs.evolve(header.packet, data=_reconstruct(header.packet.data, buffers))


def split_v4_namespace(namespace: str) -> tuple[str, dict[str, str]]:
    """
    Split a protocol v4 CONNECT namespace such as C{/admin?token=abc} into
    the namespace and its query, which v4 clients send in place of the v5
    auth payload.
    """
    path, _, query = namespace.partition("?")
    return path or "/", dict(parse_qsl(query, keep_blank_values=True))
