# -*- test-case-name: tests.test_fastsend,tests.test_transport_close -*-
"""
Sending WebSocket frames without Autobahn's per-frame cost, one system
call per connection per reactor turn.

Autobahn's C{sendData} formats the arguments of a debug log call on every
frame, even with debug logging off; on a broadcast that is most of the
cost. Twisted's C{transport.write} then costs two C{epoll_ctl} calls and a
C{doWrite} pass per connection per write: it buffers, asks to be told when
the socket is writable, sends, and stops asking.

Both WebSocket front ends (xgate and Engine.IO) send through
L{FastSendProtocol}, which instead collects what a connection is sent
during one reactor turn and, at the end of the turn, hands it to the kernel
in one C{send} (what Node's sockets do). Only what the kernel does not take
goes to Twisted's buffer, which then drains it and applies back-pressure
as before. Messages sent to many members in one turn (a busy room) thus
reach each member in one segment instead of one per message.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet.interfaces import IReactorTime

from .internals import (
    AUTOBAHN_LOG_HELPERS,
    BUFFER,
    DROP,
    autobahn_queue_busy,
    may_batch,
    parse_incoming,
    send_prepared_frame,
    send_route,
)

__all__ = ["FLUSH_AT", "FastSendProtocol", "Outbox", "format_lazily"]


class _Formatted:
    """
    A log argument that is formatted when a log observer renders it, if
    one ever does.
    """

    __slots__ = ("_arguments", "_format", "_options")

    def __init__(
        self, format: Callable[..., str], arguments: tuple[Any, ...], options: dict[str, Any]
    ) -> None:
        self._format = format
        self._arguments = arguments
        self._options = options

    def __str__(self) -> str:
        return self._format(*self._arguments, **self._options)

    __repr__ = __str__


def _lazily(format: Callable[..., str]) -> Callable[..., _Formatted]:
    def later(*arguments: Any, **options: Any) -> _Formatted:
        return _Formatted(format, arguments, options)

    later.lazy = True  # type: ignore[attr-defined]
    return later


def format_lazily() -> None:
    """
    Have Autobahn format its debug log arguments only when they are
    rendered.

    Autobahn builds them on every connection and every read whether debug
    logging is on or not: C{pformat} of forty options when a connection
    opens, a large share of the work of accepting it (bench/README.rst,
    finding 3), and colored type names (C{hltype}, C{hlval}) on every read. The names its modules
    use for these helpers are pointed at lazy versions; the log lines read
    the same when they are rendered. The node calls it when it starts;
    calling it again changes nothing.
    """
    for module, name in AUTOBAHN_LOG_HELPERS:
        helper = getattr(module, name)
        if not getattr(helper, "lazy", False):
            setattr(module, name, _lazily(helper))


class Outbox:
    """
    The connections with bytes to send, and when to send them.

    A connection's bytes leave at the end of the reactor turn that wrote
    them: one delayed call per turn, not per connection, runs once the
    reactor has handled every event of the turn and flushes each
    connection once.

    With a write delay, a busy connection (one whose last flush carried
    more than one write) waits, after a flush, for the outbox's current
    C{spacing} before the next, collecting what it is sent meanwhile. A
    member of a busy room thus gets its messages in batches, one C{send}
    per spacing instead of one per turn. The spacing follows the load: it
    is L{SPACING} times as long as the last flush of at least L{BIG_FLUSH}
    connections took (the sending in all its chunks, below), never more
    than C{delay}. A node with CPU to spare flushes in a fraction of a
    millisecond and adds next to no latency; a node whose flushes take long
    (many members, messages faster than it can send them one by one)
    batches up to C{delay}, so that sending takes at most about a ninth of
    its time. A connection sent one thing at a
    time (a direct message, a reply, one room message per round trip) never
    waits. The waiting connections share one timer per millisecond.

    With a write delay, connections due to be flushed queue up and leave in
    chunks of L{FLUSH_CHUNK}, one chunk per reactor turn, first come first
    served: between chunks the reactor reads what came in. A flush of a
    big room, which takes many reactor turns' worth of sending, thus never
    holds the node for long: a message that arrives meanwhile
    reaches the members not yet flushed in this flush, and the node hands
    its chat messages to Redis between chunks, so a cluster's other nodes
    see them without waiting for the whole flush (bench/README.rst,
    finding 7). One flush lasts from the moment connections are due until
    none is left.

    @ivar delay: the longest write delay in seconds; 0 sends every turn.
    @ivar spacing: the write delay now, in seconds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        delay: float = 0.0,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._clock = clock
        self.delay = delay
        self.spacing = 0.0
        self._timer = timer
        self._this_turn: list[FastSendProtocol] = []
        self._turn_end: Any = None
        self._later: dict[float, tuple[Any, list[FastSendProtocol]]] = {}
        self._due: deque[FastSendProtocol] = deque()
        self._next_chunk: Any = None
        self._flushing_time = 0.0
        self._flushed = 0

    def add(self, protocol: FastSendProtocol) -> None:
        """
        C{protocol} has pending bytes: flush them at the end of this turn,
        or when its write delay is over.
        """
        batched_at = protocol.batched_at
        if batched_at:
            now = self._clock.seconds()
            due = batched_at + self.spacing
            if due > now:
                self._add_later(protocol, due, now)
                return
        self._this_turn.append(protocol)
        if self._turn_end is None:
            self._turn_end = self._clock.callLater(0, self.flush)

    def _add_later(self, protocol: FastSendProtocol, due: float, now: float) -> None:
        tick = math.ceil(due * 1000) / 1000
        waiting = self._later.get(tick)
        if waiting is None:
            call = self._clock.callLater(tick - now, self._flush_later, tick)
            waiting = self._later[tick] = (call, [])
        waiting[1].append(protocol)

    def flush(self) -> None:
        """
        Hand the bytes written this turn to the kernel: now, or with a
        write delay, the first chunk now and the rest in the next turns.
        """
        self._turn_end = None
        written, self._this_turn = self._this_turn, []
        self._flush(written)

    def _flush_later(self, tick: float) -> None:
        self._flush(self._later.pop(tick)[1])

    def _flush(self, written: list[FastSendProtocol]) -> None:
        if not self.delay:
            for protocol in written:
                protocol.flush_pending(0.0)
            return
        self._due.extend(written)
        if self._next_chunk is None:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        """
        Flush the first L{FLUSH_CHUNK} due connections, and leave the rest
        to the next reactor turn.
        """
        self._next_chunk = None
        due = self._due
        count = min(FLUSH_CHUNK, len(due))
        now = self._clock.seconds()
        started = self._timer()
        for _ in range(count):
            due.popleft().flush_pending(now)
        self._flushing_time += self._timer() - started
        self._flushed += count
        if due:
            self._next_chunk = self._clock.callLater(0, self._flush_chunk)
            return
        if self._flushed >= BIG_FLUSH:
            self.spacing = min(self.delay, SPACING * self._flushing_time)
        self._flushing_time = 0.0
        self._flushed = 0

    def stop(self) -> None:
        """
        Send everything waiting now and leave no timer behind: the node is
        stopping.
        """
        later = self._later.values()
        for call in (self._turn_end, self._next_chunk, *(call for call, _ in later)):
            if call is not None:
                call.cancel()
        waiting = [*self._due, *self._this_turn, *(p for _, protocols in later for p in protocols)]
        self._turn_end = self._next_chunk = None
        self._due.clear()
        self._this_turn = []
        self._later.clear()
        for protocol in waiting:
            protocol.flush_pending()


SPACING = 8
"""
Busy connections wait this many times as long as the last big flush took.
Each of two nodes sharing a room flushes half its members, so its flushes,
and a spacing that follows them, are half as long as one node's; eight
keeps a cluster's members at about as many frames per send as a single
node's (bench/README.rst, finding 7).
"""

BIG_FLUSH = 32
"""
Flushes of this many connections or more set the spacing; smaller ones
say little about the load.
"""

FLUSH_CHUNK = 64
"""
Due connections flushed per reactor turn: few enough that the reactor
reads what came in about every millisecond of a big flush, enough that the
reactor turns in between cost little beside the sending (bench/README.rst,
finding 7).
"""

#: Pending bytes past which a connection is flushed before the turn ends,
#: so that one turn's burst meets Twisted's buffer and back-pressure
#: (whose default size this is) instead of growing a list without bound.
FLUSH_AT = 64 * 1024


class FastSendProtocol(WebSocketServerProtocol):
    """
    An Autobahn server protocol whose writes are coalesced per reactor turn
    and sent without Autobahn's per-frame logging.

    Writes go to C{_pending} only on a plain TCP connection whose Twisted
    buffer is empty, and whose class has an C{outbox}; anything else (TLS,
    a buffer still draining, a test transport) goes to C{transport.write}
    at once, so bytes never overtake each other.

    No data frame is written once a close frame was: what is sent to a
    connection between its close frame and the end of its TCP connection
    is dropped.

    @cvar outbox: the L{Outbox} that flushes the connections of this class,
        set by the front end that makes it; C{None} writes at once.
    """

    _pending: list[bytes] | None = None
    _pending_size = 0
    batched_at = 0.0
    outbox: Outbox | None = None

    def dataReceived(self, data: bytes) -> None:
        """
        Autobahn's, minus its debug log call: even with lazy arguments, a
        call per read that logs nothing.
        """
        parse_incoming(self, data)

    send_frame = send_prepared_frame
    """
    Send a prepared message (L{xmeet.transport.internals.send_prepared_frame}):
    C{sendPreparedMessage} minus its per-call debug-log formatting, on an
    open connection only. Its body reads Autobahn's private state, so it
    lives in the guarded module, and is this class's method without an
    extra call on the path of every frame.
    """

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """
        Every frame and handshake byte Autobahn sends passes here: write it
        in order with what L{send_frame} wrote, without the debug log.

        Autobahn's synchronous and chopped modes (which xmeet does not use)
        keep their own queue; what is pending goes out before them.
        """
        if sync or chopsize or autobahn_queue_busy(self):
            self._write_pending_to_transport()
            super().sendData(data, sync, chopsize)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        pending = self._pending
        if pending is not None:
            pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > FLUSH_AT:
                self.flush_pending()
            return
        transport: Any = self.transport
        outbox = self.outbox
        if outbox is None or not may_batch(transport):
            if transport is not None:
                transport.write(data)
            return
        self._pending = [data]
        self._pending_size = len(data)
        outbox.add(self)

    def flush_pending(self, now: float | None = None) -> None:
        """
        Send what was written since the last flush, in one C{send}; what
        the kernel does not take right away is left to Twisted's buffer.

        @param now: the time of the flush, which starts the connection's
            write delay; C{None} for a flush that does not (a burst).
        """
        # Popped, not set to None: a quiet connection keeps no attributes.
        pending = self.__dict__.pop("_pending", None)
        self.__dict__.pop("_pending_size", None)
        if not pending:
            return
        if now and len(pending) > 1:
            self.batched_at = now
        else:
            self.__dict__.pop("batched_at", None)
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        transport: Any = self.transport
        if transport is None or not transport.connected:
            return
        route = send_route(transport)
        if route is DROP:
            return
        if route is BUFFER:
            transport.write(data)
            return
        try:
            sent = transport.socket.send(data)
        except OSError:
            # The kernel's buffer is full (Twisted sends it when there is
            # room), or the connection failed (Twisted meets the error when
            # it writes and reports the connection lost the usual way).
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])

    def _closeConnection(self, abort: bool = False) -> None:
        """
        Autobahn closes the TCP connection: what waits for the end of a
        write delay goes to Twisted's buffer first, which Twisted sends
        before it closes.
        """
        if not abort:
            self._write_pending_to_transport()
        super()._closeConnection(abort)

    def _write_pending_to_transport(self) -> None:
        pending = self.__dict__.pop("_pending", None)
        self.__dict__.pop("_pending_size", None)
        if pending:
            self.transport.write(b"".join(pending))  # type: ignore[union-attr]
