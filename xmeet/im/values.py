# -*- test-case-name: tests.test_im -*-
"""
The results of the IM service's calls. The service knows nothing of the
wire: the front ends render these values (L{xmeet.handlers.im_wire}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from xmeet.core.conversation import Conversation

__all__ = [
    "ConversationCreated",
    "ConversationList",
    "ConversationShown",
    "ConversationSent",
    "DirectSent",
    "HistoryPage",
    "LoggedIn",
    "LoggedOut",
    "Refreshed",
]


@attrs.frozen
class LoggedIn:
    """
    A C{logIn} that succeeded; C{expires_at} (epoch milliseconds) for a
    JWT login only.
    """

    user_id: str
    socket_id: str
    session_token: str
    expires_at: int | None = None


@attrs.frozen
class Refreshed:
    """
    A C{session/refresh}: the session now ends at C{expires_at}.
    """

    expires_at: int


@attrs.frozen
class LoggedOut:
    """
    A C{logOut}: the session ended, the socket stays.
    """


@attrs.frozen
class DirectSent:
    """
    A direct message sent: its targets (without duplicates), and which of
    them were in reach or had it queued.
    """

    id: str
    sent: tuple[str, ...]
    online: tuple[str, ...]
    offline: tuple[str, ...]


@attrs.frozen
class ConversationSent:
    """
    A conversation message sent: which recipients were in reach or had it
    queued.
    """

    id: str
    online: tuple[str, ...]
    offline: tuple[str, ...]


@attrs.frozen
class ConversationCreated:
    """
    A C{conversation/add}: the new conversation.
    """

    conversation: Conversation


@attrs.frozen
class ConversationShown:
    """
    A conversation as it is after the call (join, leave, update, get).
    """

    conversation: Conversation


@attrs.frozen
class ConversationList:
    """
    The caller's conversations, oldest membership first.
    """

    conversations: tuple[Conversation, ...]


@attrs.frozen
class HistoryPage:
    """
    A page of a conversation's history, newest first: the message events
    as they were pushed.
    """

    messages: tuple[Mapping[str, Any], ...]
