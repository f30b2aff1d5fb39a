"""
Tests of L{xmeet.store.resp} (the RESP parser and encoder) and of
L{xmeet.store.pubsub} against real Redis servers.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from xmeet.store.pubsub import PubSubFactory, PubSubProtocol
from xmeet.store.resp import ProtocolError, ReplyError, RespParser, encode_command

from .cluster_support import free_port, unique_prefix

replies = st.recursive(
    st.one_of(
        st.binary(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.none(),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=20,
        ).map(lambda text: ("simple", text)),
    ),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)


def _encode(reply: Any) -> bytes:
    """
    A reply as Redis would send it (the test's own encoder).
    """
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, tuple):
        return b"+" + reply[1].encode() + b"\r\n"
    return b"*%d\r\n" % len(reply) + b"".join(_encode(item) for item in reply)


def _expected(reply: Any) -> Any:
    if isinstance(reply, tuple):
        return reply[1]
    if isinstance(reply, list):
        return [_expected(item) for item in reply]
    return reply


class ParserTests(SynchronousTestCase):
    """
    The parser, fed however the stream happens to be cut.
    """

    @given(st.lists(replies, max_size=5), st.lists(st.integers(min_value=0), max_size=6))
    def test_any_cut(self, sent: list[Any], cuts: list[int]) -> None:
        """
        Replies come out whole and in order wherever the reads split them.
        """
        stream = b"".join(_encode(reply) for reply in sent)
        points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
        parser = RespParser()
        received = []
        for start, end in zip(points, points[1:], strict=False):
            received.extend(parser.feed(stream[start:end]))
        self.assertEqual(received, [_expected(reply) for reply in sent])

    @given(st.binary(max_size=200))
    def test_garbage(self, data: bytes) -> None:
        """
        Any bytes give replies or L{ProtocolError}, never another error.
        """
        try:
            RespParser().feed(data)
        except ProtocolError:
            pass

    def test_error_reply(self) -> None:
        """
        An error reply is a value, not an exception.
        """
        [error, number] = RespParser().feed(b"-ERR wrong\r\n:3\r\n")
        self.assertIsInstance(error, ReplyError)
        self.assertEqual((str(error), number), ("ERR wrong", 3))

    def test_broken_streams(self) -> None:
        """
        Unknown types, bad lengths and missing line ends are refused.
        """
        for data in (b"?x\r\n", b"$abc\r\n", b"$3\r\nabcde\r\n", b"*1\r\n" * 10 + b":1\r\n"):
            self.assertRaises(ProtocolError, RespParser().feed, data)

    def test_encode(self) -> None:
        """
        Commands are arrays of bulk strings, text in UTF-8.
        """
        self.assertEqual(
            encode_command("PUBLISH", "ch\u00e9", b"\x00", 12),
            b"*4\r\n$7\r\nPUBLISH\r\n$4\r\nch\xc3\xa9\r\n$1\r\n\x00\r\n$2\r\n12\r\n",
        )


class _Subscriptions:
    """
    Records what a L{PubSubFactory} reports.
    """

    def __init__(self) -> None:
        self.ready: Deferred[PubSubProtocol] = Deferred()
        self.lost: Deferred[PubSubProtocol] = Deferred()
        self.messages: DeferredQueue[tuple[str, str]] = DeferredQueue()

    def factory(self, username: str | None = None, password: str | None = None) -> PubSubFactory:
        return PubSubFactory(
            self.ready.callback,
            self.lost.callback,
            lambda channel, message: self.messages.put((channel, message)),
            username,
            password,
        )


def _redis_cli(port: int, *arguments: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


class PubSubTests(TestCase):
    """
    The pub/sub connection against the Redis of the test run.
    """

    timeout = 20

    @inlineCallbacks
    def connect(self, port: int = 6379, **credentials: str) -> Any:
        recorder = _Subscriptions()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        protocol = yield endpoint.connect(recorder.factory(**credentials))
        self.addCleanup(self._close, protocol, recorder)
        return recorder

    def _close(self, protocol: PubSubProtocol, recorder: _Subscriptions) -> Deferred[Any]:
        protocol.transport.loseConnection()  # type: ignore[union-attr]
        return recorder.lost

    @inlineCallbacks
    def test_messages(self) -> Any:
        """
        Messages on subscribed channels arrive in order, text decoded;
        after unsubscribing, none.
        """
        recorder = yield self.connect()
        subscriber = yield recorder.ready
        channel = unique_prefix() + "ch\u00e9"
        count = yield subscriber.subscribe(channel)
        self.assertEqual(count, 1)
        for text in ("one", "deux \u00e9", "x" * 70000):
            _redis_cli(6379, "PUBLISH", channel, text)
        received = []
        for _ in range(3):
            received.append((yield recorder.messages.get()))
        self.assertEqual(
            received, [(channel, "one"), (channel, "deux \u00e9"), (channel, "x" * 70000)]
        )
        yield subscriber.unsubscribe(channel)
        self.assertEqual(_redis_cli(6379, "PUBLISH", channel, "late"), "0")

    @inlineCallbacks
    def test_password(self) -> Any:
        """
        With a password the connection logs in first; a wrong one is
        refused and the connection dropped.
        """
        port = yield _private_redis(self, "--requirepass", "s3cret")
        recorder = yield self.connect(port, password="s3cret")
        subscriber = yield recorder.ready
        yield subscriber.subscribe("room")
        _redis_cli(port, "-a", "s3cret", "--no-auth-warning", "PUBLISH", "room", "hi")
        self.assertEqual((yield recorder.messages.get()), ("room", "hi"))

        refused = yield self.connect(port, password="wrong")
        yield refused.lost
        self.assertFalse(refused.ready.called)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_broken_stream(self) -> Any:
        """
        A server that does not speak RESP gets its connection dropped.
        """
        listening = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(_Nonsense)
        )
        self.addCleanup(listening.stopListening)
        recorder = yield self.connect(listening.getHost().port)
        subscriber = yield recorder.ready
        subscribing = subscriber.subscribe("room")
        lost = yield recorder.lost
        self.assertIs(lost, subscriber)
        yield self.assertFailure(subscribing, Exception)


class _Nonsense(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # type: ignore[union-attr]


@inlineCallbacks
def _private_redis(testcase: TestCase, *options: str) -> Any:
    """
    Start a C{redis-server} of the test's own on a free port.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise AssertionError("redis-server is not installed: tests/run installs it")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *options],
        stdout=subprocess.DEVNULL,
    )
    testcase.addCleanup(process.wait)
    testcase.addCleanup(process.terminate)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    for _ in range(100):
        try:
            probe = yield endpoint.connect(Factory.forProtocol(Protocol))
        except ConnectError:
            yield deferLater(reactor, 0.05, lambda: None)
        else:
            probe.transport.loseConnection()
            return port
    raise AssertionError("redis-server did not start")
