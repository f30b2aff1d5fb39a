# -*- test-case-name: tests.test_im_backend,tests.test_im_cluster -*-
"""
What the Redis IM backend (L{xmeet.store.im_redis}) writes: each IM event
of this node stored and published over the node's L{RedisLink}, in order,
without waiting for Redis; and this node's users and sessions, registered
again after an outage. The key layout is described in
L{xmeet.store.im_redis}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from xmeet.core.history import ENTRY_OVERHEAD
from xmeet.store.im_codec import (
    encode_im_event,
    encode_resync,
    history_entry,
    queued_entry,
    stored_conversation,
)
from xmeet.store.im_interfaces import (
    ConversationChanged,
    Flushed,
    IMEvent,
    IMStoreBounds,
    MessageSent,
    NodeGone,
    NodePresence,
    PresenceChanged,
    SessionChanged,
    Stamp,
)
from xmeet.store.im_scripts import ENQUEUE, PUSH_HISTORY, REMOVE_QUEUED, STORE_CONVERSATION
from xmeet.store.redis_link import RedisLink

__all__ = ["IMWriter"]


class IMWriter:
    """
    The writes of one node's IM events to Redis, and what this node must
    register again when Redis comes back: its users, its sessions and their
    expiries.

    @param link: the node's link to Redis.
    @param bounds: what is kept at most.
    """

    def __init__(self, link: RedisLink, bounds: IMStoreBounds) -> None:
        self.node_id = link.node_id
        self._link = link
        self._clock = link.clock
        self._bounds = bounds
        self._score = 0
        self._channel = link.key("im")
        self._wrote_away = False
        self._local_users: set[str] = set()
        self._local_sessions: dict[str, str] = {}
        self._local_expiries: dict[str, int] = {}

    def _key(self, *parts: str) -> str:
        return self._link.key("im", *parts)

    def register(self) -> None:
        """
        Register this node's users and sessions again (a node that was
        silent too long was removed by the others) and tell the others; ask
        them to read the stored state again when this node wrote while
        Redis was away.
        """
        send = self._link.send
        send("SADD", self._key("nodes"), self.node_id)
        presence = self._key("presence", self.node_id)
        send("DEL", presence)
        if self._local_users:
            send("SADD", presence, *sorted(self._local_users))
        sessions = self._key("sessions", self.node_id)
        expiries = self._key("expiries", self.node_id)
        send("DEL", sessions, expiries)
        for digest, user in self._local_sessions.items():
            send("HSET", sessions, digest, user)
        for digest, expires_at in self._local_expiries.items():
            send("HSET", expiries, digest, expires_at)
        gathered = NodePresence(
            self.node_id,
            tuple(sorted(self._local_users)),
            tuple(sorted(self._local_sessions.items())),
            tuple(sorted(self._local_expiries.items())),
        )
        send("PUBLISH", self._channel, encode_im_event(gathered))
        if self._wrote_away:
            self._wrote_away = False
            send("PUBLISH", self._channel, encode_resync(self.node_id))

    def write(self, event: IMEvent) -> Deferred[Any] | None:
        """
        Store the effect of C{event} and publish it on the IM channel; a
        conversation change is published by the script that stores it, only
        if it was made on the stored version.

        @return: for a conversation change, the script's reply: C{1}, or
            the stored version the change was not made on; else C{None}.
        """
        if not self._link.connected:
            self._wrote_away = True
        if isinstance(event, ConversationChanged):
            return self._store_conversation(event)
        if isinstance(event, PresenceChanged):
            self._write_presence(event)
        elif isinstance(event, SessionChanged):
            self._write_session(event)
        elif isinstance(event, MessageSent):
            self._write_message(event)
        elif isinstance(event, Flushed):
            self._remove_queued(event)
        self._link.send("PUBLISH", self._channel, encode_im_event(event))
        return None

    def _write_presence(self, event: PresenceChanged) -> None:
        presence = self._key("presence", self.node_id)
        if event.online:
            self._local_users.add(event.user)
            self._link.send("SADD", presence, event.user)
            self._link.send("SADD", self._key("nodes"), self.node_id)
        else:
            self._local_users.discard(event.user)
            self._link.send("SREM", presence, event.user)

    def _write_session(self, event: SessionChanged) -> None:
        """
        Store a session of this node that began, was refreshed or ended.
        """
        send = self._link.send
        sessions = self._key("sessions", self.node_id)
        expiries = self._key("expiries", self.node_id)
        if event.user is None:
            self._local_sessions.pop(event.digest, None)
            self._local_expiries.pop(event.digest, None)
            send("HDEL", sessions, event.digest)
            send("HDEL", expiries, event.digest)
            return
        self._local_sessions[event.digest] = event.user
        send("HSET", sessions, event.digest, event.user)
        if event.expires_at is not None:
            self._local_expiries[event.digest] = event.expires_at
            send("HSET", expiries, event.digest, event.expires_at)

    def _write_message(self, event: MessageSent) -> None:
        """
        Keep a message in its conversation's history and queue it for its
        offline recipients.
        """
        send = self._link.send
        if event.conversation_id is not None:
            send(
                "EVAL",
                PUSH_HISTORY,
                2,
                self._key("history", event.conversation_id),
                self._key("history-bytes", event.conversation_id),
                history_entry(event.data),
                self._bounds.history_size,
                self._bounds.history_bytes,
                ENTRY_OVERHEAD,
            )
        entry = queued_entry(event.event, event.data)
        for user in event.queue:
            self._score = max(int(self._clock.seconds() * 1000), self._score + 1)
            send(
                "EVAL",
                ENQUEUE,
                3,
                self._key("offline"),
                self._key("offline", user),
                self._key("offline-bytes", user),
                user,
                entry,
                self._bounds.offline_limit,
                self._bounds.offline_users,
                self._score,
                self._key("offline", ""),
                self._bounds.offline_bytes,
                ENTRY_OVERHEAD,
                self._key("offline-bytes", ""),
            )

    def _remove_queued(self, event: Flushed) -> None:
        self._link.send(
            "EVAL",
            REMOVE_QUEUED,
            3,
            self._key("offline"),
            self._key("offline", event.user),
            self._key("offline-bytes", event.user),
            event.user,
            ENTRY_OVERHEAD,
            *event.ids,
        )

    def _store_conversation(self, event: ConversationChanged) -> Deferred[Any]:
        base = event.base or Stamp(0, "")
        return self._link.call(
            "EVAL",
            STORE_CONVERSATION,
            1,
            self._key("conversations"),
            event.conversation.id,
            base.number,
            base.node,
            stored_conversation(event.stamp, event.conversation),
            self._channel,
            encode_im_event(event),
        )

    def remove_node(self, node: str) -> Deferred[Any] | None:
        """
        Forget C{node}'s users and sessions, and tell every node.
        """
        self._link.send(
            "DEL",
            self._key("presence", node),
            self._key("sessions", node),
            self._key("expiries", node),
        )
        self._link.send("SREM", self._key("nodes"), node)
        return self._link.send("PUBLISH", self._channel, encode_im_event(NodeGone(node)))
