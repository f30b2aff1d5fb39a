"""
Real processes for cluster tests: xmeet nodes started with C{twistd} from
the working tree, and a private C{redis-server} for tests that stop Redis.

Every test uses its own key prefix and removes only its own keys.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from typing import Any

import txredisapi
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

__all__ = [
    "RedisServer",
    "run_twistd",
    "twistd_exit",
    "XmeetProcess",
    "free_port",
    "redis_cleanup",
    "redis_node",
    "unique_prefix",
]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """
    A TCP port of 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unique_prefix() -> str:
    """
    A key prefix no other test uses.
    """
    return f"xmeet-test-{uuid.uuid4().hex[:12]}:"


@defer.inlineCallbacks
def _delete_prefix(port: int, prefix: str) -> Any:
    connection = yield txredisapi.Connection("127.0.0.1", port, reconnect=False)
    try:
        cursor = 0
        while True:
            cursor, keys = yield connection.scan(cursor, f"{prefix}*", 1000)
            if keys:
                yield connection.delete(keys)
            if int(cursor) == 0:
                break
    finally:
        yield connection.disconnect()


def redis_cleanup(testcase: TestCase, prefix: str, port: int = 6379) -> None:
    """
    Delete every key under C{prefix} when the test ends.
    """
    testcase.addCleanup(_delete_prefix, port, prefix)


class _Output(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.running = True
        self.exit_code: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.running = False
        self.exit_code = reason.value.exitCode
        self.ended.callback(None)


def _spawn_twistd(output: _Output, *args: str) -> Any:
    """
    C{twistd -n xmeet ARGS} from the working tree (not an installed copy).
    """
    argv = [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "-n",
        "--pidfile=",
        "xmeet",
        *args,
    ]
    return reactor.spawnProcess(  # type: ignore[attr-defined]
        output, sys.executable, argv, env=dict(os.environ), path=REPO
    )


@defer.inlineCallbacks
def run_twistd(*args: str) -> Any:
    """
    Run C{twistd -n xmeet ARGS} to its end; fires with what it printed.
    """
    output = _Output()
    _spawn_twistd(output, *args)
    yield output.ended
    return output.output


@defer.inlineCallbacks
def twistd_exit(*args: str, within: float = 15.0) -> Any:
    """
    Run C{twistd -n xmeet ARGS}, which must end by itself within
    C{within} seconds; fires with its exit code and what it printed.

    @raise AssertionError: when it is still running then (it is killed).
    """
    output = _Output()
    process = _spawn_twistd(output, *args)
    deadline = reactor.seconds() + within  # type: ignore[attr-defined]
    while output.running and reactor.seconds() < deadline:  # type: ignore[attr-defined]
        yield deferLater(reactor, 0.05)
    if output.running:
        process.signalProcess("KILL")
        yield output.ended
        raise AssertionError(
            f"twistd {' '.join(args)} still running after {within}s: {output.output!r}"
        )
    return output.exit_code, output.output.decode("utf-8", "replace")


class XmeetProcess:
    """
    One C{twistd -n xmeet} node on a free port of 127.0.0.1.
    """

    def __init__(
        self, testcase: TestCase, *args: str, port: int | None = None, ready: str | None = None
    ) -> None:
        """
        @param ready: the C{/healthz} status that L{start} waits for; any
            answer will do when C{None}.
        """
        self.port = port or free_port()
        self._testcase = testcase
        self._args = args
        self._ready = ready
        self._output = _Output()
        self._process: Any = None

    @property
    def url(self) -> str:
        """
        The node's HTTP base URL.
        """
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """
        The node's WebSocket base URL.
        """
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """
        Everything the node printed so far.
        """
        return self._output.output.decode("utf-8", "replace")

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Start the node and wait until C{/healthz} answers (with the
        status the node was made to wait for).
        """
        self._process = _spawn_twistd(
            self._output, "--port", f"tcp:{self.port}:interface=127.0.0.1", *self._args
        )
        self._testcase.addCleanup(self._cleanup)
        for _ in range(200):
            health = yield self.health()
            if health is not None and self._ready in (None, health["status"]):
                return health
            if not self._output.running:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"node on {self.port} did not start:\n{self.log}")

    @defer.inlineCallbacks
    def health(self) -> Any:
        """
        The node's C{/healthz} document, or C{None} when it does not answer.
        """
        pool = HTTPConnectionPool(reactor, persistent=False)
        try:
            response = yield Agent(reactor, pool=pool).request(
                b"GET", f"{self.url}/healthz".encode()
            )
            body = yield readBody(response)
            return json.loads(body)
        except Exception:
            return None
        finally:
            yield pool.closeCachedConnections()

    @defer.inlineCallbacks
    def until_status(self, status: str, timeout: float = 15) -> Any:
        """
        Ask C{/healthz} until it says C{status} (C{ok}, or C{degraded}
        while Redis is out of reach); fires with that document.
        """
        deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
        while True:
            health = yield self.health()
            if health is not None and health["status"] == status:
                return health
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                raise AssertionError(f"node on {self.port} never {status}: {health}")
            yield deferLater(reactor, 0.05, lambda: None)

    @property
    def pid(self) -> int:
        """
        The node's process id, to read its memory from C{/proc}.
        """
        return int(self._process.pid)

    def signal(self, name: int) -> defer.Deferred[None]:
        """
        Send C{name} (e.g. C{signal.SIGKILL}) and wait for the process to end.
        """
        if self._output.running:
            self._process.signalProcess(name)
        return self._output.ended

    def _cleanup(self) -> defer.Deferred[None]:
        return self.signal(signal.SIGKILL)


def redis_node(
    testcase: TestCase, prefix: str, redis_url: str = REDIS_URL, *extra: str
) -> XmeetProcess:
    """
    A cluster node on C{redis_url} under C{prefix}: a one-second node
    timeout, so dead nodes are noticed quickly, and a rate limit that
    never gets in a test's way. Starting it waits until it reaches Redis
    (C{/healthz} says C{ok}): a node serves at once, from memory, and
    would otherwise greet early members with an empty room.
    """
    return XmeetProcess(
        testcase,
        "--redis",
        redis_url,
        "--redis-prefix",
        prefix,
        "--node-timeout",
        "1",
        "--rate",
        "1000",
        "--burst",
        "1000",
        *extra,
        ready="ok",
    )


class RedisServer:
    """
    A private C{redis-server} on a free port, persisting to a temporary
    directory so that a restart keeps what it had.
    """

    def __init__(self, testcase: TestCase, *options: str) -> None:
        """
        @param options: more C{redis-server} options, such as
            C{--requirepass PASSWORD}.
        """
        self.port = free_port()
        self._options = options
        self._testcase = testcase
        self._dir = tempfile.mkdtemp(prefix="xmeet-redis-")
        testcase.addCleanup(shutil.rmtree, self._dir, True)
        self._output: _Output | None = None
        self._process: Any = None

    @property
    def url(self) -> str:
        """
        The server's C{redis://} URL.
        """
        return f"redis://127.0.0.1:{self.port}/0"

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Start the server and wait until it answers.
        """
        executable = shutil.which("redis-server")
        if executable is None:
            raise AssertionError("redis-server is not installed: tests/run installs it")
        argv = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._dir,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            *self._options,
        ]
        self._output = _Output()
        self._process = reactor.spawnProcess(  # type: ignore[attr-defined]
            self._output, executable, argv, env=dict(os.environ)
        )
        self._testcase.addCleanup(self.stop)
        for _ in range(200):
            try:
                connection = yield txredisapi.Connection("127.0.0.1", self.port, reconnect=False)
            except Exception:
                yield deferLater(reactor, 0.05, lambda: None)
                continue
            yield connection.disconnect()
            return
        raise AssertionError("redis-server did not start")

    def stop(self) -> defer.Deferred[None]:
        """
        Stop the server (it persists what it has on the way out).
        """
        if self._output is None or not self._output.running:
            return defer.succeed(None)
        self._process.signalProcess(signal.SIGTERM)
        return self._output.ended
