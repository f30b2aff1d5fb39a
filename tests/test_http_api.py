"""
The HTTP API of Xmeet rooms on a real port: C{/api/xnests/...} and
C{POST /xgate/http}, with treq as the client.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import http_client, start_xmeet
from xmeet.config import Settings
from xmeet.core.frames import Frame
from xmeet.rooms import IMemberSink


@implementer(IMemberSink)
class _Quiet:
    """
    A member that ignores its frames: the tests look at the API, not them.
    """

    def deliver(self, frame: Frame) -> None:
        pass


class XnestAPITests(TestCase):
    """
    C{GET /api/xnests/{id}} and its history pages.
    """

    def setUp(self) -> None:
        self.server = start_xmeet(self, Settings(max_message_size=1000))
        self.http = http_client(self)
        rooms = self.server.node.rooms
        self.alice = self.successResultOf(rooms.join("房间", "alice", _Quiet())).member
        self.bob = self.successResultOf(rooms.join("房间", "bob", _Quiet())).member
        for number in range(60):
            rooms.receive(self.alice, f"m{number}")

    @defer.inlineCallbacks
    def _get(self, path: str):  # type: ignore[no-untyped-def]
        response = yield self.http.get(self.server.url + path)
        body = yield response.content()
        return response.code, response.headers, json.loads(body)

    @defer.inlineCallbacks
    def _post(self, path: str, data: bytes, content_type: bytes = b"application/json"):  # type: ignore[no-untyped-def]
        response = yield self.http.post(
            self.server.url + path, data=data, headers={b"content-type": [content_type]}
        )
        body = yield response.content()
        return response.code, response.headers, json.loads(body)

    @defer.inlineCallbacks
    def test_members(self):  # type: ignore[no-untyped-def]
        """
        Members and their count, for a percent-encoded unicode id.
        """
        code, headers, body = yield self._get("/api/xnests/%E6%88%BF%E9%97%B4")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type")[0][:16], b"application/json")
        self.assertEqual(
            body,
            {
                "statusCode": 200,
                "body": {
                    "xnest": "房间",
                    "member_count": 2,
                    "members": [
                        {"pid": self.alice.id, "nickname": "alice"},
                        {"pid": self.bob.id, "nickname": "bob"},
                    ],
                },
            },
        )

    @defer.inlineCallbacks
    def test_unused_room(self):  # type: ignore[no-untyped-def]
        """
        Any valid id is 200: an unused room has no members.
        """
        code, _, body = yield self._get("/api/xnests/nobody-here")
        self.assertEqual(
            (code, body["body"]["member_count"], body["body"]["members"]), (200, 0, [])
        )

    @defer.inlineCallbacks
    def test_history_pages(self):  # type: ignore[no-untyped-def]
        """
        Pages of 50, newest first, as C{@history}.
        """
        code, _, first = yield self._get("/api/xnests/%E6%88%BF%E9%97%B4/history")
        self.assertEqual(code, 200)
        self.assertEqual(first["body"]["cursor"], 0)
        self.assertEqual([e["payload"] for e in first["body"]["history"]][:2], ["m59", "m58"])
        self.assertEqual(len(first["body"]["history"]), 50)
        _, _, second = yield self._get("/api/xnests/%E6%88%BF%E9%97%B4/history?cursor=1")
        self.assertEqual(
            [e["payload"] for e in second["body"]["history"]], [f"m{n}" for n in range(9, -1, -1)]
        )
        entry = second["body"]["history"][0]
        self.assertEqual(sorted(entry), ["from", "nickname", "payload", "send_time", "type"])

    @defer.inlineCallbacks
    def test_errors(self):  # type: ignore[no-untyped-def]
        """
        Bad ids and cursors are 400, unknown paths 404, other methods 405,
        all in the error object.
        """
        for path, status in [
            ("/api/xnests/%zz", 400),
            ("/api/xnests/" + "a" * 65, 400),
            ("/api/xnests/a%2Fb", 400),
            ("/api/xnests/room/history?cursor=-1", 400),
            ("/api/xnests/room/history?cursor=abc", 400),
            ("/api/xnests/room/other", 404),
        ]:
            code, _, body = yield self._get(path)
            self.assertEqual((code, body["statusCode"]), (status, status), path)
            self.assertIsInstance(body["error"]["message"], str)
        code, headers, body = yield self._post("/api/xnests/room", b"{}")
        self.assertEqual((code, body["error"]["code"]), (405, "method_not_allowed"))
        self.assertEqual(headers.getRawHeaders(b"allow"), [b"GET, HEAD"])
        code, _, body = yield self._get("/api/unknown/thing")
        self.assertEqual((code, body["error"]["code"]), (404, "not_found"))
        head = yield self.http.head(self.server.url + "/api/xnests/room")
        self.assertEqual(head.code, 200)
        self.assertEqual((yield head.content()), b"")


class XgateHTTPTests(TestCase):
    """
    The original query API, C{POST /xgate/http}.
    """

    def setUp(self) -> None:
        self.server = start_xmeet(self, Settings(max_message_size=1000))
        self.http = http_client(self)
        rooms = self.server.node.rooms
        self.alice = self.successResultOf(rooms.join("lobby", "alice", _Quiet())).member
        rooms.receive(self.alice, "hello")

    @defer.inlineCallbacks
    def _query(self, document: Any, content_type: bytes = b"application/json"):  # type: ignore[no-untyped-def]
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        response = yield self.http.post(
            self.server.url + "/xgate/http", data=data, headers={b"content-type": [content_type]}
        )
        body = yield response.content()
        return response.code, json.loads(body)

    @defer.inlineCallbacks
    def test_methods(self):  # type: ignore[no-untyped-def]
        """
        members, member_count and history answer the matching payloads.
        """
        params = {"xnest": "lobby", "cursor": 0}
        code, members = yield self._query({"request_id": 7, "method": "members", "params": params})
        self.assertEqual(code, 200)
        self.assertEqual(
            members, {"request_id": 7, "result": [{"pid": self.alice.id, "nickname": "alice"}]}
        )
        _, count = yield self._query(
            {"request_id": "x", "method": "member_count", "params": params}
        )
        self.assertEqual(count, {"request_id": "x", "result": 1})
        _, history = yield self._query({"request_id": None, "method": "history", "params": params})
        self.assertEqual([e["payload"] for e in history["result"]], ["hello"])
        _, later = yield self._query(
            {"request_id": 1, "method": "history", "params": {"xnest": "lobby", "cursor": "1"}}
        )
        self.assertEqual(later["result"], [])

    @defer.inlineCallbacks
    def test_unknown_method(self):  # type: ignore[no-untyped-def]
        """
        An unknown method's result is C{"404"}, with the request id.
        """
        _, answer = yield self._query({"request_id": [1], "method": "drop_table", "params": {}})
        self.assertEqual(answer, {"request_id": [1], "result": "404"})

    @defer.inlineCallbacks
    def test_bad_requests(self):  # type: ignore[no-untyped-def]
        """
        Bad JSON, bad params, a wrong content type and a too large body are
        refused with the error object.
        """
        cases = [
            (b"{not json", b"application/json", 400),
            (b"[1, 2]", b"application/json", 400),
            (
                json.dumps({"method": "members", "params": {"xnest": 5}}).encode(),
                b"application/json",
                400,
            ),
            (
                json.dumps({"method": "history", "params": {"xnest": "a", "cursor": -2}}).encode(),
                b"application/json",
                400,
            ),
            (
                json.dumps(
                    {"method": "history", "params": {"xnest": "a", "cursor": True}}
                ).encode(),
                b"application/json",
                400,
            ),
            (b"method=members", b"application/x-www-form-urlencoded", 415),
            (
                json.dumps({"method": "members", "pad": "x" * 2000}).encode(),
                b"application/json",
                413,
            ),
        ]
        for data, content_type, status in cases:
            code, body = yield self._query(data, content_type)
            self.assertEqual((code, body["statusCode"]), (status, status), data[:40])
        response = yield self.http.get(self.server.url + "/xgate/http")
        self.assertEqual(response.code, 405)
        yield response.content()


class BodyLimitTests(TestCase):
    """
    Every endpoint refuses request bodies beyond the node's limit.
    """

    @defer.inlineCallbacks
    def test_oversized_body(self):  # type: ignore[no-untyped-def]
        """
        A body larger than the largest message plus framing is answered 413
        in the error object, whatever the resource.
        """
        server = start_xmeet(self, Settings(max_message_size=1000, max_payload=1000))
        limit = server.node.site.max_body
        http = http_client(self)
        response = yield http.post(server.url + "/healthz", data=b"x" * (limit + 1))
        body = json.loads((yield response.content()))
        self.assertEqual((response.code, body["error"]["code"]), (413, "too_large"))
        response = yield http.post(server.url + "/healthz", data=b"x" * limit)
        yield response.content()
        self.assertEqual(response.code, 405)
