"""
Helpers shared by the tests that run xmeet on a real port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.xgate_client import WAIT, XgateClient, connect, handshake_status, wait_until
from xmeet.config import Settings
from xmeet.service import Node, build_node

__all__ = ["RunningNode", "SocketNetwork", "http_client", "start_xmeet", "upgrade_request"]


@attrs.frozen
class RunningNode:
    """
    An xmeet node at 127.0.0.1:PORT for the duration of one test: listening
    there, or on a L{tests.memory_support.MemoryNetwork} under a made-up
    port, so that tests address it by URL either way.
    """

    node: Node
    port: int

    @property
    def url(self) -> str:
        """
        The node's HTTP base URL, C{http://127.0.0.1:PORT}.
        """
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """
        The node's WebSocket base URL, C{ws://127.0.0.1:PORT}.
        """
        return f"ws://127.0.0.1:{self.port}"


def upgrade_request(target: bytes) -> bytes:
    """
    The bytes of a WebSocket opening handshake for C{target} (a path and
    query), for tests that feed a server protocol directly.
    """
    return (
        b"GET " + target + b" HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def start_xmeet(testcase: TestCase, settings: Settings | None = None) -> RunningNode:
    """
    Build a node with C{settings} and listen on an ephemeral port of
    127.0.0.1 until the test ends.
    """
    node = build_node(reactor, settings or Settings())
    node.start()
    testcase.addCleanup(node.stop)
    port = reactor.listenTCP(0, node.site, interface="127.0.0.1")  # type: ignore[attr-defined]
    testcase.addCleanup(port.stopListening)
    return RunningNode(node=node, port=port.getHost().port)


def http_client(testcase: TestCase) -> HTTPClient:
    """
    A treq client whose connections are closed when the test ends, so the
    reactor is clean for trial.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    testcase.addCleanup(pool.closeCachedConnections)
    return HTTPClient(Agent(reactor, pool=pool))


class SocketNetwork:
    """
    Nodes on real ports of 127.0.0.1 and clients on real sockets, all on
    the global reactor: the same surface as
    L{tests.memory_support.MemoryNetwork}, for the tests that prove the
    wire on sockets (and for nodes whose backend is a real Redis server,
    reached through the global reactor).
    """

    def __init__(self, testcase: TestCase) -> None:
        self._testcase = testcase

    def start_node(self, settings: Settings) -> RunningNode:
        """
        Start a node with C{settings} on an ephemeral port.
        """
        return start_xmeet(self._testcase, settings)

    def seconds(self) -> float:
        """
        The global reactor's time, which nodes on sockets stamp frames
        with.
        """
        return float(reactor.seconds())  # type: ignore[attr-defined]

    def node_clock(self, running: RunningNode) -> Clock:
        """
        A L{Clock} put in place of the gate's clock, for rate limits: a node
        on the global reactor has no clock of its own a test could drive.
        """
        clock = Clock()
        running.node.gate.clock = clock
        return clock

    def connect(
        self, url: str, headers: Mapping[str, str] | None = None, answer_pings: bool = True
    ) -> Deferred[XgateClient]:
        """
        L{tests.xgate_client.connect}.
        """
        return connect(self._testcase, url, headers, answer_pings)

    def handshake_status(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Deferred[int | None]:
        """
        L{tests.xgate_client.handshake_status}.
        """
        return handshake_status(self._testcase, url, headers)

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> Deferred[None]:
        """
        L{tests.xgate_client.wait_until}.
        """
        return wait_until(condition, timeout)

    async def get(self, url: str) -> tuple[int, Any, bytes]:
        """
        GET C{url} over a connection that is then closed: status, headers
        and body.
        """
        response = await treq.get(url, persistent=False, allow_redirects=False)
        return response.code, response.headers, await response.content()
