# -*- test-case-name: tests.test_im_backend,tests.test_im_jwt -*-
"""
This node's replica of who is online on the other nodes of the cluster,
and of their sessions: enough to route a message to a user logged in
elsewhere, and to accept on the HTTP API a token another node handed out
(known by its digest only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import attrs

__all__ = ["RemoteSessionEntry", "Replica", "digest"]


def digest(token: str) -> str:
    """
    What other nodes know of a session token: enough to recognise it, not
    to use it.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@attrs.frozen
class RemoteSessionEntry:
    """
    A session another node holds: its user, its node, and when it ends
    (epoch milliseconds; C{None} for a session that does not expire).
    """

    user: str
    node: str
    expires_at: int | None


class Replica:
    """
    The users and sessions of the other nodes, as they told this one; the
    changes of this node (C{node}) itself are ignored.
    """

    def __init__(self, node: str) -> None:
        self._node = node
        self._remote: dict[str, set[str]] = {}
        self._node_users: dict[str, set[str]] = {}
        self._sessions: dict[str, RemoteSessionEntry] = {}
        self._node_sessions: dict[str, set[str]] = {}

    def is_online(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on another node.
        """
        return user_id in self._remote

    def session(self, token_digest: str) -> RemoteSessionEntry | None:
        """
        The session of another node whose token has C{token_digest}.
        """
        return self._sessions.get(token_digest)

    def presence(self, node: str, user: str, online: bool) -> None:
        """
        C{user} logged in on C{node}, or has no socket there anymore.
        """
        if node == self._node:
            return
        if online:
            self._remote.setdefault(user, set()).add(node)
            self._node_users.setdefault(node, set()).add(user)
            return
        nodes = self._remote.get(user, set())
        nodes.discard(node)
        if not nodes:
            self._remote.pop(user, None)
        users = self._node_users.get(node, set())
        users.discard(user)
        if not users:
            self._node_users.pop(node, None)

    def session_changed(
        self, node: str, token_digest: str, user: str | None, expires_at: int | None = None
    ) -> bool:
        """
        A session of C{node} began or was refreshed (C{user} given), or
        ended.

        @return: whether the change was another node's, and so applied.
        """
        if node == self._node:
            return False
        if user is not None:
            self._sessions[token_digest] = RemoteSessionEntry(user, node, expires_at)
            self._node_sessions.setdefault(node, set()).add(token_digest)
            return True
        self._sessions.pop(token_digest, None)
        digests = self._node_sessions.get(node, set())
        digests.discard(token_digest)
        if not digests:
            self._node_sessions.pop(node, None)
        return True

    def node_gone(self, node: str) -> list[str]:
        """
        Forget every user and session of C{node}.

        @return: the digests of the sessions that ended.
        """
        for user in list(self._node_users.get(node, ())):
            self.presence(node, user, False)
        ended = list(self._node_sessions.get(node, ()))
        for token_digest in ended:
            self.session_changed(node, token_digest, None)
        return ended

    def load(
        self,
        presence: Mapping[str, tuple[str, ...]],
        sessions: Mapping[str, Mapping[str, str]],
        expiries: Mapping[str, Mapping[str, int]],
    ) -> None:
        """
        Replace everything with the stored state.
        """
        self._remote = {}
        self._node_users = {}
        for node, users in presence.items():
            for user in users:
                self.presence(node, user, True)
        self._sessions = {}
        self._node_sessions = {}
        for node, found in sessions.items():
            node_expiries = expiries.get(node, {})
            for token_digest, user in found.items():
                self.session_changed(node, token_digest, user, node_expiries.get(token_digest))
