"""
The ops endpoints on a real port: C{/healthz} and C{/metrics}, and the
demo page's files.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel
from zope.interface import implementer

from tests.support import http_client, start_xmeet
from xmeet.config import Settings
from xmeet.core.frames import Frame
from xmeet.rooms import IMemberSink
from xmeet.web import BoundedRequest, XmeetSite


@implementer(IMemberSink)
class _Quiet:
    def deliver(self, frame: Frame) -> None:
        pass


class OpsTests(TestCase):
    """
    Health and metrics of an in-memory node.
    """

    def setUp(self) -> None:
        self.server = start_xmeet(self)
        self.http = http_client(self)

    @defer.inlineCallbacks
    def test_healthz(self):  # type: ignore[no-untyped-def]
        """
        200 with the node's id, counts and an always connected memory
        backend.
        """
        rooms = self.server.node.rooms
        yield rooms.join("a", "n", _Quiet())
        response = yield self.http.get(self.server.url + "/healthz")
        health = json.loads((yield response.content()))
        self.assertEqual(response.code, 200)
        self.assertEqual((health["status"], health["im_ready"]), ("ok", True))
        self.assertEqual(health["node"], self.server.node.node_id)
        self.assertEqual((health["xnests"], health["xgate_connections"]), (1, 0))
        self.assertEqual(
            health["backend"], {"backend": "memory", "connected": True, "idle_xnests": 0}
        )

    @defer.inlineCallbacks
    def test_metrics(self):  # type: ignore[no-untyped-def]
        """
        The Prometheus text format with the node's counters.
        """
        rooms = self.server.node.rooms
        alice = (yield rooms.join("a", "alice", _Quiet())).member
        yield rooms.join("a", "bob", _Quiet())
        rooms.receive(alice, "hello")
        response = yield self.http.get(self.server.url + "/metrics")
        text = (yield response.content()).decode()
        self.assertEqual(response.code, 200)
        self.assertTrue(
            response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
        )
        lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
        self.assertEqual(float(lines["xmeet_xnests_live"]), 1)
        self.assertEqual(float(lines["xmeet_messages_received_total"]), 1)
        self.assertEqual(float(lines["xmeet_frames_sent_total"]), 3)
        self.assertEqual(float(lines["xmeet_redis_up"]), 1)
        self.assertIn("# TYPE xmeet_socketio_sessions gauge", text)

    @defer.inlineCallbacks
    def test_demo_files(self):  # type: ignore[no-untyped-def]
        """
        C{/} is the demo page; its script is served; the static directory
        is never listed.
        """
        page = yield self.http.get(self.server.url + "/")
        self.assertIn(b"/static/demo.js", (yield page.content()))
        script = yield self.http.get(self.server.url + "/static/demo.js")
        yield script.content()
        self.assertEqual(script.code, 200)
        listing = yield self.http.get(self.server.url + "/static/")
        self.assertNotIn(b"Directory listing", (yield listing.content()))


class AccessLogTests(TestCase):
    """
    A line per HTTP request in the node's log, only with C{--access-log}.
    """

    @defer.inlineCallbacks
    def logged_requests(self, access_log: bool) -> Any:
        """
        The log lines that name a C{GET /healthz} made to a node with or
        without an access log.
        """
        lines: list[str] = []

        def observe(event: LogEvent) -> None:
            text = formatEvent(event)
            if "GET /healthz" in text:
                lines.append(text)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        server = start_xmeet(self, Settings(access_log=access_log))
        response = yield http_client(self).get(server.url + "/healthz")
        yield response.content()
        return lines

    @defer.inlineCallbacks
    def test_off_by_default(self) -> Any:
        """
        Without it, requests are served and not logged.
        """
        self.assertFalse(Settings().access_log)
        self.assertEqual((yield self.logged_requests(False)), [])

    @defer.inlineCallbacks
    def test_on(self) -> Any:
        """
        With it, each request is one line in twisted.web's combined format.
        """
        lines = yield self.logged_requests(True)
        self.assertEqual(len(lines), 1)
        self.assertIn('"GET /healthz HTTP/1.1" 200', lines[0])


class _ArgsProbe(Resource):
    """
    Keeps the C{args} and the body of the request it renders.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.args: dict[bytes, list[bytes]] | None = None
        self.body = b""

    def render(self, request: Request) -> bytes:
        self.args = request.args
        self.body = request.content.read()
        return b"ok"


class RequestBodyTests(SynchronousTestCase):
    """
    Request bodies are left to the resources: a form body does not reach
    C{args}.
    """

    def test_form_body_not_in_args(self) -> None:
        """
        A form-encoded POST body cannot override the query's C{sid}.
        """
        probe = _ArgsProbe()
        channel = DummyChannel()
        channel.site = XmeetSite(  # type: ignore[attr-defined]
            probe, 1000, False, header_timeout=10, body_min_rate=1024
        )
        request = BoundedRequest(channel)
        request.requestHeaders.setRawHeaders(
            b"content-type", [b"application/x-www-form-urlencoded"]
        )
        request.gotLength(7)
        request.handleContentChunk(b"sid=xyz")
        request.requestReceived(b"POST", b"/socket.io/?sid=abc", b"HTTP/1.1")
        self.assertEqual((probe.args, probe.body), ({b"sid": [b"abc"]}, b"sid=xyz"))
