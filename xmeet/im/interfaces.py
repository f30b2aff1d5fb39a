# -*- test-case-name: tests.test_im -*-
"""
The store of what waits for users without a socket (L{IOfflineMessages}),
as the IM service relies on it: a sequenced per-user inbox may replace
the offline queues behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zope.interface import Interface

__all__ = ["IOfflineMessages", "Queued"]

#: A message waiting for a user: the event's name and its data.
Queued = tuple[str, dict[str, Any]]


class IOfflineMessages(Interface):
    """
    The messages of this node's replica waiting for users without a socket
    in reach, oldest first, bounded. A message queued for a user waits
    until the user logs in on some node, which delivers it and tells the
    others (L{delivered_elsewhere}).
    """

    def queued(user_id: str) -> int:
        """
        How many messages wait for C{user_id}.
        """

    def is_waiting(user_id: str) -> bool:
        """
        Whether messages wait for C{user_id}: a new message must then wait
        behind them, to keep the order.
        """

    def holds(user_id: str, message_id: str) -> bool:
        """
        Whether the message C{message_id} waits for C{user_id}.
        """

    def users() -> Sequence[str]:
        """
        The users for whom messages wait.
        """

    def enqueue(user_id: str, event: str, data: dict[str, Any]) -> None:
        """
        Keep a message for C{user_id}, dropping the oldest beyond the
        bounds.
        """

    def take(user_id: str) -> list[Queued]:
        """
        Remove and return what waits for C{user_id}, to be delivered now;
        the messages are remembered as delivered.
        """

    def delivered_elsewhere(user_id: str, ids: Iterable[str]) -> list[Queued]:
        """
        Another node delivered the messages C{ids} of C{user_id}: remove
        and return those held here.
        """

    def load(offline: Mapping[str, Iterable[tuple[str, Mapping[str, Any]]]]) -> None:
        """
        Replace everything with the stored state, leaving out the messages
        known to be delivered already.
        """
