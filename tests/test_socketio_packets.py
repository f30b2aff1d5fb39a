# -*- test-case-name: tests.test_socketio_packets -*-
"""
Tests for L{xmeet.socketio.packets}: the wire format of the official
C{socket.io-parser}, and that no input makes the decoder raise anything but
L{PacketDecodeError}.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.frames import dumps
from xmeet.socketio.packets import (
    RESERVED_EVENTS,
    Packet,
    PacketDecodeError,
    PacketDecoder,
    PacketType,
    encode_ack_json,
    encode_event_json,
    encode_packet,
    split_v4_namespace,
)

__all__ = [
    "DecodeTests",
    "EncodeAckJSONTests",
    "EncodeEventJSONTests",
    "EncodeTests",
    "PropertyTests",
]


def decode_all(*messages: str | bytes) -> list[Packet]:
    """
    Feed C{messages} to one decoder and collect the packets it completes.
    """
    decoder = PacketDecoder()
    packets = []
    for message in messages:
        packet = decoder.feed(message)
        if packet is not None:
            packets.append(packet)
    return packets


class EncodeTests(SynchronousTestCase):
    """
    L{encode_packet} produces the official encoder's text.
    """

    def test_connect(self) -> None:
        self.assertEqual(
            encode_packet(Packet(PacketType.CONNECT, data={"sid": "x"})), ['0{"sid":"x"}']
        )
        self.assertEqual(encode_packet(Packet(PacketType.CONNECT, "/custom")), ["0/custom,"])

    def test_event_with_namespace_and_id(self) -> None:
        packet = Packet(PacketType.EVENT, "/admin", ["hi", 1, {"a": [True, None]}], 12)
        self.assertEqual(encode_packet(packet), ['2/admin,12["hi",1,{"a":[true,null]}]'])

    def test_unicode_kept(self) -> None:
        self.assertEqual(encode_packet(Packet(PacketType.EVENT, data=["é"])), ['2["é"]'])

    def test_lone_surrogate_escaped(self) -> None:
        """
        A lone surrogate cannot be sent as UTF-8, so it is escaped as
        C{JSON.stringify} does.
        """
        [text] = encode_packet(Packet(PacketType.EVENT, data=["\ud800é"]))
        self.assertEqual(text, '2["\\ud800\\u00e9"]')
        assert isinstance(text, str)
        text.encode("utf-8")

    def test_binary_event(self) -> None:
        packet = Packet(PacketType.EVENT, data=["m", b"\x01", {"k": bytearray(b"\x02")}], id=7)
        self.assertEqual(
            encode_packet(packet),
            [
                '52-7["m",{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}]',
                b"\x01",
                b"\x02",
            ],
        )

    def test_binary_ack_with_namespace(self) -> None:
        packet = Packet(PacketType.ACK, "/n", [b"z"], 3)
        self.assertEqual(encode_packet(packet), ['61-/n,3[{"_placeholder":true,"num":0}]', b"z"])

    def test_connect_error_v4_string(self) -> None:
        self.assertEqual(
            encode_packet(Packet(PacketType.CONNECT_ERROR, data="Invalid namespace")),
            ['4"Invalid namespace"'],
        )

    def test_disconnect(self) -> None:
        self.assertEqual(encode_packet(Packet(PacketType.DISCONNECT, "/x")), ["1/x,"])


class DecodeTests(SynchronousTestCase):
    """
    L{PacketDecoder} accepts what the official decoder accepts and refuses
    what it refuses.
    """

    def test_connect_variants(self) -> None:
        self.assertEqual(decode_all("0"), [Packet(PacketType.CONNECT)])
        self.assertEqual(
            decode_all('0{"token":"123"}'), [Packet(PacketType.CONNECT, data={"token": "123"})]
        )
        self.assertEqual(decode_all("0/custom,"), [Packet(PacketType.CONNECT, "/custom")])
        self.assertEqual(decode_all("0/random"), [Packet(PacketType.CONNECT, "/random")])
        self.assertEqual(
            decode_all('0/custom,{"t":1}'), [Packet(PacketType.CONNECT, "/custom", {"t": 1})]
        )

    def test_event_with_ack_id(self) -> None:
        self.assertEqual(
            decode_all('2456["message-with-ack",1,"2",{"3":[false]}]'),
            [Packet(PacketType.EVENT, data=["message-with-ack", 1, "2", {"3": [False]}], id=456)],
        )

    def test_binary_reassembled(self) -> None:
        packets = decode_all(
            '52-/n,789["m",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]',
            b"\x01\x02\x03",
            b"\x04",
        )
        self.assertEqual(
            packets, [Packet(PacketType.BINARY_EVENT, "/n", ["m", b"\x04", b"\x01\x02\x03"], 789)]
        )

    def test_binary_without_attachments(self) -> None:
        self.assertEqual(decode_all('50-["m"]'), [Packet(PacketType.BINARY_EVENT, data=["m"])])

    def test_binary_waits(self) -> None:
        decoder = PacketDecoder()
        self.assertIsNone(decoder.feed('51-["m",{"_placeholder":true,"num":0}]'))
        self.assertEqual(decoder.feed(b"a"), Packet(PacketType.BINARY_EVENT, data=["m", b"a"]))

    def test_malformed(self) -> None:
        for text in [
            "",
            "4abc",
            "7",
            "x",
            "2{}",
            "2[]",
            '2["connect"]',
            '2["disconnect",1]',
            "2[true]",
            "2abc[1]",
            "2null",
            "2[NaN]",
            "2[1]x",
            "1{}",
            '0"x"',
            "3{}",
            "5[]",
            '5x-["m"]',
            '51["m"]',
            "2" + "9" * 17 + '["m"]',
            "2" + "[" * 100000,
        ]:
            with self.subTest(text=text):
                self.assertRaises(PacketDecodeError, PacketDecoder().feed, text)

    def test_bad_placeholder(self) -> None:
        for placeholder in [
            '{"_placeholder":true,"num":1}',
            '{"_placeholder":true}',
            '{"_placeholder":true,"num":true}',
            '{"_placeholder":true,"num":-1}',
        ]:
            decoder = PacketDecoder()
            decoder.feed(f'51-["m",{placeholder}]')
            with self.subTest(placeholder=placeholder):
                self.assertRaises(PacketDecodeError, decoder.feed, b"x")

    def test_unexpected_kind(self) -> None:
        self.assertRaises(PacketDecodeError, PacketDecoder().feed, b"x")
        decoder = PacketDecoder()
        decoder.feed('51-["m",{"_placeholder":true,"num":0}]')
        self.assertRaises(PacketDecodeError, decoder.feed, '2["m"]')

    def test_too_many_attachments(self) -> None:
        self.assertRaises(PacketDecodeError, PacketDecoder(max_attachments=2).feed, '53-["m"]')

    def test_numeric_event_name(self) -> None:
        self.assertEqual(decode_all("2[1]"), [Packet(PacketType.EVENT, data=[1])])

    def test_v4_namespace(self) -> None:
        self.assertEqual(split_v4_namespace("/a?x=1&y="), ("/a", {"x": "1", "y": ""}))
        self.assertEqual(split_v4_namespace("/"), ("/", {}))


def json_values(binary: bool) -> st.SearchStrategy[Any]:
    """
    JSON-compatible values, with C{bytes} among the leaves if C{binary}.
    """
    leaves: st.SearchStrategy[Any] = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
    )
    if binary:
        leaves = leaves | st.binary()
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text().filter(lambda k: k != "_placeholder"), children, max_size=4)
        ),
        max_leaves=12,
    )


namespaces = st.just("/") | st.text(min_size=1).map(lambda s: "/" + s.replace(",", ""))
ack_ids = st.none() | st.integers(0, 2**53 - 1)
event_names = st.text().filter(lambda n: n not in RESERVED_EVENTS)


def _plain(value: Any) -> Any:
    """
    What C{value} decodes to: tuples become lists, binary values bytes.
    """
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class PropertyTests(SynchronousTestCase):
    """
    Round trips, and total decoding.
    """

    @given(namespaces, ack_ids, event_names, st.lists(json_values(binary=True), max_size=4))
    def test_event_round_trip(
        self, namespace: str, ack_id: int | None, name: str, args: list[Any]
    ) -> None:
        packet = Packet(PacketType.EVENT, namespace, [name, *args], ack_id)
        [decoded] = decode_all(*encode_packet(packet))
        binary = any(isinstance(a, bytes) for a in encode_packet(packet))
        kind = PacketType.BINARY_EVENT if binary else PacketType.EVENT
        self.assertEqual(decoded, Packet(kind, namespace, _plain([name, *args]), ack_id))

    @given(namespaces, st.integers(0, 2**53 - 1), st.lists(json_values(binary=True), max_size=4))
    def test_ack_round_trip(self, namespace: str, ack_id: int, args: list[Any]) -> None:
        packet = Packet(PacketType.ACK, namespace, args, ack_id)
        [decoded] = decode_all(*encode_packet(packet))
        self.assertEqual(
            (decoded.namespace, decoded.id, decoded.data), (namespace, ack_id, _plain(args))
        )

    @given(namespaces, st.dictionaries(st.text(), json_values(binary=False), max_size=3))
    def test_connect_round_trip(self, namespace: str, auth: dict[str, Any]) -> None:
        packet = Packet(PacketType.CONNECT, namespace, auth)
        self.assertEqual(decode_all(*encode_packet(packet)), [packet])

    @given(st.lists(st.text() | st.binary(), max_size=5))
    def test_arbitrary_input(self, messages: list[str | bytes]) -> None:
        decoder = PacketDecoder()
        for message in messages:
            try:
                decoder.feed(message)
            except PacketDecodeError:
                return

    @given(st.sampled_from("0123456"), st.text())
    def test_arbitrary_text_after_type(self, kind: str, rest: str) -> None:
        try:
            PacketDecoder().feed(kind + rest)
        except PacketDecodeError:
            pass


class EncodeEventJSONTests(SynchronousTestCase):
    """
    L{encode_event_json} builds the packet L{encode_packet} builds for the
    same arguments, from their JSON text.
    """

    @given(
        st.sampled_from(["/", "/custom"]),
        st.text(min_size=1, max_size=20),
        st.lists(
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
                lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                max_leaves=10,
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def test_same_packet(self, namespace: str, event: str, args: list[Any]) -> None:
        """
        Decoding either encoding gives the same packet.
        """
        args_json = ",".join(json.dumps(arg, ensure_ascii=False) for arg in args)
        raw = encode_event_json(namespace, event, args_json)
        [expected] = encode_packet(Packet(PacketType.EVENT, namespace, [event, *args]))
        self.assertEqual(decode_all(raw), decode_all(expected))


#: Text with anything Python strings hold, lone surrogates often.
any_text = st.text(st.characters() | st.characters(categories=["Cs"]))


class EncodeAckJSONTests(SynchronousTestCase):
    """
    L{encode_ack_json} builds, from the arguments' JSON text, the very text
    L{encode_packet} builds from their values: an acknowledgement built
    from stored JSON looks the same on the wire.
    """

    def test_text(self) -> None:
        self.assertEqual(encode_ack_json("/", 3, '{"a":[1,"é"]},2'), '33[{"a":[1,"é"]},2]')
        self.assertEqual(encode_ack_json("/custom", 0, "true"), "3/custom,0[true]")

    def test_lone_surrogate_escaped(self) -> None:
        """
        A lone surrogate in the JSON text is escaped with the rest of the
        packet, as L{encode_packet} escapes it.
        """
        text = encode_ack_json("/", 1, '{"n":"\ud800é"}')
        self.assertEqual(text, '31[{"n":"\\ud800\\u00e9"}]')
        text.encode("utf-8")

    @given(
        st.sampled_from(["/", "/custom"]),
        st.integers(0, 2**53 - 1),
        st.lists(
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**53), 2**53) | any_text,
                lambda inner: st.lists(inner, max_size=4)
                | st.dictionaries(any_text, inner, max_size=4),
                max_leaves=10,
            ),
            max_size=3,
        ),
    )
    def test_same_text(self, namespace: str, ack_id: int, args: list[Any]) -> None:
        """
        For any JSON values, encoded as the room service encodes them, the
        text is that of L{encode_packet}.
        """
        args_json = ",".join(dumps(arg) for arg in args)
        [expected] = encode_packet(Packet(PacketType.ACK, namespace, args, ack_id))
        self.assertEqual(encode_ack_json(namespace, ack_id, args_json), expected)
