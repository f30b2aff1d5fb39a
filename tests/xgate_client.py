# -*- test-case-name: tests.test_xgate -*-
"""
A small test client of the xgate protocol (PROTOCOL.md section 1) built on
Autobahn's own Twisted WebSocket client, running in the test's reactor.

L{connect} opens a connection and fires with an L{XgateClient} once the
WebSocket is open; the client collects every frame as parsed JSON and
hands them out in order through Deferreds with a bounded wait
(L{XgateClient.next_frame}, L{XgateClient.next_of_type}), reports the
close code and reason (L{XgateClient.when_closed}), and is disconnected
when the test ends.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote, urlencode

import attrs
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectionResponse
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

__all__ = [
    "WAIT",
    "Closed",
    "ConnectionEnded",
    "HandshakeRefused",
    "NoFrame",
    "SocketWaits",
    "Waits",
    "XgateClient",
    "client_protocol",
    "connect",
    "handshake_status",
    "refused_status",
    "wait_until",
    "xnest_url",
]

WAIT = 5.0
"""
Seconds any single wait of a test may take before it fails.
"""


T = TypeVar("T")


class Waits(Protocol):
    """
    How a client waits: on real sockets for real seconds, in memory by
    running the test's network (L{tests.memory_support.MemoryNetwork}).
    """

    def within(
        self,
        waiting: Deferred[T],
        timeout: float,
        on_timeout: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[T]:
        """
        C{waiting}, cancelled if it has not fired within C{timeout}
        seconds; C{on_timeout} is C{Deferred.addTimeout}'s
        C{onTimeoutCancel}.
        """


class SocketWaits:
    """
    Waits in real seconds on the global reactor, for clients on sockets.
    """

    def within(
        self,
        waiting: Deferred[T],
        timeout: float,
        on_timeout: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[T]:
        """
        C{waiting} with a real-time timeout.
        """
        return waiting.addTimeout(timeout, reactor, onTimeoutCancel=on_timeout)


def xnest_url(base: str, xnest_id: str, query: Mapping[str, str] | None = None) -> str:
    """
    The URL of C{xnest_id}'s endpoint under the WebSocket base URL C{base},
    with the id and the query percent-encoded as UTF-8.
    """
    url = f"{base}/xgate/websocket/{quote(xnest_id, safe='')}"
    if query:
        url += "?" + urlencode(query, quote_via=quote)
    return url


@attrs.frozen
class Closed:
    """
    How a connection ended, as Autobahn's C{onClose} reported it.
    """

    was_clean: bool
    code: int | None
    reason: str | None


class HandshakeRefused(Exception):
    """
    The server did not answer the opening handshake with 101.

    @ivar status: the HTTP status code of the answer, or C{None} when the
        connection ended before one arrived.
    """

    def __init__(self, status: int | None, closed: Closed) -> None:
        super().__init__(status, closed)
        self.status = status
        self.closed = closed


class ConnectionEnded(Exception):
    """
    The connection ended while a frame was awaited.
    """


class NoFrame(Exception):
    """
    No matching frame arrived in time.
    """


def _status_of(status_line: str | None) -> int | None:
    if not status_line:
        return None
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


class _Protocol(WebSocketClientProtocol):
    client: XgateClient

    def onConnect(self, response: ConnectionResponse) -> None:
        self.client.response = response

    def onOpen(self) -> None:
        self.client._opened()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.client._received(payload, isBinary)

    def onPing(self, payload: bytes) -> None:
        self.client.pings += 1
        if self.client.answer_pings:
            super().onPing(payload)

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        if self.client.answer_close:
            return super().onCloseFrame(code, reasonRaw)
        return None

    def onPong(self, payload: bytes) -> None:
        self.client._ponged(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.client._closed(
            Closed(wasClean, code, reason), _status_of(getattr(self, "http_status_line", None))
        )


def client_protocol(client: XgateClient) -> type[WebSocketClientProtocol]:
    """
    A protocol class whose connections report to C{client}, for agents
    that build the protocol themselves (Autobahn's memory agent).
    """

    class _BoundProtocol(_Protocol):
        def connectionMade(self) -> None:
            client.protocol = self
            super().connectionMade()

    _BoundProtocol.client = client
    return _BoundProtocol


class _Factory(WebSocketClientFactory):
    protocol = _Protocol

    def __init__(self, client: XgateClient, url: str, headers: Mapping[str, str]) -> None:
        super().__init__(url, headers=dict(headers))
        self.client = client

    def buildProtocol(self, addr: Any) -> _Protocol:
        protocol = super().buildProtocol(addr)
        assert isinstance(protocol, _Protocol)
        protocol.client = self.client
        self.client.protocol = protocol
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.client._closed(Closed(False, None, str(reason.value)), None)


class XgateClient:
    """
    One xgate connection seen from the client side.

    @ivar frames: every frame received so far, parsed.
    @ivar response: Autobahn's C{ConnectionResponse} of the handshake
        (C{response.headers} holds the 101's headers, names in lower case).
    @ivar pings: how many pings the server sent.
    @ivar answer_pings: C{False} to leave pings unanswered.
    @ivar answer_close: C{False} to leave the server's close frame
        unanswered (the closing handshake then never ends).
    @ivar protocol: the Autobahn protocol while the connection exists.
    """

    def __init__(self, answer_pings: bool = True, waits: Waits | None = None) -> None:
        self.waits: Waits = waits or SocketWaits()
        self.frames: list[dict[str, Any]] = []
        self.response: ConnectionResponse | None = None
        self.pings = 0
        self.answer_pings = answer_pings
        self.answer_close = True
        self.protocol: _Protocol | None = None
        self.closed: Closed | None = None
        self._position = 0
        self._open: Deferred[XgateClient] = Deferred()
        self._waiter: tuple[Callable[[dict[str, Any]], bool], Deferred[dict[str, Any]]] | None = (
            None
        )
        self._close_waiters: list[Deferred[Closed]] = []
        self._barriers: dict[bytes, Deferred[None]] = {}
        self._barrier_numbers = itertools.count()

    @property
    def id(self) -> str:
        """
        This member's id, from the C{self} frame of the greeting.
        """
        for frame in self.frames:
            if frame["type"] == "self":
                return str(frame["payload"])
        raise AssertionError("no self frame received yet")

    def _opened(self) -> None:
        self._open.callback(self)

    def _received(self, payload: bytes, is_binary: bool) -> None:
        if is_binary:
            raise AssertionError(f"the server sent a binary message: {payload!r}")
        self.frames.append(json.loads(payload.decode("utf-8")))
        self._serve_waiter()

    def _closed(self, closed: Closed, status: int | None) -> None:
        self.closed = closed
        self.protocol = None
        if not self._open.called:
            self._open.errback(HandshakeRefused(status, closed))
        if self._waiter is not None:
            _, waiting = self._waiter
            self._waiter = None
            waiting.errback(ConnectionEnded(closed, self.unread()))
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(closed)

    def _ponged(self, payload: bytes) -> None:
        waiting = self._barriers.pop(payload, None)
        if waiting is not None:
            waiting.callback(None)

    def barrier(self) -> Deferred[None]:
        """
        Send a ping and fire when its pong comes back: the server has then
        processed every message this client sent before.
        """
        payload = f"barrier-{next(self._barrier_numbers)}".encode("ascii")

        def cancel(_: Deferred[None]) -> None:
            del self._barriers[payload]

        waiting: Deferred[None] = Deferred(cancel)
        self._barriers[payload] = waiting
        self._protocol().sendPing(payload)
        return self.waits.within(waiting, WAIT)

    def _serve_waiter(self) -> None:
        if self._waiter is None:
            return
        matches, waiting = self._waiter
        while self._position < len(self.frames):
            frame = self.frames[self._position]
            self._position += 1
            if matches(frame):
                self._waiter = None
                waiting.callback(frame)
                return

    def unread(self) -> list[dict[str, Any]]:
        """
        The frames received and not yet handed out.
        """
        return self.frames[self._position :]

    def _wait(
        self, matches: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> Deferred[dict[str, Any]]:
        if self._waiter is not None:
            raise AssertionError("one frame wait at a time")

        def cancel(_: Deferred[dict[str, Any]]) -> None:
            self._waiter = None

        def timed_out(result: Any, _: float) -> Any:
            if isinstance(result, Failure) and result.check(CancelledError):
                return Failure(NoFrame(f"no {what} within {timeout}s; received {self.frames}"))
            return result

        waiting: Deferred[dict[str, Any]] = Deferred(cancel)
        self._waiter = (matches, waiting)
        self._serve_waiter()
        if self._waiter is not None and self.closed is not None:
            self._waiter = None
            waiting.errback(ConnectionEnded(self.closed, self.unread()))
        return self.waits.within(waiting, timeout, timed_out)

    def next_frame(self, timeout: float = WAIT) -> Deferred[dict[str, Any]]:
        """
        The next frame not yet handed out.
        """
        return self._wait(lambda frame: True, "frame", timeout)

    def next_of_type(self, frame_type: str, timeout: float = WAIT) -> Deferred[dict[str, Any]]:
        """
        The next frame of C{frame_type}; frames of other types before it
        are skipped.
        """
        return self._wait(lambda frame: frame["type"] == frame_type, f"{frame_type!r}", timeout)

    def when_closed(self, timeout: float = WAIT) -> Deferred[Closed]:
        """
        How the connection ended, once it has.
        """
        if self.closed is not None:
            return succeed(self.closed)
        waiting: Deferred[Closed] = Deferred(lambda d: self._close_waiters.remove(d))
        self._close_waiters.append(waiting)
        return self.waits.within(waiting, timeout)

    def _protocol(self) -> _Protocol:
        if self.protocol is None:
            raise AssertionError("the connection is not open")
        return self.protocol

    def send(self, text: str) -> None:
        """
        Send C{text} as one text message.
        """
        self._protocol().sendMessage(text.encode("utf-8"))

    async def send_paced(self, texts: Sequence[str], window: int) -> None:
        """
        Send C{texts} as chat messages, never more than C{window} of them
        ahead of their own echoes, and return once every one has come back.

        The server then never has more than C{window} of these frames
        waiting for this client, whatever the load: a test client shares
        its reactor with the server, so a burst would leave it behind its
        own echoes and get it dropped as a stalled reader. Call it with no
        earlier message of this client still on its way back.

        @raise AssertionError: when the connection ends first, or an echo
            does not come within L{WAIT} seconds.
        """
        own = self.id
        seen = len(self.frames)
        echoes = 0

        def count_echoes() -> int:
            nonlocal seen, echoes
            for frame in self.frames[seen:]:
                echoes += frame["type"] == "normal" and frame["from"] == own
            seen = len(self.frames)
            return echoes

        for sent, text in enumerate(texts):
            await self._wait_for_echoes(count_echoes, sent - window + 1, len(texts))
            self.send(text)
        await self._wait_for_echoes(count_echoes, len(texts), len(texts))

    async def _wait_for_echoes(self, count: Callable[[], int], wanted: int, total: int) -> None:
        deadline = reactor.seconds() + WAIT
        while count() < wanted:
            if self.closed is not None:
                raise AssertionError(
                    f"the sender's own connection ended with {count()} of its {total} "
                    f"messages echoed: {self.closed}"
                )
            if reactor.seconds() > deadline:
                raise AssertionError(f"{count()} of {total} messages echoed after {WAIT}s")
            await deferLater(reactor, 0.01)

    def send_raw(
        self, payload: bytes, is_binary: bool = False, fragment_size: int | None = None
    ) -> None:
        """
        Send C{payload} as it is: Autobahn does not check outgoing UTF-8,
        so a text message may carry invalid UTF-8; C{fragment_size} splits
        the message into frames of that size.
        """
        self._protocol().sendMessage(payload, isBinary=is_binary, fragmentSize=fragment_size)

    def close(self, code: int = 1000) -> Deferred[Closed]:
        """
        Start the closing handshake; fires once the connection has ended.
        """
        if self.protocol is not None:
            self.protocol.sendClose(code)
        return self.when_closed()

    def abort(self) -> Deferred[Closed]:
        """
        Drop the TCP connection without a closing handshake.
        """
        transport = cast(ITCPTransport, self._protocol().transport)
        transport.abortConnection()
        return self.when_closed()

    def disconnect(self) -> Deferred[Closed]:
        """
        End the connection however it stands (for test cleanup).
        """
        protocol = self.protocol
        if protocol is not None and protocol.state == protocol.STATE_OPEN:
            return self.close()
        if protocol is not None and protocol.transport is not None:
            protocol.transport.loseConnection()
        return self.when_closed()


def connect(
    testcase: TestCase,
    url: str,
    headers: Mapping[str, str] | None = None,
    answer_pings: bool = True,
) -> Deferred[XgateClient]:
    """
    Connect to the xgate endpoint C{url}; fires with the client once the
    WebSocket is open, or fails with L{HandshakeRefused}. The connection is
    ended when C{testcase} ends.
    """
    client = XgateClient(answer_pings)
    factory = _Factory(client, url, headers or {})
    connector = reactor.connectTCP(factory.host, factory.port, factory)
    testcase.addCleanup(connector.disconnect)
    testcase.addCleanup(client.disconnect)
    return client._open.addTimeout(WAIT, reactor)


def handshake_status(
    testcase: TestCase, url: str, headers: Mapping[str, str] | None = None
) -> Deferred[int | None]:
    """
    The HTTP status the server answers a WebSocket handshake for C{url}
    with, when that is not 101.
    """
    return refused_status(connect(testcase, url, headers), url)


def refused_status(opening: Deferred[XgateClient], url: str) -> Deferred[int | None]:
    """
    The HTTP status of the handshake C{opening} (of C{url}) when it is
    refused; a handshake that succeeds fails the test.
    """

    def refused(failure: Failure) -> int | None:
        failure.trap(HandshakeRefused)
        refusal = failure.value
        assert isinstance(refusal, HandshakeRefused)
        return refusal.status

    def opened(client: XgateClient) -> None:
        raise AssertionError(f"handshake for {url} succeeded: {client.frames}")

    return opening.addCallbacks(opened, refused)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> Deferred[None]:
    """
    Fires once C{condition()} is true, checking every few milliseconds;
    fails after C{timeout} seconds.
    """

    async def poll() -> None:
        deadline = reactor.seconds() + timeout
        while not condition():
            if reactor.seconds() > deadline:
                raise AssertionError(f"{condition} still false after {timeout}s")
            await deferLater(reactor, 0.01)

    return Deferred.fromCoroutine(poll())
