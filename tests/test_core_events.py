"""
Room events as nodes tell them to each other through Redis: the codec, and
how a node recognises its own events without parsing them.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.events import (
    EVENT_KINDS,
    EventError,
    RoomEvent,
    decode_event,
    encode_event,
    event_prefixes,
)

texts = st.text()
nodes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
events = st.builds(
    RoomEvent, st.sampled_from(sorted(EVENT_KINDS)), nodes, texts, texts, texts, texts, texts, texts
)


class CodecTests(SynchronousTestCase):
    """
    L{encode_event} and L{decode_event}.
    """

    @given(events)
    def test_round_trip(self, event: RoomEvent) -> None:
        """
        Every event comes back equal, whatever its text fields hold.
        """
        self.assertEqual(decode_event(encode_event(event)), event)

    @given(st.one_of(st.text(), st.binary()))
    def test_garbage(self, data: str | bytes) -> None:
        """
        Anything else is an L{EventError} or an event: nothing else is
        raised for bytes off the bus.
        """
        try:
            event = decode_event(data)
        except EventError:
            return
        self.assertIn(event.kind, EVENT_KINDS)

    def test_refused(self) -> None:
        """
        Not JSON, not a list of eight strings, an unknown kind: each is an
        L{EventError} saying why.
        """
        wrong = {
            "{": "not JSON",
            "[1, 2]": "list of 8 strings",
            json.dumps(["x"] * 8): "unknown room event kind 'x'",
            b"\xff": "not JSON",
        }
        for data, why in wrong.items():
            with self.assertRaises(EventError) as raised:
                decode_event(data)
            self.assertIn(why, str(raised.exception))


class PrefixTests(SynchronousTestCase):
    """
    L{event_prefixes} recognise a node's own encoded events.
    """

    @given(events, nodes)
    def test_own_events_only(self, event: RoomEvent, other: str) -> None:
        """
        Every event of the node begins with one of its prefixes; no event of
        another node does, even one whose id extends this one's.
        """
        encoded = encode_event(event)
        self.assertTrue(encoded.startswith(event_prefixes(event.node)))
        for stranger in {other, event.node + "0"} - {event.node}:
            self.assertFalse(encoded.startswith(event_prefixes(stranger)))
