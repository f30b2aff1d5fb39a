"""
End-to-end tests of the conversations HTTP API (PROTOCOL.md section 4) on
a real port with treq, the bearer tokens coming from a python-socketio
C{logIn}: every answer is the C{{statusCode, body}} or C{{statusCode,
error}} object of the Socket.IO acks, with the matching HTTP status.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from tests.support import http_client, start_xmeet
from tests.test_im_socketio import WAIT, SioClient, check_error, sio_connect
from tests.xgate_client import wait_until
from xmeet.config import Settings

__all__ = ["ConversationsAPITests"]

DEFAULT_PROTECTED = ["name", "members", "admin"]
JSON = b"application/json; charset=utf-8"


class ConversationsAPITests(TestCase):
    """
    C{/api/conversations} and below, with hal and ivy logged in over
    Socket.IO; the node's largest message is 2000 bytes, so is the largest
    request body.
    """

    timeout = 60

    async def asyncSetUp(self) -> None:
        """
        Start a node, connect hal and ivy and log them in.
        """
        self.running = start_xmeet(self, Settings(max_message_size=2000))
        self.http = http_client(self)
        self.sockets: dict[str, SioClient] = {}
        self.tokens: dict[str, str] = {}
        for user in ("hal", "ivy"):
            sio = self.sockets[user] = await sio_connect(self, self.running.url)
            ack = await sio.call("logIn", {"userId": user, "socketId": sio.id})
            self.tokens[user] = ack["sessionToken"]

    def setUp(self) -> Any:
        """
        Run L{asyncSetUp}.
        """
        return Deferred.fromCoroutine(self.asyncSetUp())

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        user: str | None = "hal",
        headers: dict[bytes, list[bytes]] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, dict[bytes, list[bytes]], Any]:
        """
        Send a request, as C{user} (none if C{None}), with C{body} as JSON
        or C{data} as it is; return the status, the headers and the JSON
        answer, which must come with a JSON content type.
        """
        sent = Headers(headers or {})
        if user is not None and not sent.hasHeader(b"authorization"):
            sent.setRawHeaders(b"authorization", [f"Bearer {self.tokens[user]}".encode()])
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            if not sent.hasHeader(b"content-type"):
                sent.setRawHeaders(b"content-type", [b"application/json"])
        response = await self.http.request(
            method, self.running.url + path, headers=sent, data=data
        ).addTimeout(WAIT, reactor)
        content = await response.content().addTimeout(WAIT, reactor)
        received = dict(response.headers.getAllRawHeaders())
        self.assertEqual(received[b"Content-Type"], [JSON])
        return response.code, received, json.loads(content)

    async def error(self, status: int, *args: Any, **kwargs: Any) -> dict[bytes, list[bytes]]:
        """
        Send a request that must get the error object of C{status}, with
        that HTTP status; return the answer's headers.
        """
        code, headers, answer = await self.request(*args, **kwargs)
        check_error(self, answer, status, args)
        self.assertEqual(code, status)
        return headers

    async def create(self, **fields: Any) -> dict[str, Any]:
        """
        Create a conversation as hal; return it.
        """
        code, _, answer = await self.request("POST", "/api/conversations", fields)
        self.assertEqual((code, answer["statusCode"]), (201, 201), answer)
        conversation: dict[str, Any] = answer["body"]["conversation"]
        return conversation

    async def test_create_and_get(self) -> None:
        """
        C{POST /api/conversations} creates (201) with hal as admin and
        member, the default protection and custom attributes, and pushes
        C{conversation/updated} to every socket of its members; C{GET} of
        it answers 200, of an unknown id 404.
        """
        code, _, answer = await self.request(
            "POST", "/api/conversations", {"name": "pair", "members": ["ivy"], "topic": "x"}
        )
        conversation = answer["body"]["conversation"]
        expected = {
            "id": conversation["id"],
            "name": "pair",
            "admin": ["hal"],
            "members": ["hal", "ivy"],
            "protected": DEFAULT_PROTECTED,
            "createdAt": conversation["createdAt"],
            "topic": "x",
        }
        self.assertEqual(code, 201)
        self.assertEqual(
            answer, {"statusCode": 201, "body": {"id": expected["id"], "conversation": expected}}
        )
        code, _, answer = await self.request(
            "GET", f"/api/conversations/{expected['id']}", user="ivy"
        )
        self.assertEqual(
            (code, answer), (200, {"statusCode": 200, "body": {"conversation": expected}})
        )
        await self.error(404, "GET", "/api/conversations/nope")
        await self.error(404, "GET", f"/api/conversations/{quote('é/x', safe='')}")
        for sio in self.sockets.values():
            await sio.wait_for("conversation/updated")
            self.assertEqual(sio.named("conversation/updated"), [{"conversation": expected}])

    async def test_members(self) -> None:
        """
        C{POST /api/conversations/{id}/members} adds a user (200); only an
        admin may add someone else (403); an unknown conversation is 404.
        """
        conversation = await self.create(name="club", members=["ivy"])
        path = f"/api/conversations/{conversation['id']}/members"
        code, _, answer = await self.request("POST", path, {"userId": "jon"})
        grown = {**conversation, "members": ["hal", "ivy", "jon"]}
        self.assertEqual(
            (code, answer), (200, {"statusCode": 200, "body": {"conversation": grown}})
        )
        await self.error(403, "POST", path, {"userId": "kim"}, user="ivy")
        await self.error(404, "POST", "/api/conversations/nope/members", {"userId": "kim"})
        await self.error(400, "POST", path, {"userId": 5})
        await self.error(400, "POST", path, ["jon"])
        code, _, answer = await self.request("GET", f"/api/conversations/{conversation['id']}")
        self.assertEqual(answer, {"statusCode": 200, "body": {"conversation": grown}})

    async def test_messages(self) -> None:
        """
        C{GET .../messages} pages the history newest first, with C{limit}
        and C{before}; a bad C{limit} is 400, a reader who is no member 403.
        """
        conversation = await self.create(name="log")
        hal = self.sockets["hal"]
        sent = []
        for text in ("one", "two", "three"):
            ack = await hal.call(
                "message/conversation",
                {
                    "sessionToken": self.tokens["hal"],
                    "conversationId": conversation["id"],
                    "type": "text",
                    "content": {"text": text},
                },
            )
            sent.append(ack["body"]["id"])
        path = f"/api/conversations/{conversation['id']}/messages"
        code, _, answer = await self.request("GET", path)
        messages = answer["body"]["messages"]
        self.assertEqual(code, 200)
        self.assertEqual(answer, {"statusCode": 200, "body": {"messages": messages}})
        self.assertEqual(
            [
                (each["id"], each["from"], each["content"], each["conversationId"], each["type"])
                for each in messages
            ],
            [
                (sent[2], "hal", {"text": "three"}, conversation["id"], "text"),
                (sent[1], "hal", {"text": "two"}, conversation["id"], "text"),
                (sent[0], "hal", {"text": "one"}, conversation["id"], "text"),
            ],
        )
        _, _, answer = await self.request("GET", path + "?limit=2")
        self.assertEqual(answer["body"]["messages"], messages[:2])
        _, _, answer = await self.request("GET", f"{path}?before={sent[1]}&limit=2")
        self.assertEqual(answer["body"]["messages"], messages[2:])
        _, _, answer = await self.request("GET", f"{path}?before={sent[0]}")
        self.assertEqual(answer["body"]["messages"], [])
        for limit in ("0", "101", "abc", "2.5"):
            await self.error(400, "GET", f"{path}?limit={limit}")
        await self.error(403, "GET", path, user="ivy")
        await self.error(404, "GET", "/api/conversations/nope/messages")

    async def test_unauthorized(self) -> None:
        """
        Without a bearer token, with an unknown one or another scheme: 401.
        """
        conversation = await self.create(name="locked")
        one = f"/api/conversations/{conversation['id']}"
        for headers in (
            {},
            {b"authorization": [b"Bearer " + b"0" * 32]},
            {b"authorization": [b"Bearer"]},
            {b"authorization": [f"Basic {self.tokens['hal']}".encode()]},
        ):
            await self.error(401, "POST", "/api/conversations", {"name": "x"}, None, headers)
            await self.error(401, "GET", one, None, None, headers)
            await self.error(401, "GET", one + "/messages", None, None, headers)
            await self.error(401, "POST", one + "/members", {"userId": "x"}, None, headers)

    async def test_session_ends(self) -> None:
        """
        A token stops working over HTTP when its session ends over
        Socket.IO: at C{logOut}, and when its socket disconnects.
        """
        conversation = await self.create(name="brief", members=["ivy"])
        one = f"/api/conversations/{conversation['id']}"
        code, _, _ = await self.request("GET", one, user="ivy")
        self.assertEqual(code, 200)
        ack = await self.sockets["ivy"].call("logOut", {"sessionToken": self.tokens["ivy"]})
        self.assertEqual(ack, {"statusCode": 200, "body": {}})
        await self.error(401, "GET", one, user="ivy")
        await self.sockets["hal"].disconnect()
        await wait_until(lambda: not self.running.node.im.is_online("hal"), WAIT)
        await self.error(401, "GET", one, user="hal")

    async def test_bad_requests(self) -> None:
        """
        Bad JSON and non-object bodies are 400, a non-JSON content type 415,
        a body over the limit 413, a wrong method 405 with C{Allow}, an
        unknown path 404; nothing is created by any of them.
        """
        path = "/api/conversations"
        await self.error(400, "POST", path, data=b"{not json")
        await self.error(400, "POST", path, data=b"\xff\xfe")
        await self.error(400, "POST", path, ["name"])
        await self.error(400, "POST", path, {"members": []})
        await self.error(
            415, "POST", path, headers={b"content-type": [b"text/plain"]}, data=b'{"name": "x"}'
        )
        await self.error(413, "POST", path, {"name": "x", "blob": "y" * 2000})
        await self.error(413, "POST", path, {"name": "n" * 257})
        for method in ("PUT", "DELETE", "PATCH"):
            headers = await self.error(405, method, path, {"name": "x"})
            self.assertEqual(headers[b"Allow"], [b"GET, HEAD, POST"])
        await self.error(404, "POST", path + "/x/y", {"userId": "x"})
        await self.error(404, "GET", path + "/x/members")
        _, _, answer = await self.request("POST", "/api/conversations", {"name": "only"})
        self.assertEqual(answer["statusCode"], 201)
        listed = await self.sockets["hal"].call(
            "conversation/list", {"sessionToken": self.tokens["hal"]}
        )
        self.assertEqual([each["name"] for each in listed["body"]["conversations"]], ["only"])
