# -*- test-case-name: tests.test_im,tests.test_im_backend -*-
"""
The offline queues of one node's replica: the messages waiting for users
without a socket in reach, bounded per user (in messages and bytes) and in
users, so that clients sending to invented user ids cannot exhaust memory.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from xmeet.core.conversation import OfflineQueue
from xmeet.im.interfaces import IOfflineMessages, Queued

__all__ = ["DEFAULT_OFFLINE_LIMIT", "DEFAULT_OFFLINE_USERS", "DELIVERED_MEMORY", "OfflineQueues"]

log = Logger()

#: Messages kept for one user without a logged-in socket; the oldest are
#: dropped beyond this.
DEFAULT_OFFLINE_LIMIT = 1000

#: Users with queued messages; beyond this, the queue of the user who was
#: sent something least recently is dropped.
DEFAULT_OFFLINE_USERS = 100_000

#: Ids of queued messages remembered after their delivery, so that a
#: stored state read while they were being forgotten in Redis does not
#: queue them again.
DELIVERED_MEMORY = 10_000


@implementer(IOfflineMessages)
class OfflineQueues:
    """
    One L{OfflineQueue} per user, the user sent something least recently
    first.

    @param limit: messages queued per user.
    @param users: users with a queue.
    @param max_bytes: bytes queued per user.
    """

    def __init__(self, limit: int, users: int, max_bytes: int) -> None:
        self._limit = limit
        self._users = users
        self._max_bytes = max_bytes
        self._queues: OrderedDict[str, OfflineQueue] = OrderedDict()
        self._delivered: deque[str] = deque()
        self._delivered_ids: set[str] = set()

    def queued(self, user_id: str) -> int:
        return len(self._queues.get(user_id, ()))

    def is_waiting(self, user_id: str) -> bool:
        return user_id in self._queues

    def holds(self, user_id: str, message_id: str) -> bool:
        return any(data["id"] == message_id for _, data in self._queues.get(user_id, ()))

    def users(self) -> Sequence[str]:
        return list(self._queues)

    def enqueue(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        queue = self._queues.pop(user_id, None)
        if queue is None:
            queue = OfflineQueue(self._limit, self._max_bytes)
        if queue.append(event, data):
            log.warn("offline queue of {user!r} full: oldest messages dropped", user=user_id)
        self._queues[user_id] = queue
        while len(self._queues) > self._users:
            dropped, _ = self._queues.popitem(last=False)
            log.warn("too many offline users: queue of {user!r} dropped", user=dropped)

    def take(self, user_id: str) -> list[Queued]:
        queue = list(self._queues.pop(user_id, None) or ())
        self._remember_delivered(data["id"] for _, data in queue)
        return queue

    def delivered_elsewhere(self, user_id: str, ids: Iterable[str]) -> list[Queued]:
        ids = tuple(ids)
        self._remember_delivered(ids)
        queue = self._queues.get(user_id)
        if queue is None:
            return []
        wanted = set(ids)
        delivered = [entry for entry in queue if entry[1]["id"] in wanted]
        kept = queue.without(wanted)
        if kept:
            self._queues[user_id] = kept
        else:
            del self._queues[user_id]
        return delivered

    def _remember_delivered(self, ids: Iterable[str]) -> None:
        for message_id in ids:
            self._delivered.append(message_id)
            self._delivered_ids.add(message_id)
        while len(self._delivered) > DELIVERED_MEMORY:
            self._delivered_ids.discard(self._delivered.popleft())

    def load(self, offline: Mapping[str, Iterable[tuple[str, Mapping[str, Any]]]]) -> None:
        self._queues = OrderedDict()
        for user, entries in offline.items():
            seen: set[str] = set()
            for event, data in entries:
                if data["id"] not in self._delivered_ids and data["id"] not in seen:
                    seen.add(data["id"])
                    self.enqueue(user, event, dict(data))
