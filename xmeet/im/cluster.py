# -*- test-case-name: tests.test_im_backend,tests.test_im_cluster -*-
"""
The other nodes' changes applied to this node's replica of the IM state
(L{xmeet.store.im_interfaces.IIMListener}): who is online where and with
which sessions, conversations, offline queues and messages, each handed
to the collaborator that keeps it, and pushed to the sockets here.
"""

from __future__ import annotations

from zope.interface import implementer

from xmeet.im.conversations import Conversations
from xmeet.im.delivery import Delivery
from xmeet.im.interfaces import IOfflineMessages
from xmeet.im.replica import Replica
from xmeet.im.sessions import Sessions
from xmeet.store.im_interfaces import (
    ConversationChanged,
    ConversationState,
    Flushed,
    IIMBackend,
    IIMListener,
    IMEvent,
    IMSnapshot,
    MessageSent,
    NodeGone,
    NodePresence,
    PresenceChanged,
    SessionChanged,
)

__all__ = ["Cluster"]


@implementer(IIMListener)
class Cluster:
    """
    What this node hears of the others, through its backend.
    """

    def __init__(
        self,
        sessions: Sessions,
        replica: Replica,
        offline: IOfflineMessages,
        conversations: Conversations,
        delivery: Delivery,
        backend: IIMBackend,
    ) -> None:
        self._sessions = sessions
        self._replica = replica
        self._offline = offline
        self._conversations = conversations
        self._delivery = delivery
        self._backend = backend

    def im_event(self, event: IMEvent) -> None:
        """
        Apply another node's change to the replica and push it to the
        sockets of this node.
        """
        if isinstance(event, PresenceChanged):
            self._replica.presence(event.node, event.user, event.online)
        elif isinstance(event, SessionChanged):
            self._session(event.node, event.digest, event.user, event.expires_at)
        elif isinstance(event, NodePresence):
            self._node_gone(event.node)
            for user in event.users:
                self._replica.presence(event.node, user, True)
            expiries = dict(event.expiries)
            for token_digest, user in event.sessions:
                self._session(event.node, token_digest, user, expiries.get(token_digest))
        elif isinstance(event, NodeGone):
            self._node_gone(event.node)
        elif isinstance(event, MessageSent):
            self._delivery.remote_message(event)
        elif isinstance(event, Flushed):
            self._delivery.flushed(event)
        else:
            self._changed(event)

    def _session(
        self, node: str, token_digest: str, user: str | None, expires_at: int | None = None
    ) -> None:
        applied = self._replica.session_changed(node, token_digest, user, expires_at)
        if applied and user is None:
            self._sessions.forget_remote(token_digest)

    def _node_gone(self, node: str) -> None:
        for token_digest in self._replica.node_gone(node):
            self._sessions.forget_remote(token_digest)

    def _changed(self, change: ConversationChanged) -> None:
        """
        Another node's version of a conversation, kept if it is newer than
        this node's.
        """
        self._delivery.updated(change.conversation, self._conversations.apply(change))

    def im_rebase(self, change: ConversationChanged, stored: ConversationState) -> None:
        """
        Make C{change} again on the version another node stored first (see
        L{Conversations.rebase}), and publish the result.
        """
        rebased = self._conversations.rebase(change, stored)
        if rebased is not None:
            self._delivery.updated(rebased.change.conversation, rebased.notify)
            self._backend.publish(rebased.change)

    def im_snapshot(self, snapshot: IMSnapshot) -> None:
        """
        The stored state replaces the replica's view: newer conversations,
        their histories, the offline queues (delivered at once to users
        with sockets here), the other nodes' users and sessions. Queued
        messages this node knows were delivered are not queued again: the
        state may have been read before Redis forgot them.
        """
        for state in snapshot.conversations:
            self._delivery.updated(state.conversation, self._conversations.restore(state))
        self._offline.load(snapshot.offline)
        self._replica.load(snapshot.presence, snapshot.sessions, snapshot.expiries)
        for user in self._offline.users():
            if self._sessions.is_online(user):
                self._delivery.flush(user)
