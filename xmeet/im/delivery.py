# -*- test-case-name: tests.test_im,tests.test_im_backend,tests.test_im_cluster -*-
"""
The one place where IM messages and changes reach their recipients: pushed
to the sockets here, queued for users out of reach
(L{xmeet.im.interfaces.IOfflineMessages}), kept in a conversation's
history, and told to the other nodes, which push to their own sockets.

Each event becomes one L{Push} for all its recipients, so that each front
end encodes it once.

The order per recipient holds: a user with queued messages gets new ones
queued behind them until the queue is flushed, right after its C{logIn}.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from xmeet.core.conversation import Conversation, ConversationMessage, DirectMessage
from xmeet.im.client import IIMClient, Push
from xmeet.im.conversations import Change, Conversations, Thread
from xmeet.im.interfaces import IOfflineMessages
from xmeet.im.replica import Replica
from xmeet.im.sessions import Sessions
from xmeet.store.im_interfaces import Flushed, IIMBackend, MessageSent

__all__ = ["Delivery", "Route"]


@attrs.frozen
class Route:
    """
    Where a message goes: the users to push to, those to queue for (no
    socket in reach, or a queue not flushed yet); and, for the sender,
    those online and offline.
    """

    deliver: tuple[str, ...]
    queue: tuple[str, ...]
    online: tuple[str, ...]
    offline: tuple[str, ...]


class Delivery:
    """
    Routing and delivery of one node.
    """

    def __init__(
        self,
        sessions: Sessions,
        replica: Replica,
        offline: IOfflineMessages,
        conversations: Conversations,
        backend: IIMBackend,
    ) -> None:
        self._sessions = sessions
        self._replica = replica
        self._offline = offline
        self._conversations = conversations
        self._backend = backend
        self._node = backend.node_id

    def is_reachable(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on a node this one can
        reach now: this node, or another while the backend is connected.
        """
        return self._sessions.is_online(user_id) or (
            self._backend.connected and self._replica.is_online(user_id)
        )

    def route(self, users: Iterable[str]) -> Route:
        """
        Split C{users} into those to push to and those to queue for.
        """
        deliver: list[str] = []
        queue: list[str] = []
        online: list[str] = []
        offline: list[str] = []
        for user in users:
            reachable = self.is_reachable(user)
            (online if reachable else offline).append(user)
            waiting = self._offline.is_waiting(user)
            (deliver if reachable and not waiting else queue).append(user)
        return Route(tuple(deliver), tuple(queue), tuple(online), tuple(offline))

    def send_direct(self, message: DirectMessage) -> Route:
        """
        Send a direct message of this node's user to its targets.
        """
        route = self.route(message.target_ids)
        event = message.as_event()
        self.send(MessageSent(self._node, "message/direct", event, route.deliver, route.queue))
        return route

    def send_to_conversation(
        self, message: ConversationMessage, recipients: Iterable[str], calling: IIMClient | None
    ) -> Route:
        """
        Send a conversation message of this node's user to C{recipients}
        and to the sender's sockets but the C{calling} one, and keep it in
        the conversation's history.
        """
        route = self.route(recipients)
        sent = MessageSent(
            self._node,
            "message/conversation",
            message.as_event(),
            (*route.deliver, message.sender),
            route.queue,
            message.conversation_id,
        )
        self.send(sent, calling)
        return route

    def push(self, users: Iterable[str], push: Push, calling: str | None = None) -> None:
        """
        Push to every socket here of C{users}, but the C{calling} one.
        """
        for user in users:
            for socket_id, session in self._sessions.of_user(user).items():
                if socket_id != calling:
                    session.client.push(push)

    def send(self, message: MessageSent, calling: IIMClient | None = None) -> None:
        """
        Deliver a message of this node's user, but to the C{calling}
        socket, and tell the other nodes.
        """
        self._apply(message, None if calling is None else calling.id)
        self._backend.publish(message)

    def _apply(self, message: MessageSent, calling: str | None) -> None:
        """
        Keep C{message} in its conversation's history, push it to the
        sockets here of its recipients (but the C{calling} one) and queue
        it for the others.
        """
        data = dict(message.data)
        self._conversations.record(message.conversation_id, data)
        self.push(message.deliver, Push(message.event, data), calling)
        for user in message.queue:
            self._offline.enqueue(user, message.event, data)

    def store(
        self,
        thread: Thread,
        conversation: Conversation,
        calling: IIMClient | None,
        before: Iterable[str] = (),
        redo: Change | None = None,
    ) -> None:
        """
        Keep C{conversation} as the new version of C{thread}, push
        C{conversation/updated} to the sockets of its members and of those
        of C{before} who are members no more, but the C{calling} socket,
        and tell the other nodes. C{redo} makes the same change on another
        version, should another node have changed the conversation first
        (L{Conversations.rebase}).
        """
        change, notify = self._conversations.change(thread, conversation, before, redo)
        self.updated(conversation, notify, None if calling is None else calling.id)
        self._backend.publish(change)

    def updated(
        self, conversation: Conversation, notify: Iterable[str], calling: str | None = None
    ) -> None:
        """
        Push C{conversation/updated} to the sockets here of C{notify}.
        """
        data = {"conversation": conversation.as_json()}
        self.push(notify, Push("conversation/updated", data), calling)

    def flush(self, user_id: str) -> int:
        """
        Deliver C{user_id}'s queue to its sockets here, and have the other
        nodes deliver it to theirs and forget it.

        @return: how many messages were delivered.
        """
        queue = self._offline.take(user_id)
        for event, data in queue:
            self.push([user_id], Push(event, data))
        if queue:
            ids = tuple(data["id"] for _, data in queue)
            self._backend.publish(Flushed(self._node, user_id, ids))
        return len(queue)

    def remote_message(self, message: MessageSent) -> None:
        """
        A message of another node. A recipient with sockets here gets the
        messages queued for it at once, in order: it logged in here while
        the sender still thought it offline, or before its queue was
        flushed. A recipient whose last socket here just left, unknown to
        the sender, gets it queued again.
        """
        message_id = message.data["id"]
        if message.again:
            queue = tuple(
                user for user in message.queue if not self._offline.holds(user, message_id)
            )
            message = attrs.evolve(message, queue=queue)
        stranded = tuple(user for user in message.deliver if self._just_left(user))
        late = [
            user
            for user in message.deliver
            if self._offline.is_waiting(user) and self._sessions.is_online(user)
        ]
        if late:
            message = attrs.evolve(
                message,
                deliver=tuple(user for user in message.deliver if user not in late),
                queue=(*message.queue, *late),
            )
        self._apply(message, None)
        for user in dict.fromkeys(message.queue):
            if self._sessions.is_online(user):
                self.flush(user)
        if stranded:
            again = MessageSent(self._node, message.event, message.data, (), stranded, again=True)
            self.send(again, None)

    def _just_left(self, user_id: str) -> bool:
        """
        Whether C{user_id} had its last socket here until a moment ago, and
        has none anywhere now.
        """
        return self._sessions.left_lately(user_id) and not self.is_reachable(user_id)

    def flushed(self, event: Flushed) -> None:
        """
        Another node delivered C{event.ids} of a user's queue: push to the
        user's sockets here those still queued here, and forget them.
        """
        for event_name, data in self._offline.delivered_elsewhere(event.user, event.ids):
            self.push([event.user], Push(event_name, data))
