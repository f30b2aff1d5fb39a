# -*- test-case-name: tests.test_im_backend -*-
"""
How the Redis IM backend (L{xmeet.store.im_redis}) writes IM events on its
channel and IM state in Redis, and reads them back: every reader here
refuses (L{IMEventError}) or skips what is malformed, since another node,
another version or a person with C{redis-cli} may have written it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from xmeet.core.conversation import Conversation
from xmeet.store.im_interfaces import (
    ConversationChanged,
    Flushed,
    IMEvent,
    MessageSent,
    NodeGone,
    NodePresence,
    PresenceChanged,
    SessionChanged,
    Stamp,
)

__all__ = [
    "IMEventError",
    "ReadAgain",
    "decode_im_event",
    "encode_resync",
    "history_entry",
    "encode_im_event",
    "parse_stored",
    "queued_entry",
    "stored_conversation",
    "stored_expiries",
    "stored_history",
    "stored_queue",
]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def history_entry(data: Mapping[str, Any]) -> str:
    """
    A message event as a conversation's stored history keeps it.
    """
    return _encoder.encode(data)


def encode_resync(node: str) -> str:
    """
    The request of C{node} that every other reads the stored state again.
    """
    return _encoder.encode({"node": node, "kind": "resync"})


@attrs.frozen
class ReadAgain:
    """
    A node asks every other to read the stored state again: it wrote there
    while Redis was away from it.
    """

    node: str


class IMEventError(ValueError):
    """
    A message on the IM channel that is not an event.
    """


def _conversation_of(document: Mapping[str, Any]) -> Conversation:
    fields = dict(document)
    try:
        return Conversation(
            id=fields.pop("id"),
            name=fields.pop("name"),
            admin=tuple(fields.pop("admin")),
            members=tuple(fields.pop("members")),
            protected=tuple(fields.pop("protected")),
            created_at=fields.pop("createdAt"),
            custom=fields,
        )
    except (KeyError, TypeError) as error:
        raise IMEventError(f"not a conversation: {error}") from None


def encode_im_event(event: IMEvent) -> str:
    """
    The JSON text of C{event} on the IM channel.
    """
    fields: dict[str, Any]
    if isinstance(event, PresenceChanged):
        fields = {"kind": "presence", "user": event.user, "online": event.online}
    elif isinstance(event, SessionChanged):
        fields = {"kind": "session", "digest": event.digest, "user": event.user}
        if event.expires_at is not None:
            fields["expiresAt"] = event.expires_at
    elif isinstance(event, NodePresence):
        fields = {
            "kind": "node",
            "users": list(event.users),
            "sessions": [list(pair) for pair in event.sessions],
            "expiries": [list(pair) for pair in event.expiries],
        }
    elif isinstance(event, NodeGone):
        fields = {"kind": "gone"}
    elif isinstance(event, MessageSent):
        fields = {
            "kind": "message",
            "event": event.event,
            "data": event.data,
            "deliver": list(event.deliver),
            "queue": list(event.queue),
            "conversation": event.conversation_id,
            "again": event.again,
        }
    elif isinstance(event, Flushed):
        fields = {"kind": "flushed", "user": event.user, "ids": list(event.ids)}
    else:
        fields = {
            "kind": "conversation",
            "version": event.stamp.number,
            "conversation": event.conversation.as_json(),
            "former": list(event.former),
        }
    return _encoder.encode({"node": event.node, **fields})


def _expiry(value: object) -> int:
    """
    A session's expiry as an event or Redis holds it: epoch milliseconds.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise IMEventError(f"not a session expiry: {value!r}")
    return int(value)


def decode_im_event(text: str) -> IMEvent | ReadAgain:
    """
    The event of a message on the IM channel, or a node's request to read
    the stored state again.

    @raise IMEventError: when C{text} is no event.
    """
    try:
        fields = json.loads(text)
        node = fields["node"]
        kind = fields["kind"]
        if kind == "presence":
            return PresenceChanged(node, fields["user"], bool(fields["online"]))
        if kind == "node":
            sessions = tuple((digest, user) for digest, user in fields["sessions"])
            expiries = tuple(
                (digest, _expiry(expires_at)) for digest, expires_at in fields.get("expiries", ())
            )
            return NodePresence(node, tuple(fields["users"]), sessions, expiries)
        if kind == "session":
            expires_at = fields.get("expiresAt")
            return SessionChanged(
                node,
                fields["digest"],
                fields["user"],
                None if expires_at is None else _expiry(expires_at),
            )
        if kind == "gone":
            return NodeGone(node)
        if kind == "message":
            return MessageSent(
                node,
                fields["event"],
                fields["data"],
                tuple(fields["deliver"]),
                tuple(fields["queue"]),
                fields["conversation"],
                bool(fields.get("again", False)),
            )
        if kind == "flushed":
            return Flushed(node, fields["user"], tuple(fields["ids"]))
        if kind == "conversation":
            return ConversationChanged(
                node,
                Stamp(int(fields["version"]), node),
                _conversation_of(fields["conversation"]),
                tuple(fields["former"]),
            )
        if kind == "resync":
            return ReadAgain(node)
    except (TypeError, ValueError, KeyError) as error:
        raise IMEventError(f"malformed IM event: {error!r}") from None
    raise IMEventError(f"unknown IM event kind {kind!r}")


def queued_entry(event: str, data: Mapping[str, Any]) -> str:
    return f"{data['id']} {_encoder.encode([event, data])}"


def stored_conversation(stamp: Stamp, conversation: Conversation) -> str:
    return f"{stamp.number} {stamp.node} {_encoder.encode(conversation.as_json())}"


def parse_stored(value: str) -> tuple[Stamp, Conversation]:
    """
    A stored conversation and its version.

    @raise ValueError: or L{IMEventError}, for a malformed value.
    """
    number, node, text = value.split(" ", 2)
    return Stamp(int(number), node), _conversation_of(json.loads(text))


def stored_expiries(stored: Any) -> dict[str, int]:
    """
    A node's stored session expiries; malformed entries skipped.
    """
    expiries = {}
    for digest, value in (stored or {}).items():
        try:
            expiries[digest] = _expiry(value)
        except (IMEventError, ValueError):
            continue
    return expiries


def stored_history(history: Any) -> list[dict[str, Any]]:
    """
    A stored history, oldest first; malformed entries skipped.
    """
    entries = []
    for text in reversed(history or ()):
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry:
            entries.append(entry)
    return entries


def stored_queue(stored: Any) -> list[tuple[str, dict[str, Any]]]:
    """
    A stored offline queue, oldest first; malformed entries skipped.
    """
    queue = []
    for text in stored or ():
        try:
            event, data = json.loads(text.split(" ", 1)[1])
        except (ValueError, IndexError):
            continue
        if isinstance(event, str) and isinstance(data, dict) and "id" in data:
            queue.append((event, data))
    return queue
