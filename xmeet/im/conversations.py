# -*- test-case-name: tests.test_im,tests.test_im_backend -*-
"""
The conversations of one node's replica, without I/O: each with its
version (L{Stamp}) and its bounded history, and who is a member of which.

Every node changes its replica at once and tells the others
(L{xmeet.im.delivery}); the store keeps one version per conversation, and a
change made on a version another node replaced first is made again on the
newer one (L{Conversations.rebase}): each change carries the function that
makes it (its C{redo}), which checks again that its maker may make it.
Each method returns the users whose sockets must hear of the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from xmeet.config import Settings
from xmeet.core.conversation import Conversation, MessageLog
from xmeet.core.im import IMError
from xmeet.store.im_interfaces import ConversationChanged, ConversationState, Stamp

__all__ = [
    "Change",
    "Conversations",
    "Rebased",
    "Thread",
    "joining",
    "leaving",
    "unchanged",
    "updating",
]

log = Logger()

#: A change of a conversation: the new version made from a given one,
#: or L{IMError} when it may not be made there.
Change = Callable[[Conversation], Conversation]


def unchanged(conversation: Conversation) -> Conversation:
    """
    The change that keeps a conversation as it is: what a change that no
    longer applies is remade as (see L{Conversations.rebase}).
    """
    return conversation


def joining(actor: str, user: str) -> Change:
    """
    C{actor} makes C{user} a member: another user than itself only with
    the right to change C{members}.
    """

    def join(conversation: Conversation) -> Conversation:
        if user != actor:
            conversation.check_change(actor, ["members"])
        return conversation.with_member(user)

    return join


def leaving(leaver: str) -> Change:
    """
    C{leaver} is a member no more, nor an admin.
    """

    def leave(conversation: Conversation) -> Conversation:
        return conversation.without_member(leaver)

    return leave


def updating(actor: str, changes: Mapping[str, Any]) -> Change:
    """
    C{actor} sets C{changes}, if it may.
    """

    def update(conversation: Conversation) -> Conversation:
        conversation.check_change(actor, changes)
        return conversation.updated(changes)

    return update


@attrs.define(eq=False)
class Thread:
    """
    A conversation, its version and its bounded history.
    """

    conversation: Conversation
    log: MessageLog
    stamp: Stamp


@attrs.frozen
class Rebased:
    """
    A change made again on a newer stored version: the change to publish,
    and who must hear of it here.
    """

    change: ConversationChanged
    notify: tuple[str, ...]


class Conversations:
    """
    Conversations, their versions and histories; the memberships index.

    @param settings: C{history_size} and C{history_bytes} bound each
        history, C{max_message_size} each conversation.
    """

    def __init__(self, settings: Settings, node: str) -> None:
        self._settings = settings
        self._node = node
        self._threads: dict[str, Thread] = {}
        self._memberships: dict[str, dict[str, None]] = {}

    def get(self, conversation_id: str) -> Thread | None:
        """
        The conversation C{conversation_id}, if known.
        """
        return self._threads.get(conversation_id)

    def thread(self, conversation_id: str) -> Thread:
        """
        The conversation C{conversation_id}; 404 if unknown.
        """
        thread = self._threads.get(conversation_id)
        if thread is None:
            raise IMError.of(404, "no such conversation")
        return thread

    def of_member(self, user_id: str) -> list[Conversation]:
        """
        The conversations of C{user_id}, oldest membership first.
        """
        return [
            self._threads[conversation_id].conversation
            for conversation_id in self._memberships.get(user_id, {})
        ]

    def checked(self, conversation: Conversation) -> Conversation:
        """
        C{conversation}, refused (413) beyond the size of a message.
        """
        conversation.check_size(self._settings.max_message_size)
        return conversation

    def record(self, conversation_id: str | None, data: dict[str, Any]) -> None:
        """
        Keep a message event in its conversation's history, if known here.
        """
        thread = None if conversation_id is None else self._threads.get(conversation_id)
        if thread is not None:
            thread.log.append(data["id"], data)

    def _message_log(self) -> MessageLog:
        """
        An empty conversation history, bounded in messages and in bytes.
        """
        return MessageLog(self._settings.history_size, self._settings.history_bytes)

    def new_thread(self, conversation: Conversation, stamp: Stamp) -> Thread:
        """
        Keep a conversation not known here yet, at version C{stamp}.
        """
        thread = Thread(conversation, self._message_log(), stamp)
        self._threads[conversation.id] = thread
        return thread

    def change(
        self,
        thread: Thread,
        conversation: Conversation,
        before: Iterable[str] = (),
        redo: Change | None = None,
    ) -> tuple[ConversationChanged, tuple[str, ...]]:
        """
        Keep C{conversation} as this node's new version of C{thread}.

        @param before: users who may be members no more.
        @param redo: makes the same change on another version, should
            another node have changed the conversation first.
        @return: the change to publish, and the users to tell: members, and
            those of C{before} who are members no more.
        """
        former = tuple(user for user in before if not conversation.is_member(user))
        base = thread.stamp
        stamp = Stamp(base.number + 1, self._node)
        notify = self._replace(thread, conversation, stamp, former)
        return ConversationChanged(self._node, stamp, conversation, former, base, redo), notify

    def _replace(
        self, thread: Thread, conversation: Conversation, stamp: Stamp, former: Iterable[str]
    ) -> tuple[str, ...]:
        """
        Make C{conversation} the state of C{thread} here.

        @return: the users to tell: those of C{former} who are members no
            more, and the members.
        """
        former = [user for user in former if not conversation.is_member(user)]
        self._unindex(conversation.id, former)
        thread.conversation = conversation
        thread.stamp = stamp
        for member in conversation.members:
            self._memberships.setdefault(member, {})[conversation.id] = None
        return tuple(dict.fromkeys((*former, *conversation.members)))

    def _unindex(self, conversation_id: str, users: Iterable[str]) -> None:
        for user in users:
            conversations = self._memberships.get(user, {})
            conversations.pop(conversation_id, None)
            if not conversations:
                self._memberships.pop(user, None)

    def apply(self, change: ConversationChanged) -> tuple[str, ...]:
        """
        Another node's version of a conversation, kept if it is newer than
        this node's.

        @return: the users to tell.
        """
        conversation = change.conversation
        thread = self._threads.get(conversation.id)
        if thread is None:
            thread = self.new_thread(conversation, change.stamp)
        elif change.stamp <= thread.stamp:
            return ()
        former = (*change.former, *thread.conversation.members)
        return self._replace(thread, conversation, change.stamp, former)

    def rebase(self, change: ConversationChanged, stored: ConversationState) -> Rebased | None:
        """
        Make C{change} again on the version another node stored first, as a
        version newer than any this node knows, so that every node ends
        with both changes. A change that no longer applies (a full
        conversation, or one its maker may no longer make there) is
        dropped: the stored version is then published again as a newer one,
        so that it replaces this node's refused one, even should that be
        refused once more.
        """
        thread = self._threads.get(change.conversation.id)
        if thread is None or change.redo is None:
            return None
        conversation = stored.conversation
        redo = change.redo
        try:
            conversation = self.checked(redo(conversation))
        except IMError as error:
            log.info(
                "change of conversation {conversation} lost to a concurrent one: {why}",
                conversation=conversation.id,
                why=error.message,
            )
            conversation = stored.conversation
            redo = unchanged
        base = max(stored.stamp, thread.stamp)
        stamp = Stamp(base.number + 1, self._node)
        former = thread.conversation.members
        notify: tuple[str, ...] = ()
        if conversation == thread.conversation:
            thread.stamp = stamp
        else:
            notify = self._replace(thread, conversation, stamp, former)
        former = tuple(user for user in former if not conversation.is_member(user))
        rebased = ConversationChanged(self._node, stamp, conversation, former, stored.stamp, redo)
        return Rebased(rebased, notify)

    def restore(self, state: ConversationState) -> tuple[str, ...]:
        """
        The stored version and history of a conversation: the version
        replaces this node's if newer, the history always.

        @return: the users to tell.
        """
        conversation = state.conversation
        thread = self._threads.get(conversation.id)
        notify: tuple[str, ...] = ()
        if thread is None:
            thread = self.new_thread(conversation, state.stamp)
            notify = self._replace(thread, conversation, state.stamp, ())
        elif state.stamp > thread.stamp:
            notify = self._replace(thread, conversation, state.stamp, thread.conversation.members)
        thread.log = self._message_log()
        for entry in state.history:
            thread.log.append(entry["id"], dict(entry))
        return notify
