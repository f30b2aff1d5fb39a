# -*- test-case-name: tests.test_store,tests.test_im_backend,tests.test_cluster -*-
"""
One node's link to Redis, shared by the room backend and the IM backend:
a command connection, a pub/sub connection, the node's heartbeat, and the
bounded backlog of writes kept while Redis is away.

Sharing one link means one pair of connections per node, an outage
logged once, and one backlog replayed in the order the node wrote it,
whichever service wrote it.

Keys of the link itself, under the prefix C{P}:

  - C{P node:NODE:alive}: the node's heartbeat, expiring after the node
    timeout;
  - C{P nodes}: set of node ids.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from xmeet.store.pubsub import PubSubFactory

__all__ = ["READ_TIMEOUT", "ILinkClient", "RedisAddress", "RedisLink", "parse_redis_url"]

log = Logger()

READ_TIMEOUT = 3.0
"""
Seconds a read waits for Redis before the node carries on with what it
knows.
"""


@attrs.frozen
class RedisAddress:
    """
    Where Redis is: C{redis://[[user]:password@]HOST[:PORT][/DB]}.
    """

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """
    Parse a C{redis://} URL.

    @raise ValueError: with what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"{url!r} is not a redis:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{url!r}: the database must be a number, not {path!r}")
    return RedisAddress(
        host=parts.hostname,
        port=port,
        db=int(path or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class ILinkClient(Interface):
    """
    A backend using the link.
    """

    def link_up() -> None:
        """
        Commands reach Redis (again); the backlog was replayed already.
        """

    def subscriber_up(subscriber: Any) -> None:
        """
        A new pub/sub connection: subscribe to your channels on it.
        """

    def channel_message(channel: str, message: str) -> None:
        """
        A message on a subscribed channel, perhaps another client's.
        """


class _LinkFactory(txredisapi.RedisFactory):
    """
    The command connection, telling the link when it is up or down.
    """

    def __init__(self, link: RedisLink, address: RedisAddress) -> None:
        # Database 0 needs no SELECT: one round trip less before the link
        # is ready, and nothing to fail when a node stops while connecting.
        super().__init__(
            f"{address.host}:{address.port}",
            address.db or None,
            1,
            isLazy=True,
            password=address.password,
            username=address.username,
            replyTimeout=READ_TIMEOUT * 2,
            convertNumbers=False,
        )
        self.link = link
        self.initialDelay = 0.5
        self.maxDelay = 5

    def addConnection(self, conn: Any) -> None:
        """
        A connection is ready: the link is up.
        """
        super().addConnection(conn)
        if conn.connected and not self.disconnectCalled:
            self.link._link_up(conn)

    def delConnection(self, conn: Any) -> None:
        """
        The connection is gone: the link is down until the next one.
        """
        super().delConnection(conn)
        self.link._link_down(conn)


def _small_jitter() -> float:
    """
    Up to 0.1 s more between retries, so that nodes do not all reconnect
    at the same instant.
    """
    return random.random() / 10


class RedisLink:
    """
    The connections of one node to Redis.

    @param clock: the reactor's time, for heartbeats.
    @param reactor: the reactor that connects to Redis.
    @param node_timeout: seconds of silence after which a node is dead;
        the heartbeat key expires after it.
    @param backlog_limit: writes kept while Redis is away; beyond it the
        oldest are dropped (and counted).

    @ivar connection: the command connection while it is up, else C{None}.
    @ivar subscriber: the pub/sub connection while it is up, else C{None}.
    @ivar errors: failed commands so far.
    @ivar latency: seconds the last timed read took.
    @ivar stopping: set when the node leaves: failures are expected then
        and not logged.
    """

    def __init__(
        self,
        clock: IReactorTime,
        reactor: IReactorTCP,
        address: RedisAddress,
        prefix: str,
        node_id: str,
        node_timeout: float,
        backlog_limit: int = 10000,
    ) -> None:
        self.clock = clock
        self.node_id = node_id
        self.node_timeout = node_timeout
        self._reactor = reactor
        self._address = address
        self._prefix = prefix
        self._clients: list[ILinkClient] = []
        self.connection: Any = None
        self.subscriber: Any = None
        self._backlog: deque[tuple[tuple[Any, ...], Deferred[Any] | None]] = deque(
            maxlen=backlog_limit
        )
        self.dropped = 0
        self._ever_up = False
        self._started = False
        self.stopping = False
        self._link_factory = _LinkFactory(self, address)
        self._subscriber_factory = PubSubFactory(
            self._subscriber_up,
            self._subscriber_down,
            self._message,
            address.username,
            address.password,
        )
        self._subscriber_service: ClientService | None = None
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self.errors = 0
        self.latency = 0.0
        self._told_password = False

    @property
    def connected(self) -> bool:
        """
        Whether commands reach Redis now.
        """
        return self.connection is not None

    @property
    def fully_connected(self) -> bool:
        """
        Whether commands reach Redis and the pub/sub connection is up.
        """
        return self.connection is not None and self.subscriber is not None

    @property
    def backlog(self) -> int:
        """
        Writes waiting for Redis to come back.
        """
        return len(self._backlog)

    def key(self, *parts: str) -> str:
        """
        The key or channel named by C{parts} under the prefix.
        """
        return self._prefix + ":".join(parts)

    def attach(self, client: ILinkClient) -> None:
        """
        Tell C{client} when the link comes up and what its channels carry;
        if the link is up already, it hears so at once.
        """
        self._clients.append(client)
        if self.connection is not None:
            client.link_up()
        if self.subscriber is not None:
            client.subscriber_up(self.subscriber)

    def start(self) -> None:
        """
        Connect (retrying with backoff until Redis answers) and start the
        heartbeat; a second call does nothing.
        """
        if self._started:
            return
        self._started = True
        endpoint = HostnameEndpoint(self._reactor, self._address.host, self._address.port, 5)
        self._link_factory.startConnecting(endpoint)
        self._subscriber_service = ClientService(
            endpoint,
            self._subscriber_factory,
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=5, jitter=_small_jitter),
            clock=self.clock,
        )
        self._subscriber_service.startService()
        self._heartbeat.start(self.node_timeout / 3, now=False)

    def _link_up(self, conn: Any) -> None:
        self.connection = conn
        if self._ever_up:
            log.info(
                "Redis link restored; replaying {count} writes ({dropped} dropped)",
                count=len(self._backlog),
                dropped=self.dropped,
            )
        else:
            log.info(
                "Redis link up at {host}:{port}",
                host=self._address.host,
                port=self._address.port,
            )
        self._ever_up = True
        backlog, self._backlog = list(self._backlog), deque(maxlen=self._backlog.maxlen)
        self.dropped = 0
        for command, waiting in backlog:
            self._write(command, waiting)
        self._beat()
        for client in list(self._clients):
            client.link_up()

    def _link_down(self, conn: Any) -> None:
        if self.connection is conn:
            self.connection = None
            if not self.stopping:
                log.warn(
                    "Redis link lost; serving from memory and keeping writes until it returns",
                )

    def _subscriber_up(self, subscriber: Any) -> None:
        log.info("Redis pub/sub connection up")
        self.subscriber = subscriber
        for client in list(self._clients):
            client.subscriber_up(subscriber)

    def _subscriber_down(self, subscriber: Any) -> None:
        if self.subscriber is subscriber:
            self.subscriber = None
            if not self.stopping:
                log.warn("Redis pub/sub connection lost; other nodes are unheard until it returns")

    def _message(self, channel: str, message: str) -> None:
        for client in list(self._clients):
            client.channel_message(channel, message)

    def failed(self, failure: Failure, what: str) -> None:
        """
        Count a failed command; log it unless Redis is away (the outage
        was logged once already) or the node is leaving.
        """
        self.errors += 1
        if self.connection is None or self.stopping:
            return
        error = failure.getErrorMessage()
        log.warn("Redis {what} failed: {error}", what=what, error=error)
        if error.startswith("NOAUTH") and not self._told_password:
            self._told_password = True
            log.error(
                "Redis at {host}:{port} requires a password: give it with --redis-password-file",
                host=self._address.host,
                port=self._address.port,
            )

    def send(self, *command: Any) -> Deferred[Any] | None:
        """
        Write one command now, or keep it for when Redis is back.

        @return: the reply to come when written now, else C{None}.
        """
        return self._write(command, None)

    def call(self, *command: Any) -> Deferred[Any]:
        """
        Write one command as L{send} does, for its reply even when it waits
        for Redis: fires with the reply, or C{None} when the command failed
        or was dropped from a full backlog.
        """
        waiting: Deferred[Any] = Deferred()
        self._write(command, waiting)
        return waiting

    def _write(
        self, command: tuple[Any, ...], waiting: Deferred[Any] | None
    ) -> Deferred[Any] | None:
        if self.connection is None:
            if len(self._backlog) == self._backlog.maxlen:
                self.dropped += 1
                _, lost = self._backlog.popleft()
                if lost is not None:
                    lost.callback(None)
            self._backlog.append((command, waiting))
            return None
        result: Deferred[Any] = self.connection.execute_command(*command)
        result.addErrback(self.failed, command[0])
        if waiting is not None:
            result.chainDeferred(waiting)
        return result

    def _beat(self) -> None:
        if self.connection is None:
            return
        timeout_ms = int(self.node_timeout * 1000)
        self.send("SET", self.key("node", self.node_id, "alive"), "1", "PX", timeout_ms)
        self.send("SADD", self.key("nodes"), self.node_id)

    def leaving(self) -> None:
        """
        The node is leaving: stop the heartbeat (so that its removal from
        the cluster is not undone) and expect failures.
        """
        self.stopping = True
        if self._heartbeat.running:
            self._heartbeat.stop()

    def stop(self) -> Deferred[Any]:
        """
        Stop the heartbeat and disconnect.
        """
        self.leaving()
        stopping = [self._link_factory.disconnect()]
        if self._subscriber_service is not None:
            stopping.append(self._subscriber_service.stopService())
        return DeferredList(stopping, consumeErrors=True)
