"""
Tests, in memory, for the IM front ends' side of the service:
L{xmeet.handlers.im_events} (one Socket.IO packet per push, whatever the
number of sockets), L{xmeet.handlers.im_api} (the bearer token is the
HTTP caller's only token) and L{xmeet.handlers.im_wire}.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.test_im import NOW
from xmeet.config import Settings
from xmeet.core.ids import IdGenerator
from xmeet.handlers.im_api import ConversationsResource
from xmeet.handlers.im_events import SocketClient
from xmeet.handlers.im_wire import render
from xmeet.im.client import Caller, IIMClient, Push
from xmeet.im.service import IMService

__all__ = ["BearerTests", "OnePushTests"]


@attrs.define(eq=False)
class _Namespace:
    """
    A namespace that counts the events it encodes.
    """

    name: str = "/"
    prepared: list[tuple[str, Any]] = attrs.Factory(list)

    def prepare(self, event: str, *args: Any) -> object:
        self.prepared.append((event, args))
        return object()


@attrs.define
class _Socket:
    """
    A Socket.IO socket that keeps what it is sent.
    """

    id: str
    namespace: _Namespace
    sent: list[object] = attrs.Factory(list)
    data: dict[str, Any] = attrs.Factory(dict)

    def send_prepared(self, prepared: object) -> None:
        self.sent.append(prepared)


@implementer(IIMClient)
class _PushRecorder:
    """
    A client that keeps the pushes themselves.
    """

    def __init__(self, socket_id: str) -> None:
        self.id = socket_id
        self.pushes: list[Push] = []

    def push(self, push: Push) -> None:
        self.pushes.append(push)


def _service(**options: Any) -> IMService:
    clock = Clock()
    clock.advance(NOW)
    return IMService(clock, Settings(**options), IdGenerator("node0node0"))


class OnePushTests(SynchronousTestCase):
    """
    An event is encoded once for all the sockets it goes to.
    """

    def test_socket_clients_share_one_packet(self) -> None:
        """
        Sockets of one namespace get the very packet prepared once.
        """
        namespace = _Namespace()
        sockets = [_Socket(f"s{n}", namespace) for n in range(3)]
        clients = [SocketClient(socket) for socket in sockets]  # type: ignore[arg-type]
        verifyObject(IIMClient, clients[0])
        push = Push("message/direct", {"id": "m1", "textContent": "hi"})
        for client in clients:
            client.push(push)
        self.assertEqual(namespace.prepared, [("message/direct", (push.data,))])
        self.assertEqual(len({id(socket.sent[0]) for socket in sockets}), 1)
        self.assertEqual([len(socket.sent) for socket in sockets], [1, 1, 1])

    def test_one_push_per_message(self) -> None:
        """
        The service hands one push to every socket of every recipient, for
        a direct message, a conversation message and a conversation change.
        """
        service = _service()
        devices = {
            name: [_PushRecorder(f"{name}-{n}") for n in range(2)] for name in ("ann", "bob")
        }
        tokens = {}
        for name, clients in devices.items():
            for client in clients:
                ack = render(service.log_in(client, {"userId": name, "socketId": client.id}))
                tokens[client.id] = ack["sessionToken"]
        ann = devices["ann"][0]
        caller = _caller(ann, tokens[ann.id])
        text = {"targetIds": ["ann", "bob"], "type": "t", "textContent": "hi"}
        service.direct_message(caller, text)
        everyone = [client for clients in devices.values() for client in clients]
        self.assertEqual(len({id(client.pushes[-1]) for client in everyone}), 1)
        added = service.conversation_add(caller, {"name": "x", "members": ["bob"]})
        others = everyone[1:]
        self.assertEqual(len({id(client.pushes[-1]) for client in others}), 1)
        self.assertEqual(others[0].pushes[-1].event, "conversation/updated")
        payload = {"conversationId": added.conversation.id, "type": "t", "content": 1}
        service.conversation_message(caller, payload)
        self.assertEqual(len({id(client.pushes[-1]) for client in others}), 1)
        self.assertEqual(others[0].pushes[-1].event, "message/conversation")

    def test_prepared_once_per_key(self) -> None:
        """
        A push builds its wire form once per front end, on first use.
        """
        push = Push("e", {})
        built: list[str] = []

        def build(which: str) -> Any:
            def make(prepared: Push) -> str:
                built.append(which)
                return f"{which}:{prepared.event}"

            return make

        self.assertEqual(push.prepared("a", build("a")), "a:e")
        self.assertEqual(push.prepared("a", build("again")), "a:e")
        self.assertEqual(push.prepared("b", build("b")), "b:e")
        self.assertEqual(built, ["a", "b"])


def _caller(client: IIMClient, token: str) -> Caller:
    return Caller(client, token)


class BearerTests(SynchronousTestCase):
    """
    The HTTP API's caller is its bearer token: a C{sessionToken} in the
    body counts for nothing.
    """

    def setUp(self) -> None:
        self.service = _service()
        self.client = _PushRecorder("s1")
        ack = render(self.service.log_in(self.client, {"userId": "ann", "socketId": "s1"}))
        self.token = ack["sessionToken"]
        self.treq = StubTreq(ConversationsResource(self.service, 65536))

    def post(self, body: dict[str, Any], bearer: str | None) -> tuple[int, Any]:
        headers = {} if bearer is None else {b"authorization": [f"Bearer {bearer}".encode()]}
        response = self.successResultOf(
            self.treq.post(
                "http://xmeet.example/",
                json.dumps(body).encode(),
                headers={b"content-type": [b"application/json"], **headers},
            )
        )
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_body_token_ignored(self) -> None:
        """
        A good token in the body without a bearer is 401; a bearer with a
        bad token in the body works, as the bearer's user.
        """
        code, answer = self.post({"name": "x", "sessionToken": self.token}, None)
        self.assertEqual((code, answer["error"]["message"]), (401, "sessionToken is missing"))
        code, answer = self.post({"name": "x", "sessionToken": "0" * 32}, self.token)
        self.assertEqual(code, 201)
        self.assertEqual(answer["body"]["conversation"]["admin"], ["ann"])
        self.assertNotIn("sessionToken", answer["body"]["conversation"])
