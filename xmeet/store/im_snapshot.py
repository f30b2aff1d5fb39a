# -*- test-case-name: tests.test_im_backend -*-
"""
Reading the whole IM state a Redis IM backend (L{xmeet.store.im_redis})
stored, for a node's replica: conversations with their histories, offline
queues, and the other nodes' users and sessions, in two round trips
whatever their number.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.logger import Logger

from xmeet.store.im_codec import (
    IMEventError,
    parse_stored,
    stored_expiries,
    stored_history,
    stored_queue,
)
from xmeet.store.im_interfaces import ConversationState, IMSnapshot
from xmeet.store.redis_link import RedisLink

__all__ = ["read_snapshot"]

log = Logger()


@inlineCallbacks
def read_snapshot(link: RedisLink, history_size: int, offline_limit: int) -> Any:
    """
    The stored state as an L{IMSnapshot} (a L{Deferred}); other nodes only:
    this node's own users and sessions are its own business.

    @param history_size: the newest messages read per conversation.
    @param offline_limit: the newest messages read per offline queue.
    """
    connection = link.connection
    clock = link.clock
    started = clock.seconds()

    def key(*parts: str) -> str:
        return link.key("im", *parts)

    stored, nodes, offline_users = yield gatherResults(
        [
            connection.hgetall(key("conversations")),
            connection.execute_command("SMEMBERS", key("nodes")),
            connection.execute_command("ZRANGE", key("offline"), 0, -1),
        ],
        consumeErrors=True,
    )
    documents = []
    for value in (stored or {}).values():
        try:
            documents.append(parse_stored(value))
        except (ValueError, IMEventError):
            log.warn("ignoring a malformed stored conversation")
    nodes = [node for node in nodes or () if node != link.node_id]
    offline_users = offline_users or []
    replies = yield gatherResults(
        [
            *(
                connection.lrange(key("history", conversation.id), 0, history_size - 1)
                for _, conversation in documents
            ),
            *(
                connection.lrange(key("offline", user), -offline_limit, -1)
                for user in offline_users
            ),
            *(connection.execute_command("SMEMBERS", key("presence", node)) for node in nodes),
            *(connection.hgetall(key("sessions", node)) for node in nodes),
            *(connection.hgetall(key("expiries", node)) for node in nodes),
        ],
        consumeErrors=True,
    )
    histories = replies[: len(documents)]
    queues = replies[len(documents) : len(documents) + len(offline_users)]
    presences = replies[len(documents) + len(offline_users) :][: len(nodes)]
    sessions = replies[len(documents) + len(offline_users) + len(nodes) :][: len(nodes)]
    expiries = replies[len(documents) + len(offline_users) + 2 * len(nodes) :]
    link.latency = clock.seconds() - started
    return IMSnapshot(
        conversations=[
            ConversationState(stamp, conversation, stored_history(history))
            for (stamp, conversation), history in zip(documents, histories, strict=True)
        ],
        offline={
            user: stored_queue(entries)
            for user, entries in zip(offline_users, queues, strict=True)
            if entries
        },
        presence={
            node: tuple(sorted(users or ())) for node, users in zip(nodes, presences, strict=True)
        },
        sessions={node: dict(found or {}) for node, found in zip(nodes, sessions, strict=True)},
        expiries={
            node: stored_expiries(found) for node, found in zip(nodes, expiries, strict=True)
        },
    )
