"""
Tests for L{xmeet.service.ListeningService}: a node says it listens only
once it does, and a port it cannot open ends twistd at once, with one
line and a failure status, instead of leaving a process serving nothing.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from tests.cluster_support import twistd_exit
from xmeet.service import CannotListen, ListeningService

IN_USE = CannotListenError("127.0.0.1", 8080, OSError(98, "Address already in use"))


class FakeEndpoint:
    """
    An endpoint whose C{listen} returns C{result}, and records the factory.
    """

    def __init__(self, result: Deferred[Any]) -> None:
        self.result = result
        self.factories: list[Any] = []

    def listen(self, factory: Any) -> Deferred[Any]:
        self.factories.append(factory)
        return self.result


class FakePort:
    """
    A listening port on 127.0.0.1:8080.
    """

    stopped = False

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def stopListening(self) -> None:
        self.stopped = True


def lines(events: list[Any]) -> list[tuple[LogLevel, str]]:
    """
    The level and text of logged C{events}.
    """
    return [(event["log_level"], formatEvent(event)) for event in events]


class ListeningServiceTests(TestCase):
    """
    L{ListeningService} in memory, with a fake endpoint.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.factory = Factory()

    def service(self, result: Deferred[Any]) -> ListeningService:
        return ListeningService(self.reactor, FakeEndpoint(result), "tcp:8080", self.factory)

    def test_listening_said_once_listening(self) -> None:
        """
        "listening on" with the real address is logged when the endpoint
        listens, not before.
        """
        listening: Deferred[Any] = Deferred()
        service = self.service(listening)
        with capturedLogs() as events:
            service.privilegedStartService()
            self.assertEqual(lines(events), [])
            listening.callback(FakePort())
        self.assertEqual(lines(events), [(LogLevel.info, "listening on 127.0.0.1:8080")])

    def test_failure_at_start(self) -> None:
        """
        A port that cannot be opened while twistd starts is one critical
        line, then L{CannotListen}: a C{SystemExit} with status 1, and an
        C{Exception} for twistd's start-up error path.
        """
        service = self.service(defer.fail(IN_USE))
        with capturedLogs() as events:
            raised = self.assertRaises(CannotListen, service.privilegedStartService)
        line = (
            "cannot listen on tcp:8080: "
            "Couldn't listen on 127.0.0.1:8080: [Errno 98] Address already in use."
        )
        self.assertEqual(lines(events), [(LogLevel.critical, line)])
        self.assertIsInstance(raised, SystemExit)
        self.assertIsInstance(raised, Exception)
        self.assertEqual(raised.code, 1)
        self.assertEqual(str(raised), line)
        self.assertFalse(self.reactor.hasStopped)

    def test_failure_later(self) -> None:
        """
        An endpoint that fails once the reactor runs is logged the same
        way and stops the reactor.
        """
        listening: Deferred[Any] = Deferred()
        service = self.service(listening)
        service.privilegedStartService()
        self.reactor.running = True
        with capturedLogs() as events:
            listening.errback(IN_USE)
        self.assertEqual(
            [
                level
                for level, text in lines(events)
                if text.startswith("cannot listen on tcp:8080")
            ],
            [LogLevel.critical],
        )
        self.assertTrue(self.reactor.hasStopped)

    def test_start_listens_once(self) -> None:
        """
        twistd calls C{privilegedStartService}, then C{startService}: the
        endpoint listens once; C{startService} alone listens too.
        """
        endpoint = FakeEndpoint(Deferred())
        service = ListeningService(self.reactor, endpoint, "tcp:8080", self.factory)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(endpoint.factories, [self.factory])
        alone = FakeEndpoint(Deferred())
        ListeningService(self.reactor, alone, "tcp:8080", self.factory).startService()
        self.assertEqual(alone.factories, [self.factory])

    def test_stop_while_listening(self) -> None:
        """
        Stopping the service stops its port.
        """
        port = FakePort()
        service = self.service(defer.succeed(port))
        service.startService()
        self.successResultOf(defer.maybeDeferred(service.stopService))
        self.assertTrue(port.stopped)

    def test_stop_before_listening(self) -> None:
        """
        Stopping the service before the endpoint listens cancels the
        attempt, quietly and without stopping the reactor.
        """
        listening: Deferred[Any] = Deferred()
        service = self.service(listening)
        service.startService()
        with capturedLogs() as events:
            self.successResultOf(defer.maybeDeferred(service.stopService))
        self.assertEqual(lines(events), [])
        self.assertFalse(self.reactor.hasStopped)


class TwistdListenFailureTests(TestCase):
    """
    A real C{twistd -n xmeet} given a port it cannot open.
    """

    timeout = 60

    def assertFailsFast(self, exit_code: int | None, output: str, reason: str) -> None:
        """
        twistd ended with status 1 after one line saying it cannot listen
        and why, without a traceback or a claim to be listening.
        """
        failures = [line for line in output.splitlines() if "cannot listen on" in line]
        self.assertEqual(exit_code, 1, output)
        self.assertEqual(len(failures), 1, output)
        self.assertIn(reason, failures[0])
        self.assertNotIn("Traceback", output)
        self.assertNotIn("listening on", output)

    @defer.inlineCallbacks
    def test_port_in_use(self) -> Any:
        """
        A port another socket listens on.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exit_code, output = yield twistd_exit("--port", f"tcp:{port}:interface=127.0.0.1")
        self.assertFailsFast(exit_code, output, "Address already in use")

    @defer.inlineCallbacks
    def test_port_out_of_range(self) -> Any:
        """
        Port 99999, which the endpoint description parser accepts.
        """
        exit_code, output = yield twistd_exit("--port", "99999")
        self.assertFailsFast(exit_code, output, "port must be 0-65535")
