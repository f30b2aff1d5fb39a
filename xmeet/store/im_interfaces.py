# -*- test-case-name: tests.test_im_backend -*-
"""
What the IM service needs from the world outside its process: a way to
tell the other nodes what changed, and the shared state to start from.

Every node keeps a replica of the IM state in memory (presence, the
conversations and their histories, the offline queues), so that the
service answers every call synchronously. A change is applied to the
local replica first, then published as one of the events below: the
backend stores its effect durably and every other node applies it to its
replica and pushes it to its own sockets.

L{xmeet.store.im_memory} is the backend of a node on its own;
L{xmeet.store.im_redis} shares the state through Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from xmeet.core.conversation import Conversation

__all__ = [
    "ConversationChanged",
    "ConversationState",
    "Flushed",
    "IIMBackend",
    "IIMListener",
    "IMEvent",
    "IMStoreBounds",
    "IMSnapshot",
    "MessageSent",
    "NodeGone",
    "NodePresence",
    "PresenceChanged",
    "SessionChanged",
    "Stamp",
]


@attrs.frozen
class IMStoreBounds:
    """
    What the IM store keeps at most, so that Redis memory stays bounded
    whatever clients send.

    @ivar history_size: messages kept per conversation.
    @ivar history_bytes: bytes of messages kept per conversation.
    @ivar offline_limit: messages kept per offline user.
    @ivar offline_bytes: bytes of messages kept per offline user.
    @ivar offline_users: users with a queue kept.
    """

    history_size: int
    history_bytes: int
    offline_limit: int
    offline_bytes: int
    offline_users: int


@attrs.frozen(order=True)
class Stamp:
    """
    The version of a conversation: a change on node C{node} of the version
    C{number - 1}. Stamps are totally ordered, so every node keeps the
    same document when two nodes change a conversation at once.
    """

    number: int
    node: str


@attrs.frozen
class PresenceChanged:
    """
    User C{user} has a logged-in socket on C{node} now (C{online}), or no
    more.
    """

    node: str
    user: str
    online: bool


@attrs.frozen
class SessionChanged:
    """
    A session of C{user} began on C{node} (C{user} is C{None} when it
    ended), or its JWT was refreshed. C{digest} is the SHA-256 of its
    token, in hex: other nodes accept the token on the HTTP API without
    ever holding it, until C{expires_at} (epoch milliseconds) when the
    session came from a JWT login.
    """

    node: str
    digest: str
    user: str | None
    expires_at: int | None = None


@attrs.frozen
class NodePresence:
    """
    Every user with a logged-in socket on C{node} and every session there
    (digest, user) with the expiry of those that have one (digest, epoch
    milliseconds), replacing what was known of it (sent when a node's link
    to the others returns).
    """

    node: str
    users: tuple[str, ...]
    sessions: tuple[tuple[str, str], ...] = ()
    expiries: tuple[tuple[str, int], ...] = ()


@attrs.frozen
class NodeGone:
    """
    Node C{node} left the cluster, cleanly or found dead: its users are no
    longer online there.
    """

    node: str


@attrs.frozen
class MessageSent:
    """
    A message sent by a user of C{node}: pushed as C{event} with C{data}
    to the sockets of C{deliver}, queued for C{queue} (who had no socket,
    or a queue not delivered yet), and appended to the history of
    C{conversation_id} when given. C{again} marks a message queued by a
    node where its recipient had just logged out: several nodes may do so,
    so nodes queue it only if they do not hold it yet.
    """

    node: str
    event: str
    data: Mapping[str, Any]
    deliver: tuple[str, ...]
    queue: tuple[str, ...]
    conversation_id: str | None = None
    again: bool = False


@attrs.frozen
class Flushed:
    """
    The queued messages C{ids} of C{user} were delivered to its sockets on
    C{node}: every node delivers those it still holds to its own sockets of
    the user, then forgets them.
    """

    node: str
    user: str
    ids: tuple[str, ...]


@attrs.frozen
class ConversationChanged:
    """
    Conversation C{conversation} at version C{stamp} (created or changed);
    C{former} were members before the change and are not any more.

    For the backend of the node making the change, not told to the others:
    C{base} is the version it was made on, and C{redo} makes the same
    change on another version, for when another node changed the
    conversation first (see L{IIMListener.im_rebase}).
    """

    node: str
    stamp: Stamp
    conversation: Conversation
    former: tuple[str, ...] = ()
    base: Stamp | None = None
    redo: Callable[[Conversation], Conversation] | None = attrs.field(
        default=None, eq=False, repr=False
    )


IMEvent = (
    PresenceChanged
    | SessionChanged
    | NodePresence
    | NodeGone
    | MessageSent
    | Flushed
    | ConversationChanged
)


@attrs.frozen
class ConversationState:
    """
    A stored conversation with its version and its history, oldest first.
    """

    stamp: Stamp
    conversation: Conversation
    history: Sequence[Mapping[str, Any]] = ()


@attrs.frozen
class IMSnapshot:
    """
    The shared IM state as stored: conversations, offline queues (user to
    C{(event, data)} pairs, oldest first), the users online on each node,
    each node's sessions (token digest to user) and their expiries (token
    digest to epoch milliseconds, for sessions of JWT logins).
    """

    conversations: Sequence[ConversationState] = ()
    offline: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] = attrs.field(factory=dict)
    presence: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    sessions: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    expiries: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)


class IIMListener(Interface):
    """
    The IM service, as its backend sees it.
    """

    def im_event(event: IMEvent) -> None:
        """
        An event of another node (or of this node's backend itself, when it
        finds a node dead): apply it to the replica, push to local sockets.
        """

    def im_rebase(change: ConversationChanged, stored: ConversationState) -> None:
        """
        This node's C{change} was made on a version other than the one
        C{stored} meanwhile by another node, and was neither stored nor
        published: make it again on that one, so that no change is lost and
        every node ends with the same version.
        """

    def im_snapshot(snapshot: IMSnapshot) -> None:
        """
        The stored state as it is now, at start or after an outage, when
        events may have been missed: it replaces the replica's view.
        """


class IIMBackend(Interface):
    """
    Keeps the IM state and tells other nodes what changes.
    """

    node_id = Attribute("This node's id, unique across the cluster and restarts.")

    connected = Attribute(
        "Whether the other nodes hear this one now: users online only on other"
        " nodes count as offline (their messages are queued) while it is false."
    )

    def start(listener: IIMListener) -> Deferred[None]:
        """
        Deliver other nodes' events to C{listener} from now on, after the
        stored state (L{IIMListener.im_snapshot}). Fires once the node may
        serve: when the state was loaded, or when it could not be within a
        bounded time (the node then serves from memory and loads it later).
        Never fails.
        """

    def publish(event: IMEvent) -> None:
        """
        Store the effect of C{event}, already applied by this node, and pass
        it to the other nodes, in the order of the calls.
        """

    def stop() -> Deferred[None]:
        """
        Leave the cluster cleanly: this node's users are offline here.
        """
