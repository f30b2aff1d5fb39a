"""
A WebSocket client that stops reading: the server keeps a bounded queue of
shared frames for it, then drops it, and the rest of the room goes on.
On real sockets: the client stalls by no longer reading its TCP socket.
"""

from __future__ import annotations

from typing import Any

from tests.test_xgate_interop import SocketTestCase
from tests.xgate_client import wait_until
from xmeet.config import Settings

PAYLOAD = "x" * 60000

WINDOW = 4
"""
How many of its messages the sender may have on their way back to it:
four frames of L{PAYLOAD} stay below both tests' limits (20 frames, and
300 KB, five such frames), so the server never drops the sender.
"""


async def _stalled_member_dropped(test: SocketTestCase) -> None:
    """
    One member of two stops reading while the other sends 100 big
    messages: the server drops the stalled one (the other sees it leave)
    and the sender gets every message.

    The stalled member's small kernel buffers, Twisted's 64 KB buffer and
    either limit hold far less than 100 frames, so it is dropped; the
    sender paces its messages on their echoes (L{WINDOW}), so it never is.
    """
    alice = await test.join("lobby", nickname="alice")
    stalled = await test.join("lobby", nickname="stalled")
    await alice.next_of_type("join")
    test.shrink_buffers(stalled, "lobby")
    stalled.protocol.transport.pauseProducing()
    await alice.send_paced([PAYLOAD] * 100, WINDOW)
    left = await alice.next_of_type("leave")
    test.assertEqual(left["from"], stalled.id)
    await wait_until(lambda: test.gate.connections == 1)
    stalled.protocol.transport.resumeProducing()
    await stalled.when_closed(timeout=10)


class StalledReaderTests(SocketTestCase):
    """
    C{--max-send-queue}.
    """

    settings = Settings(max_send_queue=20, rate=100000, burst=100000)

    async def test_stalled_reader_dropped(self) -> None:
        """
        A member that stops reading is dropped once its queue is full and
        the others see it leave; the sender keeps getting every message.
        """
        await _stalled_member_dropped(self)

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


class StalledReaderBytesTests(SocketTestCase):
    """
    C{--max-send-buffer}: the queue is bounded in bytes too, here far
    below its bound in frames.
    """

    settings = Settings(max_send_queue=10000, max_send_buffer=300_000, rate=100000, burst=100000)

    async def test_stalled_reader_dropped_by_bytes(self) -> None:
        """
        A member that stops reading is dropped once its queued frames pass
        the byte limit, long before the frame limit; the others see it
        leave and the sender keeps getting every message.
        """
        await _stalled_member_dropped(self)

    async def test_queued_bytes_released(self) -> None:
        """
        The bytes of frames sent on resume no longer count: a member whose
        connection pushes back twice, each time for less than the limit
        but for more in all, gets everything in order and stays. Its queue
        counts the wire bytes of the frames waiting, and is released once
        empty.
        """
        alice = await self.join("lobby", nickname="alice")
        slow = await self.join("lobby", nickname="slow")
        await alice.next_of_type("join")
        room = self.rooms.live("lobby")
        assert room is not None
        sink: Any = room.local[slow.id].sink
        expected = []
        for round_ in range(2):
            sink.pauseProducing()
            for number in range(4):
                text = f"{round_}.{number} {PAYLOAD}"
                expected.append(text)
                alice.send(text)
            await wait_until(
                lambda: len([f for f in alice.frames if f["type"] == "normal"]) == len(expected)
            )
            self.assertEqual(len(sink._queue), 4)
            self.assertGreater(sink._queue.size, 4 * len(PAYLOAD))
            self.assertLess(sink._queue.size, 4 * (len(PAYLOAD) + 200))
            sink.resumeProducing()
            self.assertIsNone(sink._queue)
        received = [(await slow.next_of_type("normal"))["payload"] for _ in expected]
        self.assertEqual(received, expected)
        self.assertEqual(self.gate.connections, 2)
