# -*- test-case-name: tests.test_core_im -*-
"""
The payloads of the IM protocol (PROTOCOL.md section 3), without any I/O:
parsing and checking what a client sends, and the error it gets.

Every payload comes from an untrusted client, decoded from JSON by some
front end (a Socket.IO packet, an HTTP body): it may be any JSON-like value.
The C{parse_*} functions turn a payload into a small request value or raise
L{IMError}, and nothing else, so a front end needs exactly one C{except}.
What is done with a checked request (conversations and their rules, the
messages, the bounded logs) is L{xmeet.core.conversation}.

Limits (each one documented in the protocol notes of the README):
 - user ids, conversation ids, message ids: strings of 1..L{MAX_ID_LENGTH}
   characters; longer or empty is malformed (400);
 - C{type}: a string of 1..L{MAX_TYPE_LENGTH} characters (400 otherwise);
 - C{textContent}, C{content}: at most C{max_message_size} bytes (of UTF-8,
   C{content} as compact JSON), 413 beyond;
 - C{targetIds}: 1..L{MAX_TARGETS} user ids (413 beyond, 400 if empty);
 - C{name}: at most L{MAX_NAME_LENGTH} characters (413 beyond);
 - C{admin}, C{members}, C{ignoreIds}: at most L{MAX_MEMBERS} user ids, a
   conversation at most L{MAX_MEMBERS} members (413 beyond, and a C{join}
   of a full conversation is refused with 403);
 - C{protected}: at most L{MAX_PROTECTED} field names (413 beyond);
 - a whole conversation, encoded as JSON: at most C{max_message_size} bytes
   (413 beyond);
 - history C{limit}: an integer 1..L{MAX_HISTORY_LIMIT}, default
   L{DEFAULT_HISTORY_LIMIT} (400 outside). A C{before} id that is not in the
   conversation's kept history (never sent there, or already dropped from
   the bounded history) gives an empty page: it is the end of what is kept,
   as a page past the end of an xnest history is empty.

Strings must be encodable as UTF-8: lone surrogates, which a JSON decoder
accepts from C{"\\ud800"} escapes, are refused with 400 here, so no front
end ever fails to encode what the service hands back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from xmeet.core.errors import error_code
from xmeet.core.rules import not_unicode

__all__ = [
    "CONVERSATION_FIELDS",
    "ALWAYS_PROTECTED",
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_PROTECTED",
    "MAX_HISTORY_LIMIT",
    "MAX_ID_LENGTH",
    "MAX_MEMBERS",
    "MAX_NAME_LENGTH",
    "MAX_PROTECTED",
    "MAX_TARGETS",
    "MAX_TYPE_LENGTH",
    "RESERVED_ATTRIBUTES",
    "ConversationMessageRequest",
    "DirectMessageRequest",
    "HistoryRequest",
    "IMError",
    "JoinRequest",
    "LogInRequest",
    "NewConversation",
    "UpdateRequest",
    "check_session_token",
    "check_signature",
    "conversation_id_of",
    "parse_conversation_message",
    "parse_direct_message",
    "parse_history",
    "parse_join",
    "parse_log_in",
    "parse_new_conversation",
    "parse_update",
    "require_object",
    "sign",
]

MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 64
MAX_NAME_LENGTH = 256
MAX_TARGETS = 100
MAX_MEMBERS = 1000
MAX_PROTECTED = 64
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 100
DEFAULT_PROTECTED = ("name", "members", "admin")

#: Only admins may change C{protected} whatever it lists: otherwise any
#: member could unprotect the other fields and the protection would be void.
ALWAYS_PROTECTED = "protected"

#: Keys that are never custom attributes of a conversation: its own id and
#: creation time (never chosen nor changed by a client) and the keys of the
#: calls' payloads.
RESERVED_ATTRIBUTES = frozenset({"id", "createdAt", "sessionToken", "conversationId"})

_LIST_FIELDS = ("admin", "members")

#: The fields of a conversation a change may set; any other key is a custom
#: attribute.
CONVERSATION_FIELDS = ("name", "protected", *_LIST_FIELDS)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class IMError(Exception):
    """
    A call refused with the error object of PROTOCOL.md section 3.

    @ivar status_code: 400, 401, 403, 404, 413 or 429.
    @ivar code: the stable code of L{xmeet.core.errors.ERROR_CODES}.
    @ivar message: what was wrong, for people; shown to the client as is.
    """

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code, code, message)
        self.status_code = status_code
        self.code = code
        self.message = message

    @classmethod
    def of(cls, status_code: int, message: str) -> IMError:
        """
        The error of C{status_code} with its standard code.
        """
        return cls(status_code, error_code(status_code), message)

    def as_ack(self) -> dict[str, Any]:
        """
        The error object, as an ack or as the payload of an C{error} event.
        """
        return {
            "statusCode": self.status_code,
            "error": {"code": self.code, "message": self.message},
        }


def _bad(message: str) -> IMError:
    return IMError.of(400, message)


def _too_large(message: str) -> IMError:
    return IMError.of(413, message)


def _utf8_size(text: str, what: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _bad(not_unicode(what)) from None


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string")
    _utf8_size(value, what)
    return value


def _bounded_string(value: object, what: str, longest: int) -> str:
    text = _string(value, what)
    if not 1 <= len(text) <= longest:
        raise _bad(f"{what} must be 1 to {longest} characters")
    return text


def _id(value: object, what: str) -> str:
    return _bounded_string(value, what, MAX_ID_LENGTH)


def _required(fields: Mapping[str, Any], key: str) -> Any:
    if key not in fields:
        raise _bad(f"{key} is missing")
    return fields[key]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _id_list(value: object, what: str, longest: int) -> tuple[str, ...]:
    """
    A list of ids without duplicates, in first-seen order.
    """
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list of ids")
    if len(value) > longest:
        raise _too_large(f"{what} may hold at most {longest} ids")
    return _unique(_id(item, f"every id of {what}") for item in value)


def _json_value(value: object, what: str, max_size: int) -> Any:
    """
    A private copy of a JSON value, checked to be JSON (no NaN, no cycle,
    no bytes) and at most C{max_size} bytes once encoded: what is stored
    can then neither be changed by the caller nor fail to encode later.
    """
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError, RecursionError):
        raise _bad(f"{what} must be a JSON value") from None
    if _utf8_size(text, what) > max_size:
        raise _too_large(f"{what} is larger than {max_size} bytes")
    return json.loads(text)


def require_object(payload: object) -> Mapping[str, Any]:
    """
    C{payload} itself if it is a JSON object; every call takes one.
    """
    if not isinstance(payload, dict):
        raise _bad("the payload must be an object")
    return payload


def check_session_token(token: object) -> str:
    """
    A session token as a caller gave it (in the payload, or as the bearer
    of an HTTP request): missing (or null) is 401, as an unknown token is;
    a token that is not a string is malformed (400).
    """
    if token is None:
        raise IMError.of(401, "sessionToken is missing")
    return _string(token, "sessionToken")


def conversation_id_of(fields: Mapping[str, Any]) -> str:
    """
    The C{conversationId} of a call on one conversation.
    """
    return _id(_required(fields, "conversationId"), "conversationId")


def sign(secret: bytes, user_id: str) -> str:
    """
    The C{signature} of C{user_id}: hex HMAC-SHA256 under C{secret}, as an
    application server computes it for its clients.
    """
    return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def check_signature(secret: bytes, user_id: str, signature: object) -> None:
    """
    Refuse (401) a missing or wrong C{signature} of C{user_id}; hex digits
    of either case are accepted. The comparison takes the same time
    wherever the first wrong digit is.
    """
    if not isinstance(signature, str):
        raise IMError.of(401, "signature is missing")
    expected = sign(secret, user_id).encode("ascii")
    given = signature.lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise IMError.of(401, "signature is wrong")


@attrs.frozen
class LogInRequest:
    """
    A checked C{logIn} payload; C{signature} is checked by
    L{check_signature} only when the server has an auth secret, C{token}
    by L{xmeet.core.tokens.TokenVerifier} only when it takes JWT logins.
    """

    user_id: str
    socket_id: str
    signature: object
    token: object = None


def parse_log_in(payload: object) -> LogInRequest:
    """
    C{{userId, socketId, signature?, token?}}.
    """
    fields = require_object(payload)
    return LogInRequest(
        user_id=_id(_required(fields, "userId"), "userId"),
        socket_id=_string(_required(fields, "socketId"), "socketId"),
        signature=fields.get("signature"),
        token=fields.get("token"),
    )


def _type(fields: Mapping[str, Any]) -> str:
    return _bounded_string(_required(fields, "type"), "type", MAX_TYPE_LENGTH)


@attrs.frozen
class DirectMessageRequest:
    """
    A checked C{message/direct} payload; C{target_ids} without duplicates.
    """

    target_ids: tuple[str, ...]
    type: str
    text_content: str


def parse_direct_message(fields: Mapping[str, Any], max_size: int) -> DirectMessageRequest:
    """
    C{{targetIds, type, textContent}} (the token is checked before).
    """
    target_ids = _id_list(_required(fields, "targetIds"), "targetIds", MAX_TARGETS)
    if not target_ids:
        raise _bad("targetIds must name at least one user")
    message_type = _type(fields)
    text = _required(fields, "textContent")
    if not isinstance(text, str):
        raise _bad("textContent must be a string")
    if _utf8_size(text, "textContent") > max_size:
        raise _too_large(f"textContent is larger than {max_size} bytes")
    return DirectMessageRequest(target_ids, message_type, text)


@attrs.frozen
class ConversationMessageRequest:
    """
    A checked C{message/conversation} payload; C{content} is a private copy.
    """

    conversation_id: str
    ignore_ids: frozenset[str]
    type: str
    content: Any


def parse_conversation_message(
    fields: Mapping[str, Any], max_size: int
) -> ConversationMessageRequest:
    """
    C{{conversationId, ignoreIds?, type, content}}; C{ignoreIds} defaults
    to none, C{content} may be any JSON value (null included).
    """
    conversation_id = conversation_id_of(fields)
    ignore = fields.get("ignoreIds")
    ignore_ids = () if ignore is None else _id_list(ignore, "ignoreIds", MAX_MEMBERS)
    message_type = _type(fields)
    content = _json_value(_required(fields, "content"), "content", max_size)
    return ConversationMessageRequest(conversation_id, frozenset(ignore_ids), message_type, content)


def _name(value: object) -> str:
    name = _string(value, "name")
    if len(name) > MAX_NAME_LENGTH:
        raise _too_large(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name


def _protected(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad("protected must be a list of field names")
    if len(value) > MAX_PROTECTED:
        raise _too_large(f"protected may hold at most {MAX_PROTECTED} field names")
    return _unique(_id(item, "every field name of protected") for item in value)


def _field(key: str, value: object, max_size: int) -> Any:
    """
    One conversation field, checked: the known fields by their rules, a
    custom attribute as any JSON value.
    """
    _string(key, "an attribute name")
    if key in RESERVED_ATTRIBUTES:
        raise _bad(f"{key} cannot be set")
    if key == "name":
        return _name(value)
    if key in _LIST_FIELDS:
        return _id_list(value, key, MAX_MEMBERS)
    if key == "protected":
        return _protected(value)
    return _json_value(value, f"attribute {key!r}", max_size)


@attrs.frozen
class NewConversation:
    """
    A checked C{conversation/add} payload, before the creator is added.

    @ivar custom: every other key but C{sessionToken}, each value a private
        copy, kept verbatim.
    """

    name: str
    admin: tuple[str, ...]
    members: tuple[str, ...]
    protected: tuple[str, ...]
    custom: Mapping[str, Any]


def parse_new_conversation(fields: Mapping[str, Any], max_size: int) -> NewConversation:
    """
    C{{name, admin?, members?, protected?, ...custom}}: C{name} is required
    (it may be empty), C{admin} and C{members} default to none,
    C{protected} to L{DEFAULT_PROTECTED}.
    """
    _required(fields, "name")
    values = {
        key: _field(key, value, max_size) for key, value in fields.items() if key != "sessionToken"
    }
    return NewConversation(
        name=values.pop("name"),
        admin=values.pop("admin", ()),
        members=values.pop("members", ()),
        protected=values.pop("protected", DEFAULT_PROTECTED),
        custom=values,
    )


@attrs.frozen
class JoinRequest:
    """
    A checked C{conversation/join} payload. C{user_id} is C{None} for the
    caller joining; the HTTP API adds another user with it.
    """

    conversation_id: str
    user_id: str | None


def parse_join(fields: Mapping[str, Any]) -> JoinRequest:
    """
    C{{conversationId, userId?}}.
    """
    conversation_id = conversation_id_of(fields)
    user = fields.get("userId")
    return JoinRequest(conversation_id, None if user is None else _id(user, "userId"))


@attrs.frozen
class UpdateRequest:
    """
    A checked C{conversation/update} payload: the new value of each field
    in C{set}.
    """

    conversation_id: str
    changes: Mapping[str, Any]


def parse_update(fields: Mapping[str, Any], max_size: int) -> UpdateRequest:
    """
    C{{conversationId, set: {field: value, ...}}}; C{set} may not be empty,
    nor change C{id} or C{createdAt}.
    """
    conversation_id = conversation_id_of(fields)
    changes = _required(fields, "set")
    if not isinstance(changes, dict):
        raise _bad("set must be an object")
    if not changes:
        raise _bad("set must change at least one field")
    return UpdateRequest(
        conversation_id, {key: _field(key, value, max_size) for key, value in changes.items()}
    )


@attrs.frozen
class HistoryRequest:
    """
    A checked C{conversation/history} payload.
    """

    conversation_id: str
    before: str | None
    limit: int


def parse_history(fields: Mapping[str, Any]) -> HistoryRequest:
    """
    C{{conversationId, before?, limit?}}.
    """
    conversation_id = conversation_id_of(fields)
    before = fields.get("before")
    limit = fields.get("limit", DEFAULT_HISTORY_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise _bad("limit must be an integer")
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise _bad(f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    return HistoryRequest(conversation_id, None if before is None else _id(before, "before"), limit)
