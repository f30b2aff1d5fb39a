"""
Tests for L{xmeet.im.service.IMService} and its collaborators with
in-memory clients and a fake clock: every rule of PROTOCOL.md section 3,
without Socket.IO, the service's values rendered on the wire as the front
ends render them (L{xmeet.handlers.im_wire}).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.test_core_im import payloads
from xmeet.config import Settings
from xmeet.core.conversation import Conversation
from xmeet.core.ids import IdGenerator
from xmeet.core.im import IMError, sign
from xmeet.handlers.im_wire import render
from xmeet.im.client import Caller, IIMClient, Push
from xmeet.im.service import IMService
from xmeet.store.im_interfaces import ConversationChanged, ConversationState, IMEvent, Stamp
from xmeet.store.im_memory import MemoryIMBackend

__all__ = [
    "ConversationMessageTests",
    "ConversationTests",
    "DirectMessageTests",
    "HistoryTests",
    "OfflinePropertyTests",
    "OfflineTests",
    "PropertyTests",
    "RebaseTests",
    "ScenarioTests",
    "SessionTests",
]

NOW = 1428501726
NOW_MS = NOW * 1000
Call = Callable[[IIMClient | None, object], dict[str, Any]]


@implementer(IIMClient)
class FakeClient:
    """
    A socket that keeps every event pushed to it.
    """

    def __init__(self, socket_id: str) -> None:
        self.id = socket_id
        self.events: list[tuple[str, dict[str, Any]]] = []

    def push(self, push: Push) -> None:
        self.events.append((push.event, push.data))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """
        The events pushed since the last take.
        """
        events, self.events = self.events, []
        return events


#: The calls of the protocol, each taking a L{Caller} and a payload.
CALLS = frozenset(
    {
        "log_out",
        "session_refresh",
        "direct_message",
        "conversation_message",
        "conversation_add",
        "conversation_join",
        "conversation_leave",
        "conversation_update",
        "conversation_get",
        "conversation_list",
        "conversation_history",
    }
)


class WireService:
    """
    An L{IMService} called as its front ends call it, the ack rendered on
    the wire: C{call(client, payload)} is a socket's call, and with
    C{client} C{None} an HTTP call whose bearer token is the payload's
    C{sessionToken}. Anything else is the service's own.
    """

    def __init__(self, service: IMService) -> None:
        self.service = service

    def log_in(self, client: IIMClient, payload: object) -> dict[str, Any]:
        return render(self.service.log_in(client, payload))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.service, name)
        if name not in CALLS:
            return attribute

        def call(client: IIMClient | None, payload: object) -> dict[str, Any]:
            if client is None:
                token = payload.get("sessionToken") if isinstance(payload, dict) else None
                caller = Caller(None, token)
            else:
                caller = Caller.socket(client, payload)
            return render(attribute(caller, payload))

        return call


def wire(service: IMService) -> Any:
    """
    C{service}, called as its front ends call it (L{WireService}).
    """
    return WireService(service)


class Harness:
    """
    A service on a fake clock, and helpers to log users in.
    """

    def __init__(self, auth_secret: str | None = None, **options: Any) -> None:
        service_options = {
            key: options.pop(key)
            for key in ("offline_limit", "offline_users", "backend")
            if key in options
        }
        self.clock = Clock()
        self.clock.advance(NOW)
        self.service = wire(
            IMService(
                self.clock,
                Settings(**options),
                IdGenerator("node0node0"),
                auth_secret=auth_secret,
                **service_options,
            )
        )
        self.clients: list[FakeClient] = []

    def log_in(self, user: str, socket_id: str | None = None) -> tuple[FakeClient, str]:
        """
        Connect a new socket and log C{user} in on it; flush its queue.
        """
        client = FakeClient(socket_id or f"sock-{len(self.clients)}")
        self.clients.append(client)
        ack = self.service.log_in(client, {"userId": user, "socketId": client.id})
        self.service.flush_offline(client)
        return client, ack["sessionToken"]

    def drain(self) -> None:
        """
        Forget every event pushed so far.
        """
        for client in self.clients:
            client.take()


def status_of(call: Callable[..., object], *args: Any, **kwargs: Any) -> int:
    """
    The status code of the L{IMError} that C{call(*args, **kwargs)} raises.
    """
    try:
        call(*args, **kwargs)
    except IMError as error:
        return error.status_code
    raise AssertionError("no IMError raised")


def _calls(service: Any) -> dict[str, Call]:
    return {
        "logOut": service.log_out,
        "session/refresh": service.session_refresh,
        "message/direct": service.direct_message,
        "message/conversation": service.conversation_message,
        "conversation/add": service.conversation_add,
        "conversation/join": service.conversation_join,
        "conversation/leave": service.conversation_leave,
        "conversation/update": service.conversation_update,
        "conversation/get": service.conversation_get,
        "conversation/list": service.conversation_list,
        "conversation/history": service.conversation_history,
    }


class SessionTests(SynchronousTestCase):
    """
    C{logIn}, C{logOut}, tokens and closed sockets.
    """

    def test_client_interface(self) -> None:
        """
        The fake client provides the interface the service relies on.
        """
        verifyObject(IIMClient, FakeClient("s"))

    def test_log_in(self) -> None:
        """
        The ack is the bare object with a fresh 32 hex digit token.
        """
        harness = Harness()
        client = FakeClient("s1")
        ack = harness.service.log_in(client, {"userId": "ann", "socketId": "s1"})
        self.assertEqual(sorted(ack), ["sessionToken", "socketId", "userId"])
        self.assertEqual((ack["userId"], ack["socketId"]), ("ann", "s1"))
        self.assertRegex(ack["sessionToken"], re.compile(r"\A[0-9a-f]{32}\Z"))
        other = harness.service.log_in(FakeClient("s2"), {"userId": "ann", "socketId": "s2"})
        self.assertNotEqual(other["sessionToken"], ack["sessionToken"])
        self.assertTrue(harness.service.is_online("ann"))

    def test_log_in_errors(self) -> None:
        """
        Malformed is 400, another socket's id 403; nobody is logged in.
        """
        service = Harness().service
        client = FakeClient("s1")
        cases: list[Any] = [None, [], {"socketId": "s1"}, {"userId": 5, "socketId": "s1"}]
        for payload in cases:
            self.assertEqual(status_of(service.log_in, client, payload), 400)
        self.assertEqual(
            status_of(lambda: service.log_in(client, {"userId": "ann", "socketId": "s2"})), 403
        )
        self.assertFalse(service.is_online("ann"))

    def test_auth_secret(self) -> None:
        """
        With a secret, a missing or wrong signature is 401; the right one
        logs in.
        """
        service = Harness(auth_secret="k").service
        client = FakeClient("s1")
        payload = {"userId": "ann", "socketId": "s1"}
        self.assertEqual(status_of(lambda: service.log_in(client, payload)), 401)
        self.assertEqual(
            status_of(lambda: service.log_in(client, {**payload, "signature": sign(b"j", "ann")})),
            401,
        )
        self.assertFalse(service.is_online("ann"))
        service.log_in(client, {**payload, "signature": sign(b"k", "ann")})
        self.assertTrue(service.is_online("ann"))

    def test_relog_in_replaces(self) -> None:
        """
        Logging in again on a socket ends its previous session.
        """
        harness = Harness()
        client, token = harness.log_in("ann")
        ack = harness.service.log_in(client, {"userId": "bob", "socketId": client.id})
        self.assertEqual(
            status_of(lambda: harness.service.conversation_list(client, {"sessionToken": token})),
            401,
        )
        self.assertFalse(harness.service.is_online("ann"))
        harness.service.conversation_list(client, {"sessionToken": ack["sessionToken"]})

    def test_unknown_token(self) -> None:
        """
        Every call needs a known token: missing or unknown is 401.
        """
        harness = Harness()
        client, _ = harness.log_in("ann")
        for name, call in _calls(harness.service).items():
            self.assertEqual(status_of(call, client, {}), 401, name)
            self.assertEqual(status_of(call, client, {"sessionToken": "0" * 32}), 401, name)
            self.assertEqual(status_of(call, client, "x"), 400, name)

    def test_token_of_another_socket(self) -> None:
        """
        A token used from another socket is 403, and does nothing.
        """
        harness = Harness()
        _, token = harness.log_in("ann")
        thief = FakeClient("thief")
        for name, call in _calls(harness.service).items():
            self.assertEqual(
                status_of(call, thief, {"sessionToken": token, "name": "n"}),
                403,
                name,
            )
        self.assertTrue(harness.service.is_online("ann"))
        self.assertEqual(
            harness.service.conversation_list(None, {"sessionToken": token})["body"],
            {"conversations": []},
        )

    def test_log_out(self) -> None:
        """
        C{logOut} acks 200 with an empty body; the token is dead, the
        user's other sockets stay logged in.
        """
        harness = Harness()
        phone, phone_token = harness.log_in("ann")
        laptop, laptop_token = harness.log_in("ann")
        ack = harness.service.log_out(phone, {"sessionToken": phone_token})
        self.assertEqual(ack, {"statusCode": 200, "body": {}})
        self.assertEqual(
            status_of(lambda: harness.service.log_out(phone, {"sessionToken": phone_token})), 401
        )
        self.assertTrue(harness.service.is_online("ann"))
        harness.service.log_out(laptop, {"sessionToken": laptop_token})
        self.assertFalse(harness.service.is_online("ann"))

    def test_socket_closed(self) -> None:
        """
        A closed socket's session ends; closing twice, or a socket that
        never logged in, is harmless.
        """
        harness = Harness()
        client, token = harness.log_in("ann")
        harness.service.socket_closed(client)
        harness.service.socket_closed(client)
        harness.service.socket_closed(FakeClient("other"))
        self.assertFalse(harness.service.is_online("ann"))
        self.assertEqual(
            status_of(lambda: harness.service.conversation_list(None, {"sessionToken": token})),
            401,
        )


class DirectMessageTests(SynchronousTestCase):
    """
    C{message/direct}.
    """

    def setUp(self) -> None:
        self.harness = Harness(burst=5)
        self.service = self.harness.service
        self.ann, self.token = self.harness.log_in("ann")
        self.bob_phone, _ = self.harness.log_in("bob")
        self.bob_laptop, _ = self.harness.log_in("bob")

    def send(self, **fields: Any) -> dict[str, Any]:
        payload = {"sessionToken": self.token, "targetIds": ["bob"], "type": "text"}
        return self.service.direct_message(self.ann, {**payload, "textContent": "hi", **fields})

    def test_delivery(self) -> None:
        """
        Every socket of every target gets the event; offline targets are
        reported; the sender's sockets get nothing.
        """
        ack = self.send(targetIds=["bob", "cid", "bob"])
        message_id = ack["body"]["id"]
        self.assertEqual(
            ack,
            {
                "statusCode": 201,
                "body": {
                    "id": message_id,
                    "sent": ["bob", "cid"],
                    "online": ["bob"],
                    "offline": ["cid"],
                },
            },
        )
        self.assertRegex(message_id, re.compile(r"\A[A-Za-z0-9._~-]{10,}\Z"))
        event = {
            "id": message_id,
            "from": "ann",
            "targetIds": ["bob", "cid"],
            "type": "text",
            "textContent": "hi",
            "createdAt": NOW_MS,
        }
        self.assertEqual(self.bob_phone.take(), [("message/direct", event)])
        self.assertEqual(self.bob_laptop.take(), [("message/direct", event)])
        self.assertEqual(self.ann.take(), [])
        self.assertEqual(self.service.queued("cid"), 1)

    def test_ids_unique(self) -> None:
        """
        Every message gets its own id; C{createdAt} follows the clock.
        """
        first = self.send()["body"]["id"]
        self.harness.clock.advance(1.5)
        second = self.send()["body"]["id"]
        self.assertNotEqual(first, second)
        self.assertEqual(self.bob_phone.events[-1][1]["createdAt"], NOW_MS + 1500)

    def test_to_self(self) -> None:
        """
        A user may write to itself: all its sockets get it.
        """
        self.send(targetIds=["ann"])
        self.assertEqual([event for event, _ in self.ann.take()], ["message/direct"])

    def test_errors(self) -> None:
        """
        Malformed 400, oversize 413; nothing is delivered nor queued.
        """
        self.assertEqual(status_of(lambda: self.send(targetIds=[])), 400)
        self.assertEqual(status_of(lambda: self.send(type=None)), 400)
        self.assertEqual(status_of(lambda: self.send(targetIds=["cid"], textContent=7)), 400)
        size = Settings().max_message_size
        self.assertEqual(
            status_of(lambda: self.send(targetIds=["cid"], textContent="x" * (size + 1))), 413
        )
        self.send(textContent="x" * size)
        self.assertEqual(len(self.bob_phone.take()), 1)
        self.assertEqual(self.service.queued("cid"), 0)

    def test_rate_limited(self) -> None:
        """
        Beyond the burst, 429 and nothing sent, until tokens refill.
        """
        for _ in range(5):
            self.send()
        self.bob_phone.take()
        self.assertEqual(status_of(lambda: self.send(targetIds=["bob", "cid"])), 429)
        self.assertEqual(self.bob_phone.take(), [])
        self.assertEqual(self.service.queued("cid"), 0)
        self.harness.clock.advance(0.1)
        self.send()
        self.assertEqual(len(self.bob_phone.take()), 1)

    def test_http_caller(self) -> None:
        """
        The HTTP API calls without a socket: the token alone counts.
        """
        ack = self.service.direct_message(
            None,
            {"sessionToken": self.token, "targetIds": ["bob"], "type": "t", "textContent": "x"},
        )
        self.assertEqual(ack["body"]["online"], ["bob"])


class OfflineTests(SynchronousTestCase):
    """
    Messages for users without a socket wait for their next C{logIn}.
    """

    def setUp(self) -> None:
        self.harness = Harness(offline_limit=3, offline_users=2)
        self.service = self.harness.service
        self.ann, self.token = self.harness.log_in("ann")

    def send(self, text: str, *targets: str) -> None:
        self.service.direct_message(
            self.ann,
            {
                "sessionToken": self.token,
                "targetIds": list(targets),
                "type": "text",
                "textContent": text,
            },
        )

    def texts(self, client: FakeClient) -> list[str]:
        return [data["textContent"] for _, data in client.take()]

    def test_in_order_once(self) -> None:
        """
        The queue is delivered after logIn in order, to the socket flushed
        and the user's other sockets, and then forgotten.
        """
        self.send("one", "bob")
        self.send("two", "bob")
        bob = FakeClient("bob-1")
        self.service.log_in(bob, {"userId": "bob", "socketId": "bob-1"})
        self.assertEqual(bob.events, [])
        self.assertEqual(self.service.flush_offline(bob), 2)
        self.assertEqual(self.texts(bob), ["one", "two"])
        self.assertEqual(self.service.flush_offline(bob), 0)
        self.assertEqual(self.service.queued("bob"), 0)
        self.send("three", "bob")
        self.assertEqual(self.texts(bob), ["three"])

    def test_arrivals_before_flush(self) -> None:
        """
        A message arriving between logIn and the flush comes after the
        queued ones; the user counts as online for it.
        """
        self.send("one", "bob")
        bob = FakeClient("bob-1")
        self.service.log_in(bob, {"userId": "bob", "socketId": "bob-1"})
        self.service.direct_message(
            self.ann,
            {"sessionToken": self.token, "targetIds": ["bob"], "type": "t", "textContent": "two"},
        )
        self.assertEqual(bob.events, [])
        self.service.flush_offline(bob)
        self.assertEqual(self.texts(bob), ["one", "two"])

    def test_flush_without_session(self) -> None:
        """
        A socket that is not logged in has nothing to flush.
        """
        self.send("one", "bob")
        self.assertEqual(self.service.flush_offline(FakeClient("bob-1")), 0)
        self.assertEqual(self.service.queued("bob"), 1)

    def test_bounded_per_user(self) -> None:
        """
        Beyond C{offline_limit}, the oldest messages are dropped.
        """
        for text in ("1", "2", "3", "4"):
            self.send(text, "bob")
        bob, _ = self.harness.log_in("bob")
        self.assertEqual(self.texts(bob), ["2", "3", "4"])

    def test_bounded_in_bytes(self) -> None:
        """
        Beyond C{offline_bytes}, the oldest messages are dropped too.
        """
        harness = Harness(offline_bytes=5000, max_message_size=5000)
        ann, token = harness.log_in("ann")
        for number in range(5):
            text = f"{number} " + "x" * 2000
            harness.service.direct_message(
                ann, {"sessionToken": token, "targetIds": ["bob"], "type": "t", "textContent": text}
            )
        bob, _ = harness.log_in("bob")
        self.assertEqual([text[0] for text in self.texts(bob)], ["3", "4"])

    def test_bounded_users(self) -> None:
        """
        Beyond C{offline_users}, the queue of the user written to least
        recently goes.
        """
        self.send("to bob", "bob")
        self.send("to cid", "cid")
        self.send("to bob again", "bob")
        self.send("to dan", "dan")
        self.assertEqual([self.service.queued(user) for user in ("bob", "cid", "dan")], [2, 0, 1])

    def test_logged_out_user_queues(self) -> None:
        """
        After the last socket logs out, messages queue again.
        """
        bob, token = self.harness.log_in("bob")
        self.service.log_out(bob, {"sessionToken": token})
        self.send("later", "bob")
        self.assertEqual(bob.events, [])
        self.assertEqual(self.service.queued("bob"), 1)


class _ConversationCase(SynchronousTestCase):
    """
    Ann (admin, two sockets), bob and cid (members) in conversation C{cid}.
    """

    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.harness = Harness(**self.options)
        self.service = self.harness.service
        self.ann, self.ann_token = self.harness.log_in("ann")
        self.ann2, _ = self.harness.log_in("ann")
        self.bob, self.bob_token = self.harness.log_in("bob")
        self.cid, self.cid_token = self.harness.log_in("cid")
        self.eve, self.eve_token = self.harness.log_in("eve")
        ack = self.service.conversation_add(
            self.ann,
            {"sessionToken": self.ann_token, "name": "team", "members": ["bob", "cid"]},
        )
        self.conversation_id = ack["body"]["id"]
        self.harness.drain()

    def call(
        self, name: str, client: FakeClient | None, token: str, **fields: Any
    ) -> dict[str, Any]:
        payload = {"sessionToken": token, "conversationId": self.conversation_id, **fields}
        return _calls(self.service)[name](client, payload)

    def by(self, user: str) -> tuple[FakeClient, str]:
        return {
            "ann": (self.ann, self.ann_token),
            "bob": (self.bob, self.bob_token),
            "cid": (self.cid, self.cid_token),
            "eve": (self.eve, self.eve_token),
        }[user]

    def conversation(self) -> dict[str, Any]:
        body = self.call("conversation/get", self.ann, self.ann_token)["body"]
        conversation: dict[str, Any] = body["conversation"]
        return conversation

    def events(self, client: FakeClient) -> list[str]:
        return [event for event, _ in client.take()]


class ConversationTests(_ConversationCase):
    """
    C{conversation/add}, C{join}, C{leave}, C{update}, C{get}, C{list}.
    """

    def test_add(self) -> None:
        """
        The creator is admin and member; defaults and custom attributes;
        members' sockets are told, but not the calling one.
        """
        ack = self.service.conversation_add(
            self.bob,
            {"sessionToken": self.bob_token, "name": "n", "members": ["ann"], "topic": [1, {}]},
        )
        conversation_id = ack["body"]["id"]
        conversation = {
            "id": conversation_id,
            "name": "n",
            "admin": ["bob"],
            "members": ["bob", "ann"],
            "protected": ["name", "members", "admin"],
            "createdAt": NOW_MS,
            "topic": [1, {}],
        }
        self.assertEqual(
            ack, {"statusCode": 201, "body": {"id": conversation_id, "conversation": conversation}}
        )
        self.assertNotEqual(conversation_id, self.conversation_id)
        self.assertEqual(
            self.ann.take(), [("conversation/updated", {"conversation": conversation})]
        )
        self.assertEqual(self.events(self.ann2), ["conversation/updated"])
        self.assertEqual(self.bob.take() + self.cid.take(), [])

    def test_add_errors(self) -> None:
        """
        Malformed 400, oversize 413, too fast 429: no conversation appears.
        """
        harness = Harness(burst=1, max_message_size=200)
        client, token = harness.log_in("ann")
        add = harness.service.conversation_add
        self.assertEqual(status_of(lambda: add(client, {"sessionToken": token})), 400)
        self.assertEqual(status_of(lambda: add(client, {"sessionToken": token, "id": 1})), 400)
        members = [f"user-{n}" for n in range(30)]
        self.assertEqual(
            status_of(
                lambda: add(client, {"sessionToken": token, "name": "n", "members": members})
            ),
            413,
        )
        self.assertEqual(
            harness.service.conversation_list(client, {"sessionToken": token})["body"],
            {"conversations": []},
        )
        add(client, {"sessionToken": token, "name": "n"})
        self.assertEqual(status_of(lambda: add(client, {"sessionToken": token, "name": "m"})), 429)
        body = harness.service.conversation_list(client, {"sessionToken": token})["body"]
        self.assertEqual([c["name"] for c in body["conversations"]], ["n"])

    def test_join(self) -> None:
        """
        Any logged-in user may join; members are told; joining again is a
        no-op.
        """
        ack = self.call("conversation/join", self.eve, self.eve_token)
        self.assertEqual(ack["statusCode"], 200)
        self.assertEqual(ack["body"]["conversation"]["members"], ["ann", "bob", "cid", "eve"])
        self.assertEqual(self.events(self.bob), ["conversation/updated"])
        self.assertEqual(self.events(self.ann2), ["conversation/updated"])
        self.assertEqual(self.eve.take(), [])
        self.call("conversation/join", self.eve, self.eve_token)
        self.assertEqual(self.bob.take(), [])
        self.assertEqual(self.conversation()["members"], ["ann", "bob", "cid", "eve"])

    def test_join_errors(self) -> None:
        """
        Unknown conversation 404, malformed id 400.
        """
        self.assertEqual(
            status_of(
                lambda: self.call("conversation/join", self.eve, self.eve_token, conversationId="x")
            ),
            404,
        )
        self.assertEqual(
            status_of(
                lambda: self.call("conversation/join", self.eve, self.eve_token, conversationId=1)
            ),
            400,
        )

    def test_conversation_ids(self) -> None:
        """
        Every call on one conversation: a malformed id is 400, an unknown
        one 404.
        """
        extra: dict[str, dict[str, Any]] = {
            "message/conversation": {"type": "t", "content": 1},
            "conversation/update": {"set": {"k": 1}},
        }
        names = [
            "message/conversation",
            "conversation/join",
            "conversation/leave",
            "conversation/update",
            "conversation/get",
            "conversation/history",
        ]
        for name in names:
            fields = extra.get(name, {})
            for conversation_id, status in ((1, 400), ("", 400), (None, 400), ("nope", 404)):
                self.assertEqual(
                    status_of(
                        self.call,
                        name,
                        self.ann,
                        self.ann_token,
                        conversationId=conversation_id,
                        **fields,
                    ),
                    status,
                    (name, conversation_id),
                )

    def test_add_member(self) -> None:
        """
        Adding another user (HTTP C{POST .../members}) takes the right to
        change C{members}: admins by default.
        """
        self.assertEqual(
            status_of(
                lambda: self.call("conversation/join", self.bob, self.bob_token, userId="dan")
            ),
            403,
        )
        self.assertNotIn("dan", self.conversation()["members"])
        ack = self.call("conversation/join", None, self.ann_token, userId="dan")
        self.assertEqual(ack["body"]["conversation"]["members"][-1], "dan")
        self.assertEqual(self.events(self.ann), ["conversation/updated"])

    def test_join_full(self) -> None:
        """
        A full conversation refuses new members with 403.
        """
        members = [f"u{n}" for n in range(999)]
        ack = self.service.conversation_add(
            self.ann, {"sessionToken": self.ann_token, "name": "big", "members": members}
        )
        join = {"sessionToken": self.eve_token, "conversationId": ack["body"]["id"]}
        self.assertEqual(status_of(lambda: self.service.conversation_join(self.eve, join)), 403)

    def test_leave(self) -> None:
        """
        The leaver stops being member and admin; the others, and the
        leaver's other sockets, are told; leaving twice is 403.
        """
        ack = self.call("conversation/leave", self.ann, self.ann_token)
        self.assertEqual(ack["statusCode"], 200)
        self.assertEqual(
            (ack["body"]["conversation"]["admin"], ack["body"]["conversation"]["members"]),
            ([], ["bob", "cid"]),
        )
        self.assertEqual(self.events(self.bob), ["conversation/updated"])
        self.assertEqual(self.events(self.ann2), ["conversation/updated"])
        self.assertEqual(self.ann.take(), [])
        self.assertEqual(
            status_of(lambda: self.call("conversation/leave", self.ann, self.ann_token)), 403
        )
        self.assertEqual(
            self.service.conversation_list(self.ann, {"sessionToken": self.ann_token})["body"],
            {"conversations": []},
        )

    def test_update_by_admin(self) -> None:
        """
        An admin changes protected and custom fields; every member's
        sockets but the caller's get C{conversation/updated}.
        """
        ack = self.call("conversation/update", self.ann, self.ann_token, set={"name": "x", "k": 1})
        conversation = ack["body"]["conversation"]
        self.assertEqual((conversation["name"], conversation["k"]), ("x", 1))
        self.assertEqual(ack["statusCode"], 200)
        for client in (self.ann2, self.bob, self.cid):
            self.assertEqual(
                client.take(), [("conversation/updated", {"conversation": conversation})]
            )
        self.assertEqual(self.ann.take() + self.eve.take(), [])
        self.assertEqual(self.conversation(), conversation)

    def test_update_by_member(self) -> None:
        """
        A member changes unprotected fields only; a refused update changes
        nothing, not even its allowed part.
        """
        self.call("conversation/update", self.bob, self.bob_token, set={"topic": "t"})
        self.assertEqual(self.conversation()["topic"], "t")
        self.harness.drain()
        cases: list[dict[str, Any]] = [
            {"topic": "u", "name": "bob's"},
            {"protected": []},
            {"admin": ["bob"]},
        ]
        for changes in cases:
            self.assertEqual(
                status_of(
                    lambda c=changes: self.call(
                        "conversation/update", self.bob, self.bob_token, set=c
                    )
                ),
                403,
            )
        self.assertEqual(self.conversation()["topic"], "t")
        self.assertEqual(self.conversation()["name"], "team")
        self.assertEqual(self.cid.take(), [])

    def test_update_errors(self) -> None:
        """
        Non-members 403, unknown 404, id/createdAt and broken invariants
        400, oversize 413; nothing changes.
        """
        before = self.conversation()
        update = self.service.conversation_update

        def status(client: FakeClient, token: str, **fields: Any) -> int:
            payload = {"sessionToken": token, "conversationId": self.conversation_id, **fields}
            return status_of(lambda: update(client, payload))

        self.assertEqual(status(self.eve, self.eve_token, set={"topic": 1}), 403)
        self.assertEqual(status(self.ann, self.ann_token, conversationId="x", set={"k": 1}), 404)
        self.assertEqual(status(self.ann, self.ann_token, set={"id": "y"}), 400)
        self.assertEqual(status(self.ann, self.ann_token, set={"createdAt": 0}), 400)
        self.assertEqual(status(self.ann, self.ann_token, set={"members": ["bob"]}), 400)
        big = "x" * Settings().max_message_size
        self.assertEqual(
            status(self.ann, self.ann_token, set={"a": big[:-5000], "b": big[:-5000]}), 413
        )
        self.assertEqual(self.conversation(), before)
        self.assertEqual(self.bob.take(), [])

    def test_update_members(self) -> None:
        """
        An admin removing a member tells the removed member too, and its
        list no longer shows the conversation.
        """
        self.call("conversation/update", self.ann, self.ann_token, set={"members": ["ann", "bob"]})
        self.assertEqual(self.events(self.cid), ["conversation/updated"])
        listing = self.service.conversation_list(self.cid, {"sessionToken": self.cid_token})
        self.assertEqual(listing["body"]["conversations"], [])

    def test_unchanged_update_is_quiet(self) -> None:
        """
        An update that changes nothing tells nobody.
        """
        self.call("conversation/update", self.ann, self.ann_token, set={"name": "team"})
        self.assertEqual(self.bob.take(), [])

    def test_get(self) -> None:
        """
        Any logged-in user may get a conversation; unknown is 404.
        """
        ack = self.call("conversation/get", self.eve, self.eve_token)
        self.assertEqual(ack["statusCode"], 200)
        self.assertEqual(ack["body"]["conversation"]["name"], "team")
        self.assertEqual(
            status_of(
                lambda: self.call(
                    "conversation/get", self.eve, self.eve_token, conversationId="nope"
                )
            ),
            404,
        )

    def test_list(self) -> None:
        """
        The caller's conversations, in order of membership, kept in that
        order across updates.
        """
        second = self.service.conversation_add(
            self.bob, {"sessionToken": self.bob_token, "name": "second"}
        )["body"]["id"]
        self.call("conversation/update", self.ann, self.ann_token, set={"k": 2})
        ack = self.service.conversation_list(self.bob, {"sessionToken": self.bob_token})
        self.assertEqual(ack["statusCode"], 200)
        self.assertEqual(
            [c["id"] for c in ack["body"]["conversations"]], [self.conversation_id, second]
        )
        self.assertEqual(ack["body"]["conversations"][0]["k"], 2)
        eve = self.service.conversation_list(self.eve, {"sessionToken": self.eve_token})
        self.assertEqual(eve["body"]["conversations"], [])


class RecordingIMBackend(MemoryIMBackend):
    """
    A backend of a node on its own that keeps what the service publishes.
    """

    def __init__(self) -> None:
        super().__init__("node0")
        self.published: list[IMEvent] = []

    def publish(self, event: IMEvent) -> None:
        self.published.append(event)

    def last_change(self) -> ConversationChanged:
        changes = [event for event in self.published if isinstance(event, ConversationChanged)]
        return changes[-1]


class RebaseTests(_ConversationCase):
    """
    A change that another node's change of the same conversation beat to
    Redis is made again on the version stored first
    (L{xmeet.im.cluster.Cluster.im_rebase}), only if its maker may make it there too.
    """

    def setUp(self) -> None:
        self.backend = RecordingIMBackend()
        self.options = {"backend": self.backend}
        super().setUp()
        self.created = self.backend.last_change().conversation

    def rebase_on(self, stored: Conversation) -> Conversation:
        """
        Tell the service that the version stored first is C{stored}; return
        the version it publishes in reply.
        """
        change = self.backend.last_change()
        self.service.cluster.im_rebase(
            change, ConversationState(Stamp(change.stamp.number, "other"), stored)
        )
        return self.backend.last_change().conversation

    def test_update_made_again(self) -> None:
        """
        An admin's rename made on a version that another node changed
        otherwise keeps both changes.
        """
        self.call("conversation/update", self.ann, self.ann_token, set={"name": "renamed"})
        rebased = self.rebase_on(self.created.with_member("eve"))
        self.assertEqual((rebased.name, rebased.members), ("renamed", ("ann", "bob", "cid", "eve")))
        self.assertEqual(self.conversation()["name"], "renamed")

    def test_update_by_former_admin(self) -> None:
        """
        The version stored first made ann a member only: her rename, which
        only admins may make, is dropped and the stored version kept.
        """
        self.call("conversation/update", self.ann, self.ann_token, set={"name": "renamed"})
        demoted = attrs.evolve(self.created, admin=("bob",))
        self.assertEqual(self.rebase_on(demoted), demoted)
        self.assertEqual(
            (self.conversation()["name"], self.conversation()["admin"]), ("team", ["bob"])
        )

    def test_adding_by_former_admin(self) -> None:
        """
        Adding another user takes the right to change C{members}: lost on
        the stored version, eve is not added.
        """
        self.call("conversation/join", self.ann, self.ann_token, userId="eve")
        demoted = attrs.evolve(self.created, admin=("bob",))
        self.assertEqual(self.rebase_on(demoted), demoted)
        self.assertNotIn("eve", self.conversation()["members"])

    def test_joining_alone_needs_no_right(self) -> None:
        """
        Joining oneself takes no right: eve still joins the stored version.
        """
        self.call("conversation/join", self.eve, self.eve_token)
        demoted = attrs.evolve(self.created, admin=("bob",))
        self.assertIn("eve", self.rebase_on(demoted).members)


class ConversationMessageTests(_ConversationCase):
    """
    C{message/conversation}.
    """

    options = {"burst": 3}

    def send(self, user: str, **fields: Any) -> dict[str, Any]:
        client, token = self.by(user)
        fields = {"type": "text", "content": "hi", **fields}
        return self.call("message/conversation", client, token, **fields)

    def test_delivery(self) -> None:
        """
        Members but the sender and C{ignoreIds} get it, so do the sender's
        other sockets; offline members are queued.
        """
        self.service.socket_closed(self.cid)
        self.service.conversation_join(
            self.eve, {"sessionToken": self.eve_token, "conversationId": self.conversation_id}
        )
        self.harness.drain()
        ack = self.send("ann", ignoreIds=["eve"], content={"text": "hi"})
        message_id = ack["body"]["id"]
        self.assertEqual(
            ack,
            {
                "statusCode": 201,
                "body": {"id": message_id, "sent": {"online": ["bob"], "offline": ["cid"]}},
            },
        )
        event = {
            "id": message_id,
            "conversationId": self.conversation_id,
            "from": "ann",
            "type": "text",
            "content": {"text": "hi"},
            "createdAt": NOW_MS,
        }
        self.assertEqual(self.bob.take(), [("message/conversation", event)])
        self.assertEqual(self.ann2.take(), [("message/conversation", event)])
        self.assertEqual(self.ann.take() + self.eve.take(), [])
        self.assertEqual(self.service.queued("cid"), 1)

    def test_errors(self) -> None:
        """
        Non-member 403, unknown 404, malformed 400, oversize 413, too fast
        429: nothing is delivered nor stored.
        """
        self.assertEqual(status_of(lambda: self.send("eve")), 403)
        self.assertEqual(status_of(lambda: self.send("ann", conversationId="nope")), 404)
        self.assertEqual(status_of(lambda: self.send("ann", type=[])), 400)
        self.assertEqual(status_of(lambda: self.send("ann", ignoreIds="bob")), 400)
        size = Settings().max_message_size
        self.assertEqual(status_of(lambda: self.send("ann", content="x" * size)), 413)
        for _ in range(2):  # conversation/add took the first of 3 tokens
            self.send("ann")
        self.harness.drain()
        self.assertEqual(status_of(lambda: self.send("ann")), 429)
        self.assertEqual(self.bob.take() + self.ann2.take(), [])
        history = self.call("conversation/history", self.bob, self.bob_token)
        self.assertEqual(len(history["body"]["messages"]), 2)


class HistoryTests(_ConversationCase):
    """
    C{conversation/history}.
    """

    options = {"history_size": 5, "burst": 100}

    def setUp(self) -> None:
        super().setUp()
        self.ids = []
        for number in range(7):
            ack = self.call(
                "message/conversation", self.ann, self.ann_token, type="t", content=number
            )
            self.ids.append(ack["body"]["id"])

    def history(self, **fields: Any) -> list[Any]:
        ack = self.call("conversation/history", self.bob, self.bob_token, **fields)
        self.assertEqual(ack["statusCode"], 200)
        return [message["content"] for message in ack["body"]["messages"]]

    def test_pages(self) -> None:
        """
        Newest first, bounded by C{history_size}, paged with C{before} and
        C{limit}; an id no longer kept gives an empty page.
        """
        self.assertEqual(self.history(), [6, 5, 4, 3, 2])
        self.assertEqual(self.history(limit=2), [6, 5])
        self.assertEqual(self.history(before=self.ids[5], limit=2), [4, 3])
        self.assertEqual(self.history(before=self.ids[3]), [2])
        self.assertEqual(self.history(before=self.ids[1]), [])
        self.assertEqual(self.history(before="unknown"), [])

    def test_bounded_in_bytes(self) -> None:
        """
        Beyond C{history_bytes}, the oldest messages are dropped too.
        """
        harness = Harness(history_bytes=5000, max_message_size=5000, burst=100)
        ann, token = harness.log_in("ann")
        call = _calls(harness.service)
        ack = call["conversation/add"](ann, {"sessionToken": token, "name": "big", "members": []})
        fields = {"sessionToken": token, "conversationId": ack["body"]["id"], "type": "t"}
        for number in range(5):
            call["message/conversation"](ann, {**fields, "content": f"{number} " + "x" * 2000})
        ack = call["conversation/history"](ann, {**fields})
        contents = [message["content"][0] for message in ack["body"]["messages"]]
        self.assertEqual(contents, ["4", "3"])

    def test_entries(self) -> None:
        """
        Entries are the events members received.
        """
        ack = self.call("conversation/history", self.bob, self.bob_token, limit=1)
        self.assertEqual(ack["body"]["messages"], [self.bob.events[-1][1]])

    def test_errors(self) -> None:
        """
        C{limit} outside 1..100 is 400; non-members 403; unknown 404.
        """
        for limit in (0, 101, "10", None):
            self.assertEqual(
                status_of(
                    lambda limit=limit: self.call(
                        "conversation/history", self.bob, self.bob_token, limit=limit
                    )
                ),
                400,
            )
        self.assertEqual(
            status_of(lambda: self.call("conversation/history", self.eve, self.eve_token)), 403
        )
        self.assertEqual(
            status_of(
                lambda: self.call(
                    "conversation/history", self.bob, self.bob_token, conversationId="nope"
                )
            ),
            404,
        )


class ScenarioTests(SynchronousTestCase):
    """
    A whole conversation between three users: ann on two devices, bob, and
    cid who is offline at first and logs in later.
    """

    def test_scenario(self) -> None:
        harness = Harness()
        service = harness.service
        phone, phone_token = harness.log_in("ann")
        laptop, laptop_token = harness.log_in("ann")
        bob, bob_token = harness.log_in("bob")

        direct = service.direct_message(
            phone,
            {
                "sessionToken": phone_token,
                "targetIds": ["bob", "cid"],
                "type": "text",
                "textContent": "hello both",
            },
        )
        self.assertEqual(direct["body"]["online"], ["bob"])
        self.assertEqual(direct["body"]["offline"], ["cid"])

        added = service.conversation_add(
            laptop,
            {"sessionToken": laptop_token, "name": "trip", "members": ["bob"], "emoji": "🚀"},
        )
        trip = added["body"]["id"]
        service.conversation_message(
            bob,
            {"sessionToken": bob_token, "conversationId": trip, "type": "text", "content": "yo"},
        )

        cid = FakeClient("cid-1")
        ack = service.log_in(cid, {"userId": "cid", "socketId": "cid-1"})
        self.assertEqual(ack["userId"], "cid")
        self.assertEqual(service.flush_offline(cid), 1)
        joined = service.conversation_join(
            cid, {"sessionToken": ack["sessionToken"], "conversationId": trip}
        )
        self.assertEqual(joined["body"]["conversation"]["members"], ["ann", "bob", "cid"])
        service.conversation_message(
            phone,
            {
                "sessionToken": phone_token,
                "conversationId": trip,
                "type": "text",
                "content": "welcome cid",
            },
        )
        history = service.conversation_history(
            cid, {"sessionToken": ack["sessionToken"], "conversationId": trip}
        )
        self.assertEqual([m["content"] for m in history["body"]["messages"]], ["welcome cid", "yo"])
        service.conversation_leave(bob, {"sessionToken": bob_token, "conversationId": trip})

        def seen(client: FakeClient) -> list[tuple[str, Any]]:
            summary = []
            for event, data in client.take():
                if event == "message/direct":
                    summary.append((event, data["textContent"]))
                elif event == "message/conversation":
                    summary.append((event, data["content"]))
                else:
                    summary.append((event, data["conversation"]["members"]))
            return summary

        self.assertEqual(
            seen(phone),
            [
                ("conversation/updated", ["ann", "bob"]),
                ("message/conversation", "yo"),
                ("conversation/updated", ["ann", "bob", "cid"]),
                ("conversation/updated", ["ann", "cid"]),
            ],
        )
        self.assertEqual(
            seen(laptop),
            [
                ("message/conversation", "yo"),
                ("conversation/updated", ["ann", "bob", "cid"]),
                ("message/conversation", "welcome cid"),
                ("conversation/updated", ["ann", "cid"]),
            ],
        )
        self.assertEqual(
            seen(bob),
            [
                ("message/direct", "hello both"),
                ("conversation/updated", ["ann", "bob"]),
                ("conversation/updated", ["ann", "bob", "cid"]),
                ("message/conversation", "welcome cid"),
            ],
        )
        self.assertEqual(
            seen(cid),
            [
                ("message/direct", "hello both"),
                ("message/conversation", "welcome cid"),
                ("conversation/updated", ["ann", "cid"]),
            ],
        )


class OfflinePropertyTests(SynchronousTestCase):
    """
    Whatever the order of sends, logins, logouts and closes, a user gets
    every message once and in order.
    """

    @given(st.lists(st.sampled_from(["send", "log in", "log out", "close"]), max_size=30))
    def test_in_order_once(self, steps: list[str]) -> None:
        """
        Bob's successive sockets together receive exactly what ann sent.
        """
        harness = Harness(burst=100)
        ann, token = harness.log_in("ann")
        sent: list[str] = []
        received: list[str] = []
        bob: tuple[FakeClient, str] | None = None
        for step in steps:
            if step == "send":
                sent.append(str(len(sent)))
                payload = {"sessionToken": token, "targetIds": ["bob"], "type": "t"}
                harness.service.direct_message(ann, {**payload, "textContent": sent[-1]})
            elif step == "log in" and bob is None:
                bob = harness.log_in("bob")
            elif step == "log out" and bob is not None:
                harness.service.log_out(bob[0], {"sessionToken": bob[1]})
                bob = None
            elif step == "close" and bob is not None:
                harness.service.socket_closed(bob[0])
                bob = None
            if bob is not None:
                received.extend(data["textContent"] for _, data in bob[0].take())
        harness.log_in("bob")
        received.extend(data["textContent"] for _, data in harness.clients[-1].take())
        self.assertEqual(received, sent)


class PropertyTests(SynchronousTestCase):
    """
    Whatever a logged-in client sends to any call, the answer is an ack or
    an L{IMError}, and an error changes nothing.
    """

    @settings(max_examples=200)
    @given(st.sampled_from(sorted(_calls(Harness().service))), payloads, st.booleans())
    def test_only_imerror(self, name: str, payload: object, with_token: bool) -> None:
        """
        Any call with any payload (given a valid token half of the time).
        """
        harness = Harness()
        ann, token = harness.log_in("ann")
        bob, _ = harness.log_in("bob")
        added = harness.service.conversation_add(
            ann, {"sessionToken": token, "name": "n", "members": ["bob"]}
        )
        harness.drain()
        if with_token and isinstance(payload, dict):
            payload = {**payload, "sessionToken": token}
            payload.setdefault("conversationId", added["body"]["id"])
        before = harness.service.conversation_list(None, {"sessionToken": token})
        try:
            ack = _calls(harness.service)[name](ann, payload)
        except IMError as error:
            self.assertIn(error.status_code, (400, 401, 403, 404, 413, 429))
            after = harness.service.conversation_list(None, {"sessionToken": token})
            self.assertEqual(after, before)
            self.assertEqual(ann.events + bob.events, [])
            self.assertEqual(harness.service.queued("bob"), 0)
        else:
            self.assertIn(ack["statusCode"], (200, 201))

    @given(payloads, st.booleans())
    def test_log_in(self, payload: object, signed: bool) -> None:
        """
        C{logIn} with any payload, on an open and on a signed server: a
        session or an error and none.
        """
        harness = Harness(auth_secret="k" if signed else None)
        client = FakeClient("s1")
        if isinstance(payload, dict) and signed and isinstance(payload.get("userId"), str):
            payload = {**payload, "signature": sign(b"k", payload["userId"])}
        try:
            ack = harness.service.log_in(client, payload)
        except IMError as error:
            self.assertIn(error.status_code, (400, 401, 403))
            if isinstance(payload, dict) and isinstance(payload.get("userId"), str):
                self.assertFalse(harness.service.is_online(payload["userId"]))
        else:
            self.assertTrue(harness.service.is_online(ack["userId"]))
