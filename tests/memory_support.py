# -*- test-case-name: tests.test_xgate -*-
"""
xmeet nodes and their clients in memory, on one fake reactor and clock.

A L{MemoryNetwork} is a L{MemoryReactorClock} shared by the nodes of one
test (each built by L{xmeet.service.build_node} with it as its reactor
and clock) and by their clients: Autobahn's own WebSocket client, joined
to a node's real C{Site} by Autobahn's memory agent
(C{autobahn.twisted.testing}) over Twisted's in-memory transports
(C{twisted.test.iosim}), and treq's L{StubTreq} for plain HTTP.

Nothing here waits for real time. Bytes move when the network is run:
L{MemoryNetwork.settle} moves every byte and runs every call due now;
L{MemoryNetwork.run_until} also moves the clock, from one scheduled call
to the next, until a condition holds or the time allowed has passed. A
client's wait for a frame therefore ends as soon as the frame exists,
and a test that needs seconds to pass (heartbeats, rate limits) says
so and takes none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import txaio
from autobahn.twisted.testing import create_memory_agent
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump
from twisted.trial.unittest import TestCase

from tests.support import RunningNode
from tests.xgate_client import WAIT, XgateClient, client_protocol, refused_status
from xmeet.config import Settings
from xmeet.service import build_node

__all__ = ["MemoryNetwork", "START"]

T = TypeVar("T")

START = 1772600767.25
"""
The clock's first reading: 2026-03-04 05:06:07.25 UTC, a moment whose
date and time fields are all one digit, so that C{send_time} padding
shows.
"""

_FIRST_PORT = 30000


class MemoryNetwork:
    """
    One test's nodes and clients in memory.

    Autobahn's timers (auto-ping, handshake timeouts) run on txaio's
    configured loop, not on the factory's reactor: for the test's
    duration that loop is this network's clock, so heartbeats run on it
    too.

    @ivar reactor: the reactor and clock of every node and client here.
    """

    def __init__(self, testcase: TestCase) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(START)
        self._testcase = testcase
        self._pumps: list[IOPump] = []
        self._nodes: dict[int, RunningNode] = {}
        testcase.patch(txaio.config, "loop", self.reactor)

    def start_node(self, settings: Settings) -> RunningNode:
        """
        Build and start a node with C{settings} on this network; it stops
        when the test ends.
        """
        node = build_node(self.reactor, settings)
        node.start()
        self._testcase.addCleanup(node.stop)
        running = RunningNode(node, _FIRST_PORT + len(self._nodes))
        self._nodes[running.port] = running
        return running

    def seconds(self) -> float:
        """
        The network's time, which its nodes stamp frames with.
        """
        return float(self.reactor.seconds())

    def node_clock(self, running: RunningNode) -> MemoryNetwork:
        """
        What drives C{running}'s time: the network itself, whose clock
        every node here was built with (L{advance} moves it).
        """
        return self

    def add(self, pump: IOPump) -> None:
        """
        Move the bytes of C{pump}'s connection from now on (Autobahn's
        memory agent calls this for each connection it makes).
        """
        self._pumps.append(pump)

    def _due(self) -> bool:
        now = self.reactor.seconds()
        return any(call.getTime() <= now for call in self.reactor.getDelayedCalls())

    def settle(self) -> None:
        """
        Move every byte and run every call due now, until nothing moves;
        the clock stays where it is.
        """
        moving = True
        while moving:
            moving = False
            for pump in list(self._pumps):
                moving = pump.flush() or moving
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self._pumps.remove(pump)
            if self._due():
                self.reactor.advance(0)
                moving = True

    def run_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> bool:
        """
        Settle; while C{condition()} is false, move the clock to the next
        scheduled call (no further than C{timeout} seconds from now) and
        settle again. Whether C{condition()} came true.
        """
        deadline = self.reactor.seconds() + timeout
        self.settle()
        while not condition():
            calls = [call.getTime() for call in self.reactor.getDelayedCalls()]
            upcoming = min(calls, default=deadline + 1)
            if upcoming > deadline:
                return False
            self.reactor.advance(max(0.0, upcoming - self.reactor.seconds()))
            self.settle()
        return True

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass, running each scheduled call at its time and
        moving the bytes in between.
        """
        deadline = self.reactor.seconds() + seconds
        self.run_until(lambda: False, seconds)
        self.reactor.advance(max(0.0, deadline - self.reactor.seconds()))
        self.settle()

    def within(
        self,
        waiting: Deferred[T],
        timeout: float,
        on_timeout: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[T]:
        """
        Run the network until C{waiting} fires or C{timeout} seconds of
        its clock have passed; then C{waiting} is cancelled, its failure
        turned into L{TimeoutError} (or whatever C{on_timeout} makes of
        it), as C{Deferred.addTimeout} would.
        """
        if self.run_until(lambda: waiting.called, timeout):
            return waiting

        def timed_out(result: Any) -> Any:
            if on_timeout is not None:
                return on_timeout(result, timeout)
            if isinstance(result, Failure) and result.check(CancelledError):
                return Failure(TimeoutError(timeout, "memory wait"))
            return result

        waiting.addBoth(timed_out)
        waiting.cancel()
        return waiting

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> Deferred[None]:
        """
        Fires once C{condition()} is true, running the network meanwhile;
        fails if it is still false after C{timeout} seconds of its clock.
        """
        waiting: Deferred[None] = Deferred()
        if self.run_until(condition, timeout):
            waiting.callback(None)
        else:
            waiting.errback(AssertionError(f"{condition} still false after {timeout}s"))
        return waiting

    def _node_at(self, url: str) -> RunningNode:
        port = urlsplit(url).port
        if port not in self._nodes:
            raise AssertionError(f"no node of this network at {url}")
        return self._nodes[port]

    def connect(
        self, url: str, headers: Mapping[str, str] | None = None, answer_pings: bool = True
    ) -> Deferred[XgateClient]:
        """
        Open a WebSocket connection to C{url} with Autobahn's client, in
        memory; fires with the client once the WebSocket is open, or fails
        with L{HandshakeRefused}. The connection is ended when the test
        ends.
        """
        running = self._node_at(url)
        client = XgateClient(answer_pings, waits=self)

        def server_protocol() -> Any:
            return running.node.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 31337))

        agent = create_memory_agent(self.reactor, self, server_protocol)
        options = {"headers": dict(headers)} if headers else {}
        opening = agent.open(url, options, protocol_class=client_protocol(client))
        opening.addErrback(lambda _: None)  # the client reports a refusal itself
        self._testcase.addCleanup(client.disconnect)
        return self.within(client._open, WAIT)

    def handshake_status(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Deferred[int | None]:
        """
        The HTTP status the node answers a WebSocket handshake for C{url}
        with, when that is not 101.
        """
        return refused_status(self.connect(url, headers), url)

    async def get(self, url: str) -> tuple[int, Any, bytes]:
        """
        GET C{url} of a node through treq's in-memory agent: status,
        headers and body.
        """
        running = self._node_at(url)
        client = StubTreq(running.node.site.resource)
        requesting = client.get(url, allow_redirects=False)
        client.flush()
        response = await requesting
        reading = response.content()
        client.flush()
        return response.code, response.headers, await reading
