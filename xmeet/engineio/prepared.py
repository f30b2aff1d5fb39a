# -*- test-case-name: tests.test_engineio_packets -*-
"""
A packet encoded once for every socket it is sent to.

Broadcasting a message to many sockets is the hot path of a chat server. A
L{PreparedPacket} computes each wire form (polling record, revision 3
segment, Autobahn L{PreparedMessage} for WebSocket frames) the first time a
socket needs it and keeps it, so a broadcast encodes and frames the message
at most once per wire form instead of once per socket.
"""

from __future__ import annotations

import enum

import attrs
from autobahn.websocket.protocol import PreparedMessage

from .packets import (
    Packet,
    PacketType,
    encode_packet_v3,
    encode_packet_v4,
    encode_polling_packet_v4,
    encode_v3_binary_segment,
    encode_v3_text_segment,
)

__all__ = ["PreparedPacket", "WebSocketFlavour"]


class WebSocketFlavour(enum.Enum):
    """
    How a WebSocket connection wants binary messages framed.

    Text packets are framed the same for every flavour.
    """

    V4 = "v4"
    V4_BASE64 = "v4-b64"
    V3 = "v3"
    V3_BASE64 = "v3-b64"

    def encode(self, packet: Packet) -> str | bytes:
        """
        Encode C{packet} for one WebSocket frame of this flavour.
        """
        if self is WebSocketFlavour.V4:
            return encode_packet_v4(packet)
        if self is WebSocketFlavour.V4_BASE64:
            return encode_packet_v4(packet, supports_binary=False)
        if self is WebSocketFlavour.V3:
            return encode_packet_v3(packet)
        return encode_packet_v3(packet, supports_binary=False)


def _prepare_frame(encoded: str | bytes) -> PreparedMessage:
    if isinstance(encoded, bytes):
        return PreparedMessage(encoded, True, False, False)
    return PreparedMessage(encoded.encode("utf-8"), False, False, False)


@attrs.define(eq=False)
class PreparedPacket:
    """
    One packet and the wire forms computed for it so far.

    @ivar packet: the packet itself.
    """

    packet: Packet
    _polling_v4: str | None = attrs.field(default=None, init=False, repr=False)
    _polling_v4_size: int | None = attrs.field(default=None, init=False, repr=False)
    _v3_text: str | None = attrs.field(default=None, init=False, repr=False)
    _v3_binary: bytes | None = attrs.field(default=None, init=False, repr=False)
    _frames: dict[WebSocketFlavour, PreparedMessage] = attrs.field(
        factory=dict, init=False, repr=False
    )

    @classmethod
    def message(cls, data: str | bytes) -> PreparedPacket:
        """
        Wrap message data (C{str} text or C{bytes} binary).
        """
        if not isinstance(data, str | bytes):
            raise TypeError(f"Engine.IO messages are str or bytes, not {type(data).__name__}")
        return cls(Packet(PacketType.MESSAGE, data))

    @property
    def is_binary(self) -> bool:
        """
        Whether the packet carries binary data.
        """
        return self.packet.is_binary

    def polling_v4(self) -> str:
        """
        The record of a revision 4 polling payload.
        """
        if self._polling_v4 is None:
            self._polling_v4 = encode_polling_packet_v4(self.packet)
        return self._polling_v4

    def polling_v4_size(self) -> int:
        """
        The length in UTF-8 bytes of L{polling_v4}.
        """
        if self._polling_v4_size is None:
            record = self.polling_v4()
            self._polling_v4_size = len(record) if record.isascii() else len(record.encode("utf-8"))
        return self._polling_v4_size

    def v3_text_segment(self) -> str:
        """
        The C{<length>:<packet>} segment of a revision 3 text payload.
        """
        if self._v3_text is None:
            self._v3_text = encode_v3_text_segment(self.packet)
        return self._v3_text

    def v3_binary_segment(self) -> bytes:
        """
        The segment of a revision 3 binary payload.
        """
        if self._v3_binary is None:
            self._v3_binary = encode_v3_binary_segment(self.packet)
        return self._v3_binary

    def frame(self, flavour: WebSocketFlavour) -> PreparedMessage:
        """
        The Autobahn prepared message for a WebSocket of this flavour.

        Text frames are identical for every flavour, so they are built once
        and shared.
        """
        key = flavour if self.packet.is_binary else WebSocketFlavour.V4
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = _prepare_frame(key.encode(self.packet))
        return frame
