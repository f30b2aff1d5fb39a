"""
Helpers shared by the tests that run xmeet on a real port.
"""

from __future__ import annotations

import attrs
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from xmeet.config import Settings
from xmeet.service import Node, build_node

__all__ = ["RunningNode", "http_client", "start_xmeet"]


@attrs.frozen
class RunningNode:
    """
    An xmeet node listening on 127.0.0.1 for the duration of one test.
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
