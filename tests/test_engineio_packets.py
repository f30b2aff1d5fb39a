# -*- test-case-name: tests.test_engineio_packets -*-
"""
Tests for L{xmeet.engineio.packets} and L{xmeet.engineio.prepared}: the
Engine.IO codecs of revisions 4 and 3, and packets prepared once.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.engineio.packets import (
    Packet,
    PacketDecodeError,
    PacketType,
    decode_packet_v3,
    decode_packet_v4,
    decode_payload_v3,
    decode_payload_v4,
    encode_packet_v3,
    encode_packet_v4,
    encode_payload_v3,
    encode_payload_v4,
    utf16_length,
)
from xmeet.engineio.prepared import PreparedPacket, WebSocketFlavour

MESSAGE = PacketType.MESSAGE

# Text without the record separator, which revision 4 payloads cannot carry.
_record_text = st.text().filter(lambda t: "\x1e" not in t)
_types = st.sampled_from(list(PacketType))
_text_packets = st.builds(Packet, _types, st.text())
_v4_packets = st.one_of(
    st.builds(Packet, _types, _record_text), st.builds(Packet, st.just(MESSAGE), st.binary())
)
_v3_packets = st.one_of(_text_packets, st.builds(Packet, _types, st.binary()))


class PacketV4Tests(SynchronousTestCase):
    """
    Revision 4 packets and payloads.
    """

    def test_encode_text(self) -> None:
        """
        A text packet is its type digit followed by its data.
        """
        self.assertEqual(encode_packet_v4(Packet(MESSAGE, "hello")), "4hello")
        self.assertEqual(encode_packet_v4(Packet(PacketType.PING)), "2")

    def test_encode_binary(self) -> None:
        """
        Binary data goes raw in a WebSocket frame, or C{b<base64>} when the
        client asked for base64.
        """
        packet = Packet(MESSAGE, b"\x01\x02\x03\x04")
        self.assertEqual(encode_packet_v4(packet), b"\x01\x02\x03\x04")
        self.assertEqual(encode_packet_v4(packet, supports_binary=False), "bAQIDBA==")

    def test_payload(self) -> None:
        """
        A polling payload joins records with C{\\x1e}; binary is base64.
        """
        packets = [Packet(MESSAGE, "hello"), Packet(MESSAGE, b"\x01\x02\x03\x04")]
        self.assertEqual(encode_payload_v4(packets), "4hello\x1ebAQIDBA==")
        self.assertEqual(decode_payload_v4("4hello\x1ebAQIDBA=="), packets)

    def test_decode_lenient_base64(self) -> None:
        """
        Base64 without padding decodes, as Node's decoder accepts it.
        """
        self.assertEqual(decode_packet_v4("bAQIDBA"), Packet(MESSAGE, b"\x01\x02\x03\x04"))

    def test_decode_errors(self) -> None:
        """
        Unknown types, empty packets and truncated base64 are decode errors.
        """
        for bad in ["", "7", "abc", "x4", "bA"]:
            with self.subTest(bad=bad):
                self.assertRaises(PacketDecodeError, decode_packet_v4, bad)

    def test_payload_error_keeps_preceding_packets(self) -> None:
        """
        The packets before a malformed record travel with the error.
        """
        with self.assertRaises(PacketDecodeError) as caught:
            decode_payload_v4("4one\x1e4two\x1eabc\x1e4four")
        self.assertEqual(caught.exception.decoded, (Packet(MESSAGE, "one"), Packet(MESSAGE, "two")))

    @given(st.lists(_v4_packets, min_size=1))
    def test_payload_round_trip(self, packets: list[Packet]) -> None:
        """
        Any list of packets survives a polling payload.
        """
        self.assertEqual(decode_payload_v4(encode_payload_v4(packets)), packets)

    @given(_v4_packets)
    def test_packet_round_trip(self, packet: Packet) -> None:
        """
        Any packet survives a WebSocket frame.
        """
        self.assertEqual(decode_packet_v4(encode_packet_v4(packet)), packet)

    @given(st.one_of(st.text(), st.binary()))
    def test_arbitrary_input_packet(self, data: str | bytes) -> None:
        """
        Arbitrary input decodes or raises L{PacketDecodeError}, nothing else.
        """
        try:
            decode_packet_v4(data)
        except PacketDecodeError:
            pass

    @given(st.text())
    def test_arbitrary_input_payload(self, data: str) -> None:
        """
        Arbitrary payloads decode or raise L{PacketDecodeError}.
        """
        try:
            decode_payload_v4(data)
        except PacketDecodeError:
            pass


class PacketV3Tests(SynchronousTestCase):
    """
    Revision 3 packets and payloads.
    """

    def test_encode_binary_frame(self) -> None:
        """
        A binary frame is the type byte then the data; base64 clients get
        C{b4<base64>}.
        """
        packet = Packet(MESSAGE, b"\x01\x02")
        self.assertEqual(encode_packet_v3(packet), b"\x04\x01\x02")
        self.assertEqual(encode_packet_v3(packet, supports_binary=False), "b4AQI=")

    def test_text_payload_counts_utf16_units(self) -> None:
        """
        Lengths count UTF-16 code units, like JavaScript's C{length}: an
        astral character counts twice, C{é} once.
        """
        payload = encode_payload_v3([Packet(MESSAGE, "é😀"), Packet(PacketType.PONG)], False)
        self.assertEqual(payload, "4:4é😀1:3")
        self.assertEqual(utf16_length("é😀"), 3)

    def test_text_payload_with_binary(self) -> None:
        """
        Without binary support, binary packets are base64 segments.
        """
        packets = [Packet(MESSAGE, "hi"), Packet(MESSAGE, b"\x01\x02")]
        self.assertEqual(encode_payload_v3(packets, False), "3:4hi6:b4AQI=")
        self.assertEqual(decode_payload_v3("3:4hi6:b4AQI="), packets)

    def test_binary_payload(self) -> None:
        """
        With binary support and a binary packet, the byte format is used:
        marker, one byte per length digit, 255, packet.
        """
        packets = [Packet(MESSAGE, "hé"), Packet(MESSAGE, b"\x01\x02")]
        encoded = encode_payload_v3(packets, True)
        self.assertEqual(encoded, b"\x00\x04\xff4h\xc3\xa9\x01\x03\xff\x04\x01\x02")
        self.assertEqual(decode_payload_v3(encoded), packets)

    def test_text_only_uses_text_format(self) -> None:
        """
        Binary support alone does not switch to the byte format.
        """
        self.assertEqual(encode_payload_v3([Packet(MESSAGE, "a")], True), "2:4a")

    def test_empty_segments_skipped(self) -> None:
        """
        A zero-length segment carries no packet.
        """
        self.assertEqual(decode_payload_v3("0:2:4a"), [Packet(MESSAGE, "a")])

    def test_decode_errors(self) -> None:
        """
        Bad lengths, bad types and truncation reject the whole payload.
        """
        for bad in [
            "",
            "abc",
            "2:4",
            "x:4a",
            "2:9a",
            "1:",
            "3:b9AA",
            b"\x02\x01\xff4",
            b"\x00\x05\xff4",
        ]:
            with self.subTest(bad=bad):
                self.assertRaises(PacketDecodeError, decode_payload_v3, bad)

    def test_split_surrogate_pair(self) -> None:
        """
        A length that cuts an astral character in half is a decode error.
        """
        self.assertRaises(PacketDecodeError, decode_payload_v3, "2:4😀")

    @given(st.lists(_v3_packets, min_size=1), st.booleans())
    def test_payload_round_trip(self, packets: list[Packet], binary: bool) -> None:
        """
        Any packets survive either payload format (text packets need valid
        UTF-16, which Python strings from the wire always have).
        """
        packets = [p for p in packets if isinstance(p.data, bytes) or _no_surrogates(p.data)]
        if not packets:
            return
        self.assertEqual(decode_payload_v3(encode_payload_v3(packets, binary)), packets)

    @given(_v3_packets, st.booleans())
    def test_packet_round_trip(self, packet: Packet, binary: bool) -> None:
        """
        Any packet survives a WebSocket frame.
        """
        self.assertEqual(decode_packet_v3(encode_packet_v3(packet, binary)), packet)

    @given(st.one_of(st.text(), st.binary()))
    def test_arbitrary_input(self, data: str | bytes) -> None:
        """
        Arbitrary payloads and packets decode or raise L{PacketDecodeError}.
        """
        for decode in (decode_payload_v3, decode_packet_v3):
            try:
                decode(data)
            except PacketDecodeError:
                pass


def _no_surrogates(text: str) -> bool:
    return not any("\ud800" <= c <= "\udfff" for c in text)


class PreparedPacketTests(SynchronousTestCase):
    """
    L{PreparedPacket} encodes each wire form once.
    """

    def test_forms(self) -> None:
        """
        Each wire form matches the codec's.
        """
        text = PreparedPacket.message("hé")
        self.assertEqual(text.polling_v4(), "4hé")
        self.assertEqual(text.v3_text_segment(), "3:4hé")
        self.assertEqual(text.v3_binary_segment(), b"\x00\x04\xff4h\xc3\xa9")
        self.assertEqual(text.frame(WebSocketFlavour.V3).payload, "4hé".encode())

    def test_text_frame_shared(self) -> None:
        """
        One prepared WebSocket message serves every flavour of text frame.
        """
        text = PreparedPacket.message("x")
        frames = {id(text.frame(flavour)) for flavour in WebSocketFlavour}
        self.assertEqual(len(frames), 1)
        self.assertIs(text.polling_v4(), text.polling_v4())

    def test_binary_frames(self) -> None:
        """
        Binary frames differ by flavour and are each built once.
        """
        packet = PreparedPacket.message(b"\x01")
        self.assertEqual(packet.frame(WebSocketFlavour.V4).payload, b"\x01")
        self.assertTrue(packet.frame(WebSocketFlavour.V4).binary)
        self.assertEqual(packet.frame(WebSocketFlavour.V3).payload, b"\x04\x01")
        self.assertEqual(packet.frame(WebSocketFlavour.V3_BASE64).payload, b"b4AQ==")
        self.assertFalse(packet.frame(WebSocketFlavour.V3_BASE64).binary)
        self.assertEqual(packet.frame(WebSocketFlavour.V4_BASE64).payload, b"bAQ==")
        self.assertIs(packet.frame(WebSocketFlavour.V3), packet.frame(WebSocketFlavour.V3))

    def test_rejects_other_types(self) -> None:
        """
        Only C{str} and C{bytes} are messages.
        """
        self.assertRaises(TypeError, PreparedPacket.message, 42)
