"""
C{--redis-password-file} against a real C{redis-server} of the test's own
that requires a password: a node given the file joins it; a node without
it says plainly what is missing, and its health says it is degraded.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.cluster_support import RedisServer, XmeetProcess, unique_prefix
from tests.token_support import key_file

__all__ = ["RedisPasswordTests"]

PASSWORD = "pa ss:@/wörd"


class RedisPasswordTests(TestCase):
    """
    Nodes of C{twistd -n xmeet} on a Redis started with C{--requirepass}.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.redis = RedisServer(self, "--requirepass", PASSWORD)
        yield self.redis.start()

    def node(self, *extra: str) -> XmeetProcess:
        return XmeetProcess(
            self, "--redis", self.redis.url, "--redis-prefix", unique_prefix(), *extra
        )

    @defer.inlineCallbacks
    def test_password_file(self) -> Any:
        """
        The password in a file (with its newline) lets the node in.
        """
        path = key_file(self, PASSWORD.encode("utf-8") + b"\n")
        node = self.node("--redis-password-file", path)
        health = yield node.start()
        for _ in range(100):
            if health["status"] == "ok":
                break
            yield deferLater(reactor, 0.05, lambda: None)
            health = yield node.health()
        self.assertEqual((health["status"], health["backend"]["connected"]), ("ok", True))
        self.assertNotIn("requires a password", node.log)

    @defer.inlineCallbacks
    def test_no_password(self) -> Any:
        """
        Without the password the node serves from memory, is degraded,
        and logs once what to give.
        """
        node = self.node()
        yield node.start()
        for _ in range(200):
            if "requires a password" in node.log:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        health = yield node.health()
        self.assertEqual(health["status"], "degraded")
        self.assertIn("requires a password: give it with --redis-password-file", node.log)
        self.assertEqual(node.log.count("requires a password"), 1)
        self.assertNotIn("Traceback", node.log)
