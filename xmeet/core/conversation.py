# -*- test-case-name: tests.test_core_im -*-
"""
The rules of IM conversations and messages (PROTOCOL.md section 3),
without any I/O: who may change what, the messages as sent, and the
bounded logs that keep them.

Conversations are immutable values: a change builds a new value, which the
service stores only when every check passed, so an error never leaves a
conversation half changed.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from xmeet.core.history import DEFAULT_HISTORY_BYTES, entry_size
from xmeet.core.im import (
    ALWAYS_PROTECTED,
    CONVERSATION_FIELDS,
    MAX_MEMBERS,
    IMError,
    NewConversation,
)

__all__ = [
    "Conversation",
    "ConversationMessage",
    "DirectMessage",
    "MessageLog",
    "OfflineQueue",
]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _bad(message: str) -> IMError:
    return IMError.of(400, message)


def _too_large(message: str) -> IMError:
    return IMError.of(413, message)


def _forbidden(message: str) -> IMError:
    return IMError.of(403, message)


@attrs.frozen
class Conversation:
    """
    One conversation, as clients see it. Every admin is also a member.

    @ivar created_at: epoch milliseconds.
    @ivar custom: the custom attributes, kept verbatim; read-only.
    """

    id: str
    name: str
    admin: tuple[str, ...]
    members: tuple[str, ...]
    protected: tuple[str, ...]
    created_at: int
    custom: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def create(
        cls, conversation_id: str, creator: str, request: NewConversation, created_at: int
    ) -> Conversation:
        """
        A new conversation: the creator is its first admin and first member,
        the other admins are members too.
        """
        admin = _unique((creator, *request.admin))
        members = _unique((creator, *request.members, *admin))
        if len(members) > MAX_MEMBERS:
            raise _too_large(f"a conversation has at most {MAX_MEMBERS} members")
        return cls(
            conversation_id,
            request.name,
            admin,
            members,
            request.protected,
            created_at,
            request.custom,
        )

    def is_member(self, user_id: str) -> bool:
        """
        Whether C{user_id} is a member (every admin is).
        """
        return user_id in self.members

    def is_admin(self, user_id: str) -> bool:
        """
        Whether C{user_id} is an admin.
        """
        return user_id in self.admin

    def check_change(self, user_id: str, fields: Iterable[str]) -> None:
        """
        Refuse (403) a change of C{fields} by C{user_id}: only members change
        a conversation, and only admins its protected fields.
        """
        if not self.is_member(user_id):
            raise _forbidden("only members may change this conversation")
        if self.is_admin(user_id):
            return
        locked = sorted(set(fields) & (set(self.protected) | {ALWAYS_PROTECTED}))
        if locked:
            raise _forbidden(f"only admins may change {', '.join(locked)}")

    def with_member(self, user_id: str) -> Conversation:
        """
        This conversation with C{user_id} a member; refused (403) when full.
        """
        if self.is_member(user_id):
            return self
        if len(self.members) >= MAX_MEMBERS:
            raise _forbidden(f"this conversation is full ({MAX_MEMBERS} members)")
        return attrs.evolve(self, members=(*self.members, user_id))

    def without_member(self, user_id: str) -> Conversation:
        """
        This conversation without C{user_id}, as a member or an admin.
        """
        return attrs.evolve(
            self,
            admin=tuple(user for user in self.admin if user != user_id),
            members=tuple(user for user in self.members if user != user_id),
        )

    def updated(self, changes: Mapping[str, Any]) -> Conversation:
        """
        This conversation with the checked C{changes} of L{xmeet.core.im.parse_update};
        refused (400) if an admin would not be a member.
        """
        known = {key: value for key, value in changes.items() if key in CONVERSATION_FIELDS}
        custom = {key: value for key, value in changes.items() if key not in CONVERSATION_FIELDS}
        result = attrs.evolve(self, custom={**self.custom, **custom}, **known)
        if not set(result.admin) <= set(result.members):
            raise _bad("every admin must be a member")
        return result

    def as_json(self) -> dict[str, Any]:
        """
        The conversation object of the protocol: its fields, then its custom
        attributes.
        """
        return {
            "id": self.id,
            "name": self.name,
            "admin": list(self.admin),
            "members": list(self.members),
            "protected": list(self.protected),
            "createdAt": self.created_at,
            **self.custom,
        }

    def check_size(self, max_size: int) -> None:
        """
        Refuse (413) a conversation larger than C{max_size} bytes as JSON.
        """
        if len(_encoder.encode(self.as_json()).encode("utf-8")) > max_size:
            raise _too_large(f"the conversation would be larger than {max_size} bytes")


@attrs.frozen
class DirectMessage:
    """
    A direct message as sent; C{created_at} in epoch milliseconds.
    """

    id: str
    sender: str
    target_ids: tuple[str, ...]
    type: str
    text_content: str
    created_at: int

    def as_event(self) -> dict[str, Any]:
        """
        The payload of the C{message/direct} event.
        """
        return {
            "id": self.id,
            "from": self.sender,
            "targetIds": list(self.target_ids),
            "type": self.type,
            "textContent": self.text_content,
            "createdAt": self.created_at,
        }


@attrs.frozen
class ConversationMessage:
    """
    A conversation message as sent; C{created_at} in epoch milliseconds.
    """

    id: str
    conversation_id: str
    sender: str
    type: str
    content: Any
    created_at: int

    def as_event(self) -> dict[str, Any]:
        """
        The payload of the C{message/conversation} event, and its history
        entry.
        """
        return {
            "id": self.id,
            "conversationId": self.conversation_id,
            "from": self.sender,
            "type": self.type,
            "content": self.content,
            "createdAt": self.created_at,
        }


class MessageLog:
    """
    A conversation's most recent messages, at most C{maxlen} of them and at
    most C{max_bytes} bytes (each counted as its JSON by
    L{xmeet.core.history.entry_size}, as Redis counts the stored history)
    though always the newest, served newest first in pages that start
    before a given message id.
    """

    def __init__(self, maxlen: int, max_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        self._maxlen = maxlen
        self._max_bytes = max_bytes
        self._entries: deque[tuple[str, dict[str, Any]]] = deque()
        self._sizes: deque[int] = deque()
        self._sequence: dict[str, int] = {}
        self._appended = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, message_id: str, entry: dict[str, Any]) -> None:
        """
        Add the newest message, dropping the oldest beyond C{maxlen} or
        C{max_bytes}.
        """
        if self._maxlen == 0:
            return
        self._entries.append((message_id, entry))
        self._sizes.append(entry_size(_encoder.encode(entry)))
        self.bytes += self._sizes[-1]
        self._sequence[message_id] = self._appended
        self._appended += 1
        while len(self._entries) > self._maxlen or (
            self.bytes > self._max_bytes and len(self._entries) > 1
        ):
            oldest_id, _ = self._entries.popleft()
            del self._sequence[oldest_id]
            self.bytes -= self._sizes.popleft()

    def page(self, before: str | None, limit: int) -> list[dict[str, Any]]:
        """
        At most C{limit} messages, newest first, all older than C{before}
        (or the newest, without it); empty for an id not kept here.
        """
        if before is None:
            end = len(self._entries)
        elif before in self._sequence:
            end = self._sequence[before] - (self._appended - len(self._entries))
        else:
            return []
        start = max(end - limit, 0)
        return [self._entries[index][1] for index in range(end - 1, start - 1, -1)]


class OfflineQueue:
    """
    The messages waiting for a user who has no socket, oldest first, as
    C{(event, data)} pairs: at most C{max_messages} of them and at most
    C{max_bytes} bytes (each counted as the JSON of the pair by
    L{xmeet.core.history.entry_size}, as Redis counts the stored queue)
    though always the newest.
    """

    def __init__(
        self,
        max_messages: int,
        max_bytes: int,
        entries: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._entries: deque[tuple[str, dict[str, Any]]] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0
        for event, data in entries:
            self.append(event, data)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self._entries)

    def append(self, event: str, data: dict[str, Any]) -> int:
        """
        Queue the newest message; return how many of the oldest were
        dropped to stay within the bounds.
        """
        self._entries.append((event, data))
        self._sizes.append(entry_size(_encoder.encode([event, data])))
        self.bytes += self._sizes[-1]
        dropped = 0
        while len(self._entries) > self._max_messages or (
            self.bytes > self._max_bytes and len(self._entries) > 1
        ):
            self._entries.popleft()
            self.bytes -= self._sizes.popleft()
            dropped += 1
        return dropped

    def without(self, ids: set[str]) -> OfflineQueue:
        """
        The same queue without the messages of C{ids}.
        """
        return OfflineQueue(
            self._max_messages,
            self._max_bytes,
            [entry for entry in self._entries if entry[1]["id"] not in ids],
        )
