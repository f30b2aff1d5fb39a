# -*- test-case-name: tests.test_engineio_e2e -*-
"""
End-to-end tests of the Engine.IO server on a real port with the official
Node clients: C{engine.io-client} 6.x (EIO=4) and the 3.x client bundled
with C{socket.io-client@2} (EIO=3), run as subprocesses while the server
runs in the test's reactor.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from xmeet.engineio import EchoHandler, EngineIOResource, EngineIOServer, IEngineIOHandler

CLIENTS = Path(__file__).parent / "clients"
SCRIPT = CLIENTS / "eio_client.js"
TEXT = "héllo 😀"
BINARY = [1, 2, 3, 4]


@implementer(IEngineIOHandler)
class EchoRecorder(EchoHandler):
    """
    Echoes, and records the transport each message came over.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, str | bytes]] = []

    def message_received(self, socket: Any, data: str | bytes) -> None:
        self.received.append((socket.transport_name, data))
        super().message_received(socket, data)


class NodeClientTests(TestCase):
    """
    The official clients against a real listening port.
    """

    timeout = 60

    def setUp(self) -> None:
        node = shutil.which("node")
        if node is None or not (CLIENTS / "node_modules" / "engine.io-client").is_dir():
            self.fail("node and tests/clients/node_modules are required (npm ci in tests/clients)")
        self.node = node
        self.handler = EchoRecorder()
        self.server = EngineIOServer(
            reactor,
            self.handler,
            ping_interval=0.3,
            ping_timeout=0.2,
            max_payload=100_000,
        )
        root = Resource()
        root.putChild(b"engine.io", EngineIOResource(self.server))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[arg-type]
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{cast(IPv4Address, port.getHost()).port}"
        self.addCleanup(self.server.close_all)

    @inlineCallbacks
    def run_client(self, mode: str, transports: str, revision: int = 4) -> Any:
        """
        Run the Node client; return its JSON report once it exited 0.
        """
        args = [str(SCRIPT), self.url, mode, transports, str(revision)]
        out, err, code = yield getProcessOutputAndValue(
            self.node,
            args,
            env=dict(os.environ, NODE_PATH=str(CLIENTS / "node_modules")),
            path=str(CLIENTS),
        )
        self.assertEqual(code, 0, f"client failed: {out!r} {err!r}")
        return json.loads(out.decode().strip().splitlines()[-1])

    def assertEchoed(self, report: dict[str, Any]) -> None:
        """
        Both messages came back unchanged.
        """
        self.assertEqual(report["messages"], [{"text": TEXT}, {"binary": BINARY}])
        self.assertEqual([data for _, data in self.handler.received], [TEXT, bytes(BINARY)])

    @inlineCallbacks
    def wait_lost(self) -> Any:
        """
        Wait (briefly, on the reactor) until the server saw a session end.
        """
        for _ in range(100):
            if self.handler.lost:
                return self.handler.lost
            d: Deferred[None] = Deferred()
            reactor.callLater(0.05, d.callback, None)
            yield d
        return self.handler.lost

    @inlineCallbacks
    def test_websocket_only(self) -> Any:
        """
        A WebSocket-only v4 client echoes text and binary.
        """
        report = yield self.run_client("echo", "websocket")
        self.assertEqual(report["transports"], ["websocket"])
        self.assertEchoed(report)
        self.assertEqual({t for t, _ in self.handler.received}, {"websocket"})
        lost = yield self.wait_lost()
        self.assertEqual([reason for _, reason in lost], ["transport close"])

    @inlineCallbacks
    def test_polling_only(self) -> Any:
        """
        A polling-only v4 client echoes text and binary (base64 records).
        """
        report = yield self.run_client("echo", "polling")
        self.assertEqual(report["transports"], ["polling"])
        self.assertEchoed(report)
        self.assertEqual({t for t, _ in self.handler.received}, {"polling"})
        lost = yield self.wait_lost()
        self.assertEqual([reason for _, reason in lost], ["transport close"])

    @inlineCallbacks
    def test_upgrade(self) -> Any:
        """
        A default v4 client starts polling, upgrades, then echoes over the
        WebSocket.
        """
        report = yield self.run_client("echo", "polling,websocket")
        self.assertEqual(report["transports"], ["polling", "websocket"])
        self.assertTrue(report["upgraded"])
        self.assertEchoed(report)
        self.assertEqual({t for t, _ in self.handler.received}, {"websocket"})

    @inlineCallbacks
    def test_large_messages_polling(self) -> Any:
        """
        Messages over the compression threshold come back whole over
        polling, in both revisions (the Node clients accept no compression,
        so they must get plain answers).
        """
        large = [{"text": "é" * 5000}, {"binary": [i % 256 for i in range(3000)]}]
        for revision in (4, 3):
            report = yield self.run_client("large", "polling", revision)
            self.assertEqual(report["messages"], large)

    @inlineCallbacks
    def test_heartbeat_timeout_websocket(self) -> Any:
        """
        A v4 client that stops answering pings is dropped for ping timeout.
        """
        report = yield self.run_client("silent", "websocket")
        self.assertIn(report["closeReason"], ("transport close", "transport error"))
        lost = yield self.wait_lost()
        self.assertEqual([reason for _, reason in lost], ["ping timeout"])

    @inlineCallbacks
    def test_heartbeat_timeout_polling(self) -> Any:
        """
        A polling v4 client that stops answering pings is dropped too.
        """
        report = yield self.run_client("silent", "polling")
        self.assertIn("closeReason", report)
        lost = yield self.wait_lost()
        self.assertEqual([reason for _, reason in lost], ["ping timeout"])

    @inlineCallbacks
    def test_v3_websocket(self) -> Any:
        """
        The EIO=3 client echoes text and binary over WebSocket.
        """
        report = yield self.run_client("echo", "websocket", 3)
        self.assertEqual(report["transports"], ["websocket"])
        self.assertEchoed(report)

    @inlineCallbacks
    def test_v3_polling(self) -> Any:
        """
        The EIO=3 client echoes text and binary over long-polling.
        """
        report = yield self.run_client("echo", "polling", 3)
        self.assertEqual(report["transports"], ["polling"])
        self.assertEchoed(report)

    @inlineCallbacks
    def test_v3_upgrade(self) -> Any:
        """
        The EIO=3 client upgrades from polling to WebSocket.
        """
        report = yield self.run_client("echo", "polling,websocket", 3)
        self.assertEqual(report["transports"], ["polling", "websocket"])
        self.assertEchoed(report)
        self.assertEqual({t for t, _ in self.handler.received}, {"websocket"})

    @inlineCallbacks
    def test_v3_heartbeat_timeout(self) -> Any:
        """
        An EIO=3 client that stops pinging is dropped for ping timeout.
        """
        report = yield self.run_client("silent", "websocket", 3)
        self.assertIn("closeReason", report)
        lost = yield self.wait_lost()
        self.assertEqual([reason for _, reason in lost], ["ping timeout"])
