# -*- test-case-name: tests.test_resp,tests.test_store,tests.test_cluster -*-
"""
A node's Redis pub/sub connection, which carries every room event of a
cluster to the nodes where the room is live.

It reads with L{RespParser}, one pass over each TCP read, and hands
messages on directly, because txredisapi's subscriber pauses and resumes
its transport for every reply (two C{epoll_ctl} calls per message) and
runs a chain of line and bulk callbacks: on a node receiving a busy
room's messages, that was the largest cost (bench/README.rst, finding 7).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmeet.store.resp import ProtocolError, ReplyError, RespParser, encode_command

__all__ = ["PubSubFactory", "PubSubProtocol"]

log = Logger()


class PubSubProtocol(Protocol):
    """
    One pub/sub connection: authenticate if asked to, then subscribe and
    unsubscribe channels and report their messages.

    @ivar factory: gives the credentials and hears of messages and of the
        connection being ready or lost.
    """

    factory: PubSubFactory

    def __init__(self) -> None:
        self._parser = RespParser()
        self._commands: deque[Deferred[Any]] = deque()
        self._confirmations: dict[tuple[bytes, bytes], deque[Deferred[int]]] = {}

    def connectionMade(self) -> None:
        """
        Authenticate first when Redis asks for a password; the connection
        is ready once it has.
        """
        password = self.factory.password
        if password is None:
            self.factory.subscriber_ready(self)
            return
        username = self.factory.username
        credentials = (username, password) if username else (password,)
        self.command("AUTH", *credentials).addCallbacks(self._authenticated, self._refused)

    def _authenticated(self, reply: object) -> None:
        self.factory.subscriber_ready(self)

    def _refused(self, failure: Failure) -> None:
        log.error("Redis refused the pub/sub login: {error}", error=failure.getErrorMessage())
        self.transport.loseConnection()  # type: ignore[union-attr]

    def command(self, *arguments: str | bytes | int) -> Deferred[Any]:
        """
        Send a command outside subscriptions (such as C{AUTH}); fires with
        its reply, or fails with L{ReplyError}.
        """
        answered: Deferred[Any] = Deferred()
        self._commands.append(answered)
        self.transport.write(encode_command(*arguments))  # type: ignore[union-attr]
        return answered

    def subscribe(self, channel: str) -> Deferred[int]:
        """
        Subscribe to C{channel}; fires once Redis confirms, with the number
        of channels subscribed.
        """
        return self._change(b"subscribe", channel)

    def unsubscribe(self, channel: str) -> Deferred[int]:
        """
        Unsubscribe from C{channel}; fires once Redis confirms.
        """
        return self._change(b"unsubscribe", channel)

    def _change(self, kind: bytes, channel: str) -> Deferred[int]:
        encoded = channel.encode("utf-8")
        confirmed: Deferred[int] = Deferred()
        self._confirmations.setdefault((kind, encoded), deque()).append(confirmed)
        self.transport.write(encode_command(kind.upper(), encoded))  # type: ignore[union-attr]
        return confirmed

    def dataReceived(self, data: bytes) -> None:
        """
        Hand on every complete reply of this read.
        """
        try:
            replies = self._parser.feed(data)
        except ProtocolError as error:
            log.error("dropping the Redis pub/sub connection: {error}", error=error)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        message = self.factory.message
        for reply in replies:
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                self._message(message, reply[1], reply[2])
            else:
                self._other(reply)

    def _message(self, message: Callable[[str, str], None], channel: bytes, data: Any) -> None:
        try:
            message(channel.decode("utf-8"), data.decode("utf-8"))
        except UnicodeDecodeError:
            log.warn("ignoring a pub/sub message that is not UTF-8 on {channel!r}", channel=channel)

    def _other(self, reply: Any) -> None:
        if type(reply) is list and len(reply) == 3 and reply[0] in (b"subscribe", b"unsubscribe"):
            waiting = self._confirmations.get((reply[0], reply[1]))
            if waiting:
                confirmed = waiting.popleft()
                if not waiting:
                    del self._confirmations[(reply[0], reply[1])]
                confirmed.callback(reply[2])
        elif self._commands:
            answered = self._commands.popleft()
            if isinstance(reply, ReplyError):
                answered.errback(reply)
            else:
                answered.callback(reply)
        elif isinstance(reply, ReplyError):
            log.warn("Redis pub/sub error: {error}", error=reply)

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        """
        Whatever waited for an answer fails; the factory hears the
        connection is gone.
        """
        waiting = list(self._commands)
        for confirmations in self._confirmations.values():
            waiting.extend(confirmations)
        self._commands.clear()
        self._confirmations.clear()
        for answer in waiting:
            answer.errback(reason)
        self.factory.subscriber_lost(self)


class PubSubFactory(Factory):
    """
    Builds pub/sub connections for one node and reports them.

    @param ready: called with each connection once it can subscribe.
    @param lost: called with each connection that ended.
    @param message: called with C{(channel, message)} for every message.
    """

    protocol = PubSubProtocol  # type: ignore[assignment]

    def __init__(
        self,
        ready: Callable[[PubSubProtocol], None],
        lost: Callable[[PubSubProtocol], None],
        message: Callable[[str, str], None],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.subscriber_ready = ready
        self.subscriber_lost = lost
        self.message = message
        self.username = username
        self.password = password
