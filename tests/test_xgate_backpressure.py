"""
A WebSocket client that stops reading: the server keeps a bounded queue of
shared frames for it, then drops it, and the rest of the room goes on.
"""

from __future__ import annotations

from tests.test_xgate import XgateTestCase
from tests.xgate_client import wait_until
from xmeet.config import Settings

PAYLOAD = "x" * 60000


class StalledReaderTests(XgateTestCase):
    """
    C{--max-send-queue}.
    """

    settings = Settings(max_send_queue=20, rate=100000, burst=100000)

    async def test_stalled_reader_dropped(self) -> None:
        """
        A member that stops reading is dropped once its queue is full and
        the others see it leave; the sender keeps getting every message.
        """
        alice = await self.join("lobby", nickname="alice")
        stalled = await self.join("lobby", nickname="stalled")
        await alice.next_of_type("join")
        stalled.protocol.transport.pauseProducing()
        sent = 400
        for _ in range(sent):
            alice.send(PAYLOAD)
        left = await alice.next_of_type("leave", timeout=20)
        self.assertEqual(left["from"], stalled.id)
        await wait_until(
            lambda: len([f for f in alice.frames if f["type"] == "normal"]) == sent, 20
        )
        self.assertEqual(self.gate.connections, 1)
        stalled.protocol.transport.resumeProducing()
        await stalled.when_closed(timeout=10)

    async def test_slow_reader_kept(self) -> None:
        """
        A member that pauses and then reads again, within the queue, gets
        every message in order and stays.
        """
        alice = await self.join("lobby", nickname="alice")
        slow = await self.join("lobby", nickname="slow")
        await alice.next_of_type("join")
        slow.protocol.transport.pauseProducing()
        for number in range(30):
            alice.send(f"{number}")
        await wait_until(lambda: len([f for f in alice.frames if f["type"] == "normal"]) == 30)
        slow.protocol.transport.resumeProducing()
        received = [(await slow.next_of_type("normal"))["payload"] for _ in range(30)]
        self.assertEqual(received, [str(n) for n in range(30)])
        self.assertEqual(self.gate.connections, 2)
