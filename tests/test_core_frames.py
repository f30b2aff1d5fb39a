"""
Tests for L{xmeet.core.frames} and L{xmeet.core.ids}.
"""

import json
from datetime import timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.frames import Frame, SendTimeFormatter, dumps, frame_json
from xmeet.core.ids import IdGenerator, new_node_id


class SendTimeTests(SynchronousTestCase):
    """
    C{send_time} is C{Y-M-D H:M:S} without zero padding.
    """

    def test_no_padding(self) -> None:
        """
        2015-04-08 14:02:06 UTC is C{2015-4-8 14:2:6}.
        """
        formatter = SendTimeFormatter(timezone.utc)
        self.assertEqual(formatter.format(1428501726.9), "2015-4-8 14:2:6")

    def test_zone(self) -> None:
        """
        Another zone shifts the wall time.
        """
        formatter = SendTimeFormatter(ZoneInfo("Asia/Shanghai"))
        self.assertEqual(formatter.format(1428501726), "2015-4-8 22:2:6")

    def test_cache_follows_time(self) -> None:
        """
        The remembered second is replaced when time moves on.
        """
        formatter = SendTimeFormatter(timezone.utc)
        self.assertEqual(formatter.format(0), "1970-1-1 0:0:0")
        self.assertEqual(formatter.format(0.5), "1970-1-1 0:0:0")
        self.assertEqual(formatter.format(61), "1970-1-1 0:1:1")


class FrameTests(SynchronousTestCase):
    """
    L{frame_json} and L{Frame}.
    """

    def test_fields(self) -> None:
        """
        The frame has the five keys of the contract, plus extras.
        """
        text = frame_json(
            "a.1", dumps("房"), "private", dumps("你好"), "2015-4-8 14:2:6", {"to": "b"}
        )
        self.assertEqual(
            json.loads(text),
            {
                "from": "a.1",
                "xnest": "房",
                "type": "private",
                "payload": "你好",
                "send_time": "2015-4-8 14:2:6",
                "to": "b",
            },
        )
        self.assertIn("你好", text)

    @given(st.text(), st.text(), st.text())
    def test_any_text_is_valid_json(self, sender: str, xnest: str, payload: str) -> None:
        """
        Whatever the strings, the frame is JSON that decodes to them.
        """
        decoded = json.loads(frame_json(sender, dumps(xnest), "normal", dumps(payload), "t"))
        self.assertEqual(
            (decoded["from"], decoded["xnest"], decoded["payload"]), (sender, xnest, payload)
        )

    def test_prepared_once(self) -> None:
        """
        A wire form is built once per key and shared afterwards.
        """
        calls: list[str] = []

        def build(text: str) -> bytes:
            calls.append(text)
            return text.encode()

        frame = Frame("{}")
        first = frame.prepared("ws", build)
        self.assertIs(frame.prepared("ws", build), first)
        self.assertEqual(calls, ["{}"])
        frame.prepared("sio", build)
        self.assertEqual(len(calls), 2)


class IdTests(SynchronousTestCase):
    """
    L{IdGenerator} and L{new_node_id}.
    """

    def test_unique_and_short(self) -> None:
        """
        Ids never repeat and stay within 32 characters even for huge counters.
        """
        generator = IdGenerator(new_node_id())
        ids = [generator.next_id() for _ in range(10000)]
        self.assertEqual(len(set(ids)), len(ids))
        generator._counter = 2**64
        self.assertLessEqual(len(generator.next_id()), 32)

    def test_nodes_differ(self) -> None:
        """
        Two node starts draw different node ids.
        """
        self.assertNotEqual(new_node_id(), new_node_id())
        self.assertRegex(new_node_id(), r"^[0-9a-z]{10}$")
