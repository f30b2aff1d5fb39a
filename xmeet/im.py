# -*- test-case-name: tests.test_im -*-
"""
The IM service of one node: sessions, conversations, delivery and offline
queues (PROTOCOL.md section 3), independent of any transport.

Front ends translate and nothing more. A Socket.IO handler is one line per
event::

    ack(service.conversation_get(client, payload))

with C{except IMError as error: ack(error.as_ack())} (or an C{error} event
when the client asked for no ack); the HTTP API calls the same methods with
C{client=None} and the bearer token put in the payload as C{sessionToken}.
Every method checks everything before it changes anything, so an
L{IMError} always means nothing happened.

After acking a successful C{logIn}, the handler calls L{IMService.flush_offline}
for the socket, in the same reactor turn: the queued messages then arrive
after the ack, in order, and once. Messages for a user arriving between the
two calls join the queue, so they stay in order too.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from xmeet.config import Settings
from xmeet.core.ids import IdGenerator
from xmeet.core.im import (
    Conversation,
    ConversationMessage,
    DirectMessage,
    IMError,
    MessageLog,
    check_signature,
    conversation_id_of,
    parse_conversation_message,
    parse_direct_message,
    parse_history,
    parse_join,
    parse_log_in,
    parse_new_conversation,
    parse_update,
    require_object,
    session_token,
)
from xmeet.core.limits import TokenBucket

__all__ = ["DEFAULT_OFFLINE_LIMIT", "DEFAULT_OFFLINE_USERS", "IIMClient", "IMService"]

log = Logger()

#: Messages kept for one user without a logged-in socket; the oldest are
#: dropped beyond this.
DEFAULT_OFFLINE_LIMIT = 1000

#: Users with queued messages; beyond this, the queue of the user who was
#: sent something least recently is dropped, so clients sending to invented
#: user ids cannot exhaust memory.
DEFAULT_OFFLINE_USERS = 100_000


class IIMClient(Interface):
    """
    One connected client of the IM service: a Socket.IO socket, adapted.
    """

    id = Attribute("The socket id, unique on this node, as the client knows it (C{socketId}).")

    def push(event: str, data: dict[str, Any]) -> None:
        """
        Emit C{event} with C{data} to this client; must not raise nor block.
        The same C{data} object goes to every recipient: do not change it.
        """


@attrs.define(eq=False)
class _Session:
    """
    One successful C{logIn}: a user on a socket, with that socket's token
    bucket for sending.
    """

    token: str
    user_id: str
    client: IIMClient
    bucket: TokenBucket


@attrs.define(eq=False)
class _Thread:
    """
    A conversation and its bounded history.
    """

    conversation: Conversation
    log: MessageLog


def _ok(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _conversation_ack(conversation: Conversation) -> dict[str, Any]:
    return _ok({"conversation": conversation.as_json()})


class IMService:
    """
    Sessions, conversations and offline queues of one node.

    Limits come from C{settings}: C{max_message_size} bounds message
    contents and conversations, C{history_size} the messages kept per
    conversation, C{rate}/C{burst} the messages and conversations a session
    may create (a token bucket per logged-in socket, 429 beyond).

    @param auth_secret: with a secret, C{logIn} requires the C{signature}
        of the user id (see L{xmeet.core.im.sign}); without, anyone may log
        in as anyone, as with the original service.
    @param offline_limit: messages queued per offline user.
    @param offline_users: offline users with a queue.
    """

    def __init__(
        self,
        clock: IReactorTime,
        settings: Settings,
        ids: IdGenerator,
        auth_secret: str | None = None,
        offline_limit: int = DEFAULT_OFFLINE_LIMIT,
        offline_users: int = DEFAULT_OFFLINE_USERS,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._ids = ids
        self._secret = None if auth_secret is None else auth_secret.encode("utf-8")
        self._offline_limit = offline_limit
        self._offline_users = offline_users
        self._sessions: dict[str, _Session] = {}
        self._by_socket: dict[str, _Session] = {}
        self._by_user: dict[str, dict[str, _Session]] = {}
        self._threads: dict[str, _Thread] = {}
        self._memberships: dict[str, dict[str, None]] = {}
        self._offline: OrderedDict[str, deque[tuple[str, dict[str, Any]]]] = OrderedDict()

    def is_online(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on this node.
        """
        return user_id in self._by_user

    def queued(self, user_id: str) -> int:
        """
        How many messages wait for C{user_id} to log in.
        """
        return len(self._offline.get(user_id, ()))

    # Sessions

    def log_in(self, client: IIMClient, payload: object) -> dict[str, Any]:
        """
        C{logIn}: the bare C{{userId, socketId, sessionToken}} object.

        A socket holds one session: logging in again ends the previous one
        (its token stops working).
        """
        request = parse_log_in(payload)
        if self._secret is not None:
            check_signature(self._secret, request.user_id, request.signature)
        if request.socket_id != client.id:
            raise IMError.of(403, "socketId is not the id of this socket")
        self.socket_closed(client)
        session = _Session(
            secrets.token_hex(16),
            request.user_id,
            client,
            TokenBucket(self._settings.rate, self._settings.burst, self._clock.seconds()),
        )
        self._sessions[session.token] = session
        self._by_socket[client.id] = session
        self._by_user.setdefault(session.user_id, {})[client.id] = session
        log.info("user {user!r} logged in on {socket}", user=session.user_id, socket=client.id)
        return {"userId": session.user_id, "socketId": client.id, "sessionToken": session.token}

    def flush_offline(self, client: IIMClient) -> int:
        """
        Push the messages queued while the user of C{client}'s session had
        no socket to every socket of that user, oldest first, and forget
        them. Call it right after acking C{logIn}.

        @return: how many messages were delivered.
        """
        session = self._by_socket.get(client.id)
        if session is None:
            return 0
        queue = self._offline.pop(session.user_id, None) or ()
        for event, data in queue:
            self._push(self._by_user[session.user_id].values(), event, data)
        return len(queue)

    def log_out(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{logOut}: end the session; the socket stays connected.
        """
        session = self._authenticate(client, require_object(payload))
        self._end(session)
        return _ok({})

    def socket_closed(self, client: IIMClient) -> None:
        """
        The socket went away: end its session, if it had one.
        """
        session = self._by_socket.get(client.id)
        if session is not None:
            self._end(session)

    def _end(self, session: _Session) -> None:
        del self._sessions[session.token]
        del self._by_socket[session.client.id]
        sockets = self._by_user[session.user_id]
        del sockets[session.client.id]
        if not sockets:
            del self._by_user[session.user_id]
        log.info(
            "user {user!r} logged out of {socket}", user=session.user_id, socket=session.client.id
        )

    def _authenticate(self, client: IIMClient | None, fields: Mapping[str, Any]) -> _Session:
        """
        The session of the call's token, which must be used from its own
        socket; C{client} is C{None} for the HTTP API, where the bearer
        token alone names the session.
        """
        session = self._sessions.get(session_token(fields))
        if session is None:
            raise IMError.of(401, "unknown sessionToken")
        if client is not None and session.client.id != client.id:
            raise IMError.of(403, "this sessionToken belongs to another socket")
        return session

    def _take_token(self, session: _Session) -> None:
        if not session.bucket.take(self._clock.seconds()):
            raise IMError.of(429, f"more than {self._settings.rate:g} messages a second")

    # Delivery

    @staticmethod
    def _push(sessions: Iterable[_Session], event: str, data: dict[str, Any]) -> None:
        for session in sessions:
            session.client.push(event, data)

    def _deliver(self, user_id: str, event: str, data: dict[str, Any]) -> bool:
        """
        Push to every socket of C{user_id}, or queue if it has none (or has
        a queue not flushed yet, which keeps the order).

        @return: whether the user is online.
        """
        sockets = self._by_user.get(user_id)
        if sockets and user_id not in self._offline:
            self._push(sockets.values(), event, data)
        else:
            self._enqueue(user_id, event, data)
        return bool(sockets)

    def _enqueue(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        queue = self._offline.pop(user_id, None)
        if queue is None:
            queue = deque(maxlen=self._offline_limit)
        elif len(queue) == queue.maxlen:
            log.warn("offline queue of {user!r} full: oldest message dropped", user=user_id)
        queue.append((event, data))
        self._offline[user_id] = queue
        while len(self._offline) > self._offline_users:
            dropped, _ = self._offline.popitem(last=False)
            log.warn("too many offline users: queue of {user!r} dropped", user=dropped)

    def _others(self, session: _Session, client: IIMClient | None) -> list[_Session]:
        """
        The sockets of C{session}'s user but the calling one.
        """
        calling = None if client is None else client.id
        return [
            other
            for socket_id, other in self._by_user.get(session.user_id, {}).items()
            if socket_id != calling
        ]

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    # Messages

    def direct_message(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{message/direct}: to every socket of every target, queued for the
        targets without one.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_direct_message(fields, self._settings.max_message_size)
        self._take_token(session)
        message = DirectMessage(
            self._ids.next_id(),
            session.user_id,
            request.target_ids,
            request.type,
            request.text_content,
            self._now(),
        )
        event = message.as_event()
        online: list[str] = []
        offline: list[str] = []
        for target in request.target_ids:
            (online if self._deliver(target, "message/direct", event) else offline).append(target)
        sent = list(request.target_ids)
        return _ok({"id": message.id, "sent": sent, "online": online, "offline": offline}, 201)

    def conversation_message(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{message/conversation}: to every member but the sender and
        C{ignoreIds}, and to the sender's other sockets; kept in history.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_conversation_message(fields, self._settings.max_message_size)
        thread = self._thread(request.conversation_id)
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "only members may send to this conversation")
        self._take_token(session)
        message = ConversationMessage(
            self._ids.next_id(),
            request.conversation_id,
            session.user_id,
            request.type,
            request.content,
            self._now(),
        )
        event = message.as_event()
        thread.log.append(message.id, event)
        online: list[str] = []
        offline: list[str] = []
        for member in thread.conversation.members:
            if member != session.user_id and member not in request.ignore_ids:
                delivered = self._deliver(member, "message/conversation", event)
                (online if delivered else offline).append(member)
        self._push(self._others(session, client), "message/conversation", event)
        return _ok({"id": message.id, "sent": {"online": online, "offline": offline}}, 201)

    # Conversations

    def _thread(self, conversation_id: str) -> _Thread:
        thread = self._threads.get(conversation_id)
        if thread is None:
            raise IMError.of(404, "no such conversation")
        return thread

    def _store(
        self,
        thread: _Thread,
        conversation: Conversation,
        client: IIMClient | None,
        before: Iterable[str] = (),
    ) -> None:
        """
        Keep C{conversation} as the new state of C{thread} and push
        C{conversation/updated} to the sockets of its members and of those
        of C{before} who are members no more, but the calling socket.
        """
        former = [user for user in before if not conversation.is_member(user)]
        self._unindex(conversation.id, former)
        thread.conversation = conversation
        for member in conversation.members:
            self._memberships.setdefault(member, {})[conversation.id] = None
        data = {"conversation": conversation.as_json()}
        calling = None if client is None else client.id
        for user in (*former, *conversation.members):
            for socket_id, other in self._by_user.get(user, {}).items():
                if socket_id != calling:
                    other.client.push("conversation/updated", data)

    def _unindex(self, conversation_id: str, users: Iterable[str]) -> None:
        for user in users:
            conversations = self._memberships.get(user, {})
            conversations.pop(conversation_id, None)
            if not conversations:
                self._memberships.pop(user, None)

    def conversation_add(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/add}: a new conversation, announced to its members.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_new_conversation(fields, self._settings.max_message_size)
        conversation = Conversation.create(
            self._ids.next_id(), session.user_id, request, self._now()
        )
        conversation.check_size(self._settings.max_message_size)
        self._take_token(session)
        thread = _Thread(conversation, MessageLog(self._settings.history_size))
        self._threads[conversation.id] = thread
        self._store(thread, conversation, client)
        return _ok({"id": conversation.id, "conversation": conversation.as_json()}, 201)

    def conversation_join(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/join}: any logged-in user may join. With C{userId}
        (the HTTP API's C{POST .../members}), add that user, which takes the
        right to change C{members}.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_join(fields)
        thread = self._thread(request.conversation_id)
        user = request.user_id or session.user_id
        if user != session.user_id:
            thread.conversation.check_change(session.user_id, ["members"])
        conversation = thread.conversation.with_member(user)
        conversation.check_size(self._settings.max_message_size)
        if conversation is not thread.conversation:
            self._store(thread, conversation, client)
        return _conversation_ack(conversation)

    def conversation_leave(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/leave}: members only (403 for others); the leaver
        stops being an admin too.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        thread = self._thread(conversation_id_of(fields))
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "not a member of this conversation")
        conversation = thread.conversation.without_member(session.user_id)
        self._store(thread, conversation, client, [session.user_id])
        return _conversation_ack(conversation)

    def conversation_update(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/update}: members change unprotected fields, admins
        any field but C{id} and C{createdAt}.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_update(fields, self._settings.max_message_size)
        thread = self._thread(request.conversation_id)
        before = thread.conversation
        before.check_change(session.user_id, request.changes)
        conversation = before.updated(request.changes)
        conversation.check_size(self._settings.max_message_size)
        if conversation != before:
            self._store(thread, conversation, client, before.members)
        return _conversation_ack(conversation)

    def conversation_get(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/get}: any logged-in user may look a conversation up,
        as any may join it.
        """
        fields = require_object(payload)
        self._authenticate(client, fields)
        return _conversation_ack(self._thread(conversation_id_of(fields)).conversation)

    def conversation_list(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/list}: the caller's conversations, oldest membership
        first.
        """
        session = self._authenticate(client, require_object(payload))
        conversations = [
            self._threads[conversation_id].conversation.as_json()
            for conversation_id in self._memberships.get(session.user_id, {})
        ]
        return _ok({"conversations": conversations})

    def conversation_history(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{conversation/history}: members only; newest first.
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        request = parse_history(fields)
        thread = self._thread(request.conversation_id)
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "only members may read this conversation")
        return _ok({"messages": thread.log.page(request.before, request.limit)})
