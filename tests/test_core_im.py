"""
Tests for L{xmeet.core.im}, L{xmeet.core.conversation} and L{xmeet.core.errors}: the IM protocol's
input rules, conversation values and message history, without a service.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.conversation import (
    Conversation,
    ConversationMessage,
    DirectMessage,
    MessageLog,
    OfflineQueue,
)
from xmeet.core.errors import ERROR_CODES, error_code
from xmeet.core.history import ENTRY_OVERHEAD
from xmeet.core.im import (
    DEFAULT_PROTECTED,
    MAX_HISTORY_LIMIT,
    MAX_ID_LENGTH,
    MAX_MEMBERS,
    MAX_NAME_LENGTH,
    MAX_PROTECTED,
    MAX_TARGETS,
    MAX_TYPE_LENGTH,
    IMError,
    NewConversation,
    check_session_token,
    check_signature,
    conversation_id_of,
    parse_conversation_message,
    parse_direct_message,
    parse_history,
    parse_join,
    parse_log_in,
    parse_new_conversation,
    parse_update,
    require_object,
    sign,
)
from xmeet.web_errors import ERROR_CODES as WEB_ERROR_CODES

__all__ = [
    "ConversationTests",
    "ErrorTests",
    "MessageLogTests",
    "MessageTests",
    "OfflineQueueTests",
    "ParseConversationTests",
    "ParseLogInTests",
    "ParseMessageTests",
    "PropertyTests",
]

SIZE = 100

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

_KEYS = [
    "userId",
    "socketId",
    "signature",
    "sessionToken",
    "targetIds",
    "type",
    "textContent",
    "conversationId",
    "ignoreIds",
    "content",
    "name",
    "admin",
    "members",
    "protected",
    "set",
    "before",
    "limit",
    "id",
    "createdAt",
]

payloads = json_values | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), json_values)


def status_of(call: Callable[..., object], *args: Any, **kwargs: Any) -> int:
    """
    The status code of the L{IMError} that C{call(*args, **kwargs)} raises.
    """
    try:
        call(*args, **kwargs)
    except IMError as error:
        return error.status_code
    raise AssertionError("no IMError raised")


def _conversation(**changes: Any) -> Conversation:
    """
    Conversation c1 by ann, with bob and cid, then C{changes} applied.
    """
    request = NewConversation("room", ("ann",), ("bob", "cid"), DEFAULT_PROTECTED, {"x": 1})
    return Conversation.create("c1", "ann", request, 1000).updated(changes)


class ErrorTests(SynchronousTestCase):
    """
    L{IMError} and its ack; one mapping of codes for IM and HTTP.
    """

    def test_as_ack(self) -> None:
        """
        The ack is the error object of the contract.
        """
        self.assertEqual(
            IMError(403, "forbidden", "no").as_ack(),
            {"statusCode": 403, "error": {"code": "forbidden", "message": "no"}},
        )

    def test_codes(self) -> None:
        """
        L{IMError.of} picks the documented code of each status.
        """
        expected = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            413: "too_large",
            429: "rate_limited",
        }
        for status, code in expected.items():
            self.assertEqual(IMError.of(status, "m").code, code)
        self.assertEqual(error_code(418), "error")

    def test_one_mapping(self) -> None:
        """
        The HTTP error pages use the very same mapping.
        """
        self.assertIs(WEB_ERROR_CODES, ERROR_CODES)


class ParseLogInTests(SynchronousTestCase):
    """
    C{logIn} payloads, tokens and signatures.
    """

    def test_valid(self) -> None:
        """
        userId and socketId are read; the signature is kept unchecked.
        """
        request = parse_log_in({"userId": "ann", "socketId": "s1", "signature": 5})
        self.assertEqual((request.user_id, request.socket_id, request.signature), ("ann", "s1", 5))

    def test_malformed(self) -> None:
        """
        Not an object, a missing or wrong field: 400.
        """
        cases: list[Any] = [
            None,
            [],
            "ann",
            {"socketId": "s"},
            {"userId": "ann"},
            {"userId": 1, "socketId": "s"},
            {"userId": "", "socketId": "s"},
            {"userId": "x" * (MAX_ID_LENGTH + 1), "socketId": "s"},
            {"userId": "\ud800", "socketId": "s"},
            {"userId": "ann", "socketId": None},
        ]
        for payload in cases:
            self.assertEqual(status_of(parse_log_in, payload), 400)
        parse_log_in({"userId": "x" * MAX_ID_LENGTH, "socketId": ""})

    def test_session_token(self) -> None:
        """
        A missing or null token is 401, a token of another type 400.
        """
        self.assertEqual(check_session_token("abc"), "abc")
        self.assertEqual(status_of(lambda: check_session_token(None)), 401)
        self.assertEqual(status_of(lambda: check_session_token(12)), 400)
        self.assertEqual(status_of(lambda: check_session_token("\ud800")), 400)

    def test_signature(self) -> None:
        """
        The hex HMAC-SHA256 of the user id, either case; anything else 401.
        """
        secret = b"s3cret"
        good = hmac.new(secret, "安妮".encode(), hashlib.sha256).hexdigest()
        self.assertEqual(sign(secret, "安妮"), good)
        check_signature(secret, "安妮", good)
        check_signature(secret, "安妮", good.upper())
        for wrong in (None, 1, "", good[:-1], sign(b"other", "安妮"), "é" * 64, "\ud800"):
            self.assertEqual(status_of(check_signature, secret, "安妮", wrong), 401)


class ParseMessageTests(SynchronousTestCase):
    """
    C{message/direct} and C{message/conversation} payloads.
    """

    def direct(self, **fields: Any) -> dict[str, Any]:
        return {"targetIds": ["bob"], "type": "text", "textContent": "hi", **fields}

    def test_direct(self) -> None:
        """
        Targets lose their duplicates, in order.
        """
        request = parse_direct_message(self.direct(targetIds=["b", "c", "b"]), SIZE)
        self.assertEqual(request.target_ids, ("b", "c"))
        self.assertEqual((request.type, request.text_content), ("text", "hi"))

    def test_direct_malformed(self) -> None:
        """
        Wrong types, missing or empty fields: 400.
        """
        cases: list[Any] = [
            {"targetIds": None},
            {"targetIds": "bob"},
            {"targetIds": []},
            {"targetIds": [1]},
            {"targetIds": [""]},
            {"type": None},
            {"type": ""},
            {"type": "t" * (MAX_TYPE_LENGTH + 1)},
            {"textContent": None},
            {"textContent": {"a": 1}},
            {"textContent": "\udc00"},
        ]
        for fields in cases:
            payload = self.direct(**fields)
            self.assertEqual(status_of(parse_direct_message, payload, SIZE), 400)
        for key in ("targetIds", "type", "textContent"):
            payload = self.direct()
            del payload[key]
            self.assertEqual(status_of(parse_direct_message, payload, SIZE), 400)

    def test_direct_limits(self) -> None:
        """
        Up to L{MAX_TARGETS} targets and C{max_size} bytes of UTF-8 text;
        more is 413.
        """
        targets = [f"u{n}" for n in range(MAX_TARGETS)]
        parse_direct_message(self.direct(targetIds=targets), SIZE)
        self.assertEqual(
            status_of(lambda: parse_direct_message(self.direct(targetIds=[*targets, "x"]), SIZE)),
            413,
        )
        parse_direct_message(self.direct(textContent="é" * (SIZE // 2)), SIZE)
        self.assertEqual(
            status_of(lambda: parse_direct_message(self.direct(textContent="é" * 51), SIZE)),
            413,
        )

    def conversation(self, **fields: Any) -> dict[str, Any]:
        return {"conversationId": "c1", "type": "text", "content": {"text": "hi"}, **fields}

    def test_conversation(self) -> None:
        """
        C{ignoreIds} default to none; C{content} is any JSON value, copied.
        """
        content = {"text": ["hi"]}
        request = parse_conversation_message(self.conversation(content=content), SIZE)
        content["text"].append("changed")
        self.assertEqual(request.content, {"text": ["hi"]})
        self.assertEqual(request.ignore_ids, frozenset())
        self.assertEqual(request.conversation_id, "c1")
        request = parse_conversation_message(
            self.conversation(content=None, ignoreIds=["a", "a", "b"]), SIZE
        )
        self.assertIsNone(request.content)
        self.assertEqual(request.ignore_ids, frozenset({"a", "b"}))

    def test_conversation_malformed(self) -> None:
        """
        Wrong types, missing fields and values that are not JSON: 400.
        """
        for fields in (
            {"conversationId": 1},
            {"conversationId": ""},
            {"ignoreIds": "a"},
            {"ignoreIds": [None]},
            {"type": 3},
            {"content": math.nan},
            {"content": [math.inf]},
            {"content": b"bytes"},
            {"content": {1j: 1}},
            {"content": "\ud800"},
        ):
            payload = self.conversation(**fields)
            self.assertEqual(status_of(parse_conversation_message, payload, SIZE), 400)
        for key in ("conversationId", "type", "content"):
            payload = self.conversation()
            del payload[key]
            self.assertEqual(status_of(parse_conversation_message, payload, SIZE), 400)

    def test_conversation_limits(self) -> None:
        """
        C{content} is measured as compact JSON; C{ignoreIds} are bounded.
        """
        fits = "x" * (SIZE - 2)
        parse_conversation_message(self.conversation(content=fits), SIZE)
        self.assertEqual(
            status_of(
                lambda: parse_conversation_message(self.conversation(content=fits + "x"), SIZE)
            ),
            413,
        )
        many = [f"u{n}" for n in range(MAX_MEMBERS + 1)]
        self.assertEqual(
            status_of(lambda: parse_conversation_message(self.conversation(ignoreIds=many), SIZE)),
            413,
        )


class ParseConversationTests(SynchronousTestCase):
    """
    The payloads of the C{conversation/*} calls.
    """

    def test_new_defaults(self) -> None:
        """
        Only C{name} is required; custom attributes are kept, the token is
        not one.
        """
        request = parse_new_conversation(
            {"sessionToken": "t", "name": "", "topic": {"a": [1]}, "private": True}, SIZE
        )
        self.assertEqual(
            request,
            NewConversation("", (), (), DEFAULT_PROTECTED, {"topic": {"a": [1]}, "private": True}),
        )

    def test_new_fields(self) -> None:
        """
        Lists lose their duplicates.
        """
        request = parse_new_conversation(
            {"name": "n", "admin": ["a", "a"], "members": ["b", "a"], "protected": ["x", "x"]},
            SIZE,
        )
        self.assertEqual(
            (request.admin, request.members, request.protected), (("a",), ("b", "a"), ("x",))
        )

    def test_new_malformed(self) -> None:
        """
        A missing or wrong field, a reserved attribute: 400.
        """
        for payload in (
            {},
            {"name": None},
            {"name": "n", "admin": "a"},
            {"name": "n", "members": [1]},
            {"name": "n", "protected": "name"},
            {"name": "n", "protected": [""]},
            {"name": "n", "id": "mine"},
            {"name": "n", "createdAt": 1},
            {"name": "n", "conversationId": "c"},
            {"name": "n", "custom": math.nan},
            {"name": "n", "\ud800": 1},
        ):
            self.assertEqual(status_of(parse_new_conversation, payload, SIZE), 400, payload)

    def test_new_limits(self) -> None:
        """
        Name length, list lengths and attribute sizes are bounded (413).
        """
        parse_new_conversation({"name": "n" * MAX_NAME_LENGTH}, SIZE)
        many = [f"u{n}" for n in range(MAX_MEMBERS + 1)]
        for payload in (
            {"name": "n" * (MAX_NAME_LENGTH + 1)},
            {"name": "n", "members": many},
            {"name": "n", "admin": many},
            {"name": "n", "protected": [f"f{n}" for n in range(MAX_PROTECTED + 1)]},
            {"name": "n", "blob": "x" * SIZE},
        ):
            self.assertEqual(status_of(parse_new_conversation, payload, SIZE), 413)

    def test_conversation_id(self) -> None:
        """
        The id of the conversation a call is about.
        """
        self.assertEqual(conversation_id_of({"conversationId": "c"}), "c")
        self.assertEqual(status_of(lambda: conversation_id_of({})), 400)
        self.assertEqual(status_of(lambda: conversation_id_of({"conversationId": []})), 400)

    def test_join(self) -> None:
        """
        C{userId} is optional.
        """
        self.assertIsNone(parse_join({"conversationId": "c"}).user_id)
        self.assertEqual(parse_join({"conversationId": "c", "userId": "u"}).user_id, "u")
        self.assertEqual(status_of(lambda: parse_join({"conversationId": "c", "userId": 1})), 400)

    def test_update(self) -> None:
        """
        C{set} is checked field by field.
        """
        request = parse_update({"conversationId": "c", "set": {"name": "m", "t": [1]}}, SIZE)
        self.assertEqual(request.changes, {"name": "m", "t": [1]})
        cases: list[Any] = [None, [], {}, {"id": "x"}, {"createdAt": 5}, {"members": "a"}]
        for changes in cases:
            self.assertEqual(
                status_of(parse_update, {"conversationId": "c", "set": changes}, SIZE),
                400,
            )
        self.assertEqual(status_of(lambda: parse_update({"conversationId": "c"}, SIZE)), 400)
        self.assertEqual(
            status_of(
                lambda: parse_update({"conversationId": "c", "set": {"name": "n" * 300}}, SIZE)
            ),
            413,
        )

    def test_history(self) -> None:
        """
        C{limit} is an integer 1..100, default 50; C{before} an id.
        """
        request = parse_history({"conversationId": "c"})
        self.assertEqual((request.before, request.limit), (None, 50))
        request = parse_history({"conversationId": "c", "before": "m", "limit": MAX_HISTORY_LIMIT})
        self.assertEqual((request.before, request.limit), ("m", 100))
        self.assertEqual(parse_history({"conversationId": "c", "limit": 1}).limit, 1)
        for fields in (
            {"limit": 0},
            {"limit": 101},
            {"limit": -1},
            {"limit": True},
            {"limit": 5.0},
            {"limit": "5"},
            {"limit": None},
            {"before": 3},
            {"before": ""},
        ):
            payload = {"conversationId": "c", **fields}
            self.assertEqual(status_of(parse_history, payload), 400, fields)


class ConversationTests(SynchronousTestCase):
    """
    L{Conversation} values: creation, permissions and changes.
    """

    def test_create(self) -> None:
        """
        The creator is the first admin and member; admins are members.
        """
        request = NewConversation("n", ("dan",), ("bob", "ann"), ("name",), {"k": "v"})
        conversation = Conversation.create("c1", "ann", request, 1234)
        self.assertEqual(conversation.admin, ("ann", "dan"))
        self.assertEqual(conversation.members, ("ann", "bob", "dan"))
        self.assertEqual(
            conversation.as_json(),
            {
                "id": "c1",
                "name": "n",
                "admin": ["ann", "dan"],
                "members": ["ann", "bob", "dan"],
                "protected": ["name"],
                "createdAt": 1234,
                "k": "v",
            },
        )

    def test_create_too_many(self) -> None:
        """
        The creator counts: L{MAX_MEMBERS} others are one too many.
        """
        others = tuple(f"u{n}" for n in range(MAX_MEMBERS))
        request = NewConversation("n", (), others, (), {})
        self.assertEqual(status_of(lambda: Conversation.create("c", "ann", request, 0)), 413)
        Conversation.create("c", "u0", request, 0)

    def test_check_change(self) -> None:
        """
        Non-members change nothing; members unprotected fields; admins all;
        C{protected} itself is always protected.
        """
        conversation = _conversation()
        conversation.check_change("ann", ["name", "members", "admin", "protected", "x"])
        conversation.check_change("bob", ["x", "topic"])
        for user, fields in (
            ("eve", ["x"]),
            ("bob", ["name"]),
            ("bob", ["x", "members"]),
            ("bob", ["protected"]),
        ):
            self.assertEqual(status_of(conversation.check_change, user, fields), 403)
        open_one = attrs.evolve(conversation, protected=())
        open_one.check_change("bob", ["name", "admin"])

    def test_membership(self) -> None:
        """
        Joining twice changes nothing; leaving drops admin rights too; a
        full conversation refuses new members.
        """
        conversation = _conversation()
        self.assertIs(conversation.with_member("bob"), conversation)
        self.assertEqual(conversation.with_member("eve").members, ("ann", "bob", "cid", "eve"))
        left = conversation.without_member("ann")
        self.assertEqual((left.admin, left.members), ((), ("bob", "cid")))
        full = attrs.evolve(conversation, members=tuple(f"u{n}" for n in range(MAX_MEMBERS)))
        self.assertEqual(status_of(lambda: full.with_member("eve")), 403)

    def test_updated(self) -> None:
        """
        Fields are replaced, custom attributes merged; an admin who is not
        a member is refused.
        """
        conversation = _conversation(name="new", y=[2])
        self.assertEqual(conversation.name, "new")
        self.assertEqual(conversation.custom, {"x": 1, "y": [2]})
        self.assertEqual(_conversation().custom, {"x": 1})
        self.assertEqual(status_of(lambda: _conversation(members=("bob",))), 400)
        self.assertEqual(_conversation(members=("bob",), admin=("bob",)).admin, ("bob",))

    def test_check_size(self) -> None:
        """
        The whole conversation as JSON must fit in C{max_size} bytes.
        """
        conversation = _conversation()
        size = len(
            b'{"id":"c1","name":"room","admin":["ann"],"members":["ann","bob","cid"],'
            b'"protected":["name","members","admin"],"createdAt":1000,"x":1}'
        )
        conversation.check_size(size)
        self.assertEqual(status_of(lambda: conversation.check_size(size - 1)), 413)


class MessageTests(SynchronousTestCase):
    """
    The events of messages.
    """

    def test_direct_event(self) -> None:
        """
        C{message/direct} carries the fields of the contract.
        """
        message = DirectMessage("m1", "ann", ("bob", "cid"), "text", "hi", 1428501726000)
        self.assertEqual(
            message.as_event(),
            {
                "id": "m1",
                "from": "ann",
                "targetIds": ["bob", "cid"],
                "type": "text",
                "textContent": "hi",
                "createdAt": 1428501726000,
            },
        )

    def test_conversation_event(self) -> None:
        """
        C{message/conversation} carries the fields of the contract.
        """
        message = ConversationMessage("m1", "c1", "ann", "text", {"a": 1}, 5)
        self.assertEqual(
            message.as_event(),
            {
                "id": "m1",
                "conversationId": "c1",
                "from": "ann",
                "type": "text",
                "content": {"a": 1},
                "createdAt": 5,
            },
        )


def _log(count: int, maxlen: int = 1000) -> MessageLog:
    log = MessageLog(maxlen)
    for number in range(count):
        log.append(f"m{number}", {"n": number})
    return log


def _numbers(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["n"] for entry in entries]


class MessageLogTests(SynchronousTestCase):
    """
    Bounded conversation history, newest first, paged by C{before}.
    """

    def test_newest_first(self) -> None:
        """
        Without C{before}, the C{limit} newest.
        """
        self.assertEqual(_numbers(_log(5).page(None, 3)), [4, 3, 2])
        self.assertEqual(_numbers(_log(2).page(None, 50)), [1, 0])
        self.assertEqual(_log(0).page(None, 50), [])

    def test_before(self) -> None:
        """
        With C{before}, the messages older than that one.
        """
        log = _log(10)
        self.assertEqual(_numbers(log.page("m5", 3)), [4, 3, 2])
        self.assertEqual(_numbers(log.page("m2", 50)), [1, 0])
        self.assertEqual(log.page("m0", 50), [])
        self.assertEqual(log.page("nope", 50), [])

    def test_bounded(self) -> None:
        """
        The oldest messages go; their ids are then unknown (empty page).
        """
        log = _log(10, maxlen=4)
        self.assertEqual(len(log), 4)
        self.assertEqual(_numbers(log.page(None, 50)), [9, 8, 7, 6])
        self.assertEqual(_numbers(log.page("m8", 50)), [7, 6])
        self.assertEqual(log.page("m5", 50), [])
        self.assertEqual(len(_log(3, maxlen=0)), 0)

    def test_index_bounded(self) -> None:
        """
        The index of ids forgets dropped messages too, or it would grow
        with every message ever sent.
        """
        self.assertEqual(len(_log(10, maxlen=4)._sequence), 4)

    def test_bounded_in_bytes(self) -> None:
        """
        Beyond C{max_bytes} (each entry counted as its JSON plus the
        overhead) the oldest messages go, their ids with them; the newest
        is kept even when larger.
        """
        entry = {"n": 0, "text": "x" * 1000}
        size = len('{"n":0,"text":""}') + 1000 + ENTRY_OVERHEAD
        log = MessageLog(1000, max_bytes=3 * size)
        for number in range(10):
            log.append(f"m{number}", {"n": number, "text": entry["text"]})
        self.assertEqual(_numbers(log.page(None, 50)), [9, 8, 7])
        self.assertEqual(log.bytes, 3 * size)
        self.assertEqual(len(log._sequence), 3)
        log.append("big", {"n": 10, "text": "x" * 5000})
        self.assertEqual(_numbers(log.page(None, 50)), [10])


class OfflineQueueTests(SynchronousTestCase):
    """
    A user's offline queue, bounded in messages and in bytes.
    """

    def _queue(self, count: int, max_messages: int = 1000, max_bytes: int = 10**6) -> OfflineQueue:
        queue = OfflineQueue(max_messages, max_bytes)
        for number in range(count):
            queue.append("message/direct", {"id": f"m{number}", "text": "x" * 1000})
        return queue

    def _ids(self, queue: OfflineQueue) -> list[str]:
        return [data["id"] for _, data in queue]

    def test_bounded_in_messages(self) -> None:
        """
        The oldest messages go beyond C{max_messages}; C{append} says how
        many.
        """
        queue = self._queue(4, max_messages=3)
        self.assertEqual(self._ids(queue), ["m1", "m2", "m3"])
        self.assertEqual(queue.append("e", {"id": "m4"}), 1)

    def test_bounded_in_bytes(self) -> None:
        """
        The oldest messages go beyond C{max_bytes}, each counted as the JSON
        of C{[event, data]} plus the overhead; the newest stays.
        """
        size = len('["message/direct",{"id":"m0","text":""}]') + 1000 + ENTRY_OVERHEAD
        queue = self._queue(10, max_bytes=3 * size)
        self.assertEqual(self._ids(queue), ["m7", "m8", "m9"])
        self.assertEqual(queue.bytes, 3 * size)
        queue.append("e", {"id": "huge", "text": "x" * 10000})
        self.assertEqual(self._ids(queue), ["huge"])

    def test_without(self) -> None:
        """
        C{without} leaves the other messages, in order, and their bytes.
        """
        queue = self._queue(4)
        kept = queue.without({"m1", "m3"})
        self.assertEqual(self._ids(kept), ["m0", "m2"])
        self.assertEqual(kept.bytes, queue.bytes // 2)


class PropertyTests(SynchronousTestCase):
    """
    Whatever JSON-like value a client sends, the parsers answer with a
    request or an L{IMError}, nothing else.
    """

    @given(payloads)
    def test_parsers_only_raise_imerror(self, payload: object) -> None:
        """
        Every parser on an arbitrary payload.
        """
        parsers: list[Callable[[Any], object]] = [
            parse_log_in,
            require_object,
            lambda p: check_session_token(require_object(p).get("sessionToken")),
            lambda p: conversation_id_of(require_object(p)),
            lambda p: parse_direct_message(require_object(p), SIZE),
            lambda p: parse_conversation_message(require_object(p), SIZE),
            lambda p: parse_new_conversation(require_object(p), SIZE),
            lambda p: parse_join(require_object(p)),
            lambda p: parse_update(require_object(p), SIZE),
            lambda p: parse_history(require_object(p)),
        ]
        for parse in parsers:
            try:
                parse(payload)
            except IMError as error:
                self.assertIn(error.status_code, (400, 401, 413))
                self.assertEqual(error.code, ERROR_CODES[error.status_code])

    @given(json_values, st.text())
    def test_signature_only_401(self, signature: object, user: str) -> None:
        """
        Any signature value is accepted or refused with 401.
        """
        try:
            check_signature(b"k", user, signature)
        except IMError as error:
            self.assertEqual(error.status_code, 401)
        else:
            assert isinstance(signature, str)
            self.assertEqual(signature.lower(), sign(b"k", user))

    @given(json_values)
    def test_content_round_trip(self, content: object) -> None:
        """
        Accepted content is kept equal to what was sent (NaN aside, which is
        refused).
        """
        try:
            request = parse_conversation_message(
                {"conversationId": "c", "type": "t", "content": content}, 10**6
            )
        except IMError as error:
            self.assertEqual(error.status_code, 400)
        else:
            self.assertEqual(request.content, content)

    @given(
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=0, max_value=40),
        st.one_of(st.none(), st.integers(min_value=0, max_value=45)),
        st.integers(min_value=1, max_value=MAX_HISTORY_LIMIT),
    )
    def test_log_model(self, maxlen: int, count: int, before: int | None, limit: int) -> None:
        """
        A page equals the same page cut from a plain list of what is kept.
        """
        kept = list(range(count))[-maxlen:] if maxlen else []
        if before is None:
            older = kept
        elif before in kept:
            older = kept[: kept.index(before)]
        else:
            older = []
        expected = list(reversed(older))[:limit]
        page = _log(count, maxlen).page(None if before is None else f"m{before}", limit)
        self.assertEqual(_numbers(page), expected)
