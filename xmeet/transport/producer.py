# -*- test-case-name: tests.test_transport_close,tests.test_xgate_backpressure -*-
"""
The one bounded producer of both WebSocket front ends.

A WebSocket connection is the push producer of its TCP connection: while
the kernel's send buffer is full (Twisted pauses it), the frames it is
sent wait in a L{SendQueue}, bounded in frames and in bytes on the wire;
a client that goes past either limit is too slow, and the front end
drops it, so a client that does not read cannot grow the server's
memory. The queue exists only while frames wait.

A close frame never overtakes the frames queued before it, and no data
frame follows it: whatever closes the connection (the front end, or
Autobahn failing it or answering the client's close), what waits is
written first, then the close frame, then nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from .internals import frame_bytes
from .send import FastSendProtocol

__all__ = ["BoundedSendProtocol", "SendQueue"]


class SendQueue:
    """
    Prepared frames waiting for a client that does not read, bounded in
    frames and in bytes on the wire. The frames are the prepared messages
    a broadcast shares, not copies. A connection makes one only when
    something must wait and lets it go once drained, so a quiet connection
    holds none.

    @ivar size: bytes waiting.
    """

    __slots__ = ("_frames", "size")

    def __init__(self) -> None:
        self._frames: deque[PreparedMessage] = deque()
        self.size = 0

    def __len__(self) -> int:
        return len(self._frames)

    def take(self, message: PreparedMessage, max_frames: int, max_bytes: int) -> bool:
        """
        Keep C{message} unless it would pass a limit.

        @return: C{False} when it would: the client is too slow.
        """
        size = len(frame_bytes(message))
        if len(self._frames) >= max_frames or self.size + size > max_bytes:
            return False
        self._frames.append(message)
        self.size += size
        return True

    def drain(self, protocol: FastSendProtocol, blocked: Callable[[], bool]) -> bool:
        """
        Send the waiting frames through C{protocol}, in order, until
        C{blocked()} says to stop.

        @return: whether the queue is empty.
        """
        frames = self._frames
        while frames and not blocked():
            message = frames.popleft()
            self.size -= len(frame_bytes(message))
            protocol.send_frame(message)
        return not frames


@implementer(IPushProducer)
class BoundedSendProtocol(FastSendProtocol):
    """
    A L{FastSendProtocol} that is the push producer of its connection,
    with a bounded queue for the frames sent while it is paused.

    Front ends send with L{send_bounded}, register the connection as its
    transport's producer once open, and say in L{send_queue_full} what
    happens to a client that is too slow.

    @cvar max_queued_frames: frames that may wait for a paused connection.
    @cvar max_queued_bytes: bytes on the wire that may wait for it.
    """

    max_queued_frames = 10_000
    max_queued_bytes = 4 * 1024 * 1024
    _paused = False
    _queue: SendQueue | None = None

    def send_bounded(self, message: PreparedMessage) -> None:
        """
        Send C{message} now, or queue it while the connection is paused;
        past a limit of the queue, drop the queue and call
        L{send_queue_full}.
        """
        queue = self._queue
        if not (self._paused or queue):
            self.send_frame(message)
            return
        if self.state != WebSocketProtocol.STATE_OPEN:
            return
        if queue is None:
            queue = self._queue = SendQueue()
        if queue.take(message, self.max_queued_frames, self.max_queued_bytes):
            return
        self._queue = None
        self.send_queue_full(len(queue), queue.size)

    def send_queue_full(self, frames: int, size: int) -> None:
        """
        The client went past a limit of the queue with C{frames} frames
        and C{size} bytes waiting: the front end's policy (drop or close
        the connection) goes here.
        """
        raise NotImplementedError

    def become_producer(self, unregister: Callable[[], Any] | None) -> None:
        """
        Produce for the TCP connection in place of the HTTP channel that
        accepted the upgrade, unregistered first by C{unregister} if given.
        """
        if unregister is not None:
            unregister()
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        """
        The kernel's send buffer is full: queue from now on.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        The send buffer drained: send what waited, until paused again. An
        emptied queue is released, so a quiet connection holds none.
        """
        self._paused = False
        queue = self._queue
        if queue is not None and queue.drain(self, self._blocked):
            self._queue = None

    def _blocked(self) -> bool:
        return self._paused or self.state != WebSocketProtocol.STATE_OPEN

    def stopProducing(self) -> None:
        """
        The connection is gone: what waits is dropped.
        """
        self._queue = None

    def sendCloseFrame(
        self,
        code: int | None = None,
        reasonUtf8: bytes | None = None,  # noqa: N803 (Autobahn's name)
        isReply: bool = False,  # noqa: N803
    ) -> None:
        """
        Autobahn's, after writing what waits in the queue: the close frame
        comes after every frame sent before it (to Twisted's buffer, as
        large as the queue's limits at most), and nothing after it.
        """
        queue, self._queue = self._queue, None
        if queue is not None and self.state == WebSocketProtocol.STATE_OPEN:
            queue.drain(self, lambda: False)
        super().sendCloseFrame(code, reasonUtf8, isReply)
