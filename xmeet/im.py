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

In a cluster, every node holds a replica of the IM state (who is online on
which node, the digests of other nodes' session tokens, conversations with
their histories, offline queues) and its
backend (L{xmeet.store.im_interfaces.IIMBackend}) tells the other nodes
every change: calls stay synchronous, and each node pushes to its own
sockets. A message for a user online on another node goes there through
the backend; a message queued on one node is delivered by whichever node
the user logs in on, which tells the others to forget it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from xmeet.config import Settings
from xmeet.core.conversation import (
    Conversation,
    ConversationMessage,
    DirectMessage,
    MessageLog,
    OfflineQueue,
)
from xmeet.core.ids import IdGenerator
from xmeet.core.im import (
    IMError,
    LogInRequest,
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
from xmeet.core.tokens import INVALID_TOKEN, TOKEN_EXPIRED, TokenVerifier
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
    Stamp,
)
from xmeet.store.im_memory import MemoryIMBackend

__all__ = ["DEFAULT_OFFLINE_LIMIT", "DEFAULT_OFFLINE_USERS", "IIMClient", "IMService"]

log = Logger()

#: Messages kept for one user without a logged-in socket; the oldest are
#: dropped beyond this.
DEFAULT_OFFLINE_LIMIT = 1000

#: Ids of queued messages remembered after their delivery, so that a
#: stored state read while they were being forgotten in Redis does not
#: queue them again.
DELIVERED_MEMORY = 10_000

#: Seconds after a user's last socket here left during which a message
#: another node sent to that socket (not knowing yet) is queued again
#: rather than lost.
LEFT_WINDOW = 10.0

#: Sessions of other nodes whose token bucket this node keeps for the
#: HTTP API; the least recently used go beyond this.
REMOTE_BUCKETS = 10_000

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
    bucket for sending; a JWT login's session ends at C{expires_at} (epoch
    milliseconds), by the C{expiry} timer.
    """

    token: str
    user_id: str
    client: IIMClient
    bucket: TokenBucket
    expires_at: int | None = None
    expiry: IDelayedCall | None = None


@attrs.define(eq=False)
class _RemoteSession:
    """
    A session held by another node, used here through the HTTP API, with
    this node's token bucket for it.
    """

    token: str
    user_id: str
    bucket: TokenBucket


def _digest(token: str) -> str:
    """
    What other nodes know of a session token: enough to recognise it, not
    to use it.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unchanged(conversation: Conversation) -> Conversation:
    """
    The change that keeps a conversation as it is: what a change that no
    longer applies is remade as (see L{IMService.im_rebase}).
    """
    return conversation


@attrs.define(eq=False)
class _Thread:
    """
    A conversation, its version and its bounded history.
    """

    conversation: Conversation
    log: MessageLog
    stamp: Stamp


def _ok(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _conversation_ack(conversation: Conversation) -> dict[str, Any]:
    return _ok({"conversation": conversation.as_json()})


@implementer(IIMListener)
class IMService:
    """
    Sessions, conversations and offline queues of one node, and its replica
    of the cluster's IM state.

    Limits come from C{settings}: C{max_message_size} bounds message
    contents and conversations, C{history_size} the messages kept per
    conversation, C{rate}/C{burst} the messages and conversations a session
    may create (a token bucket per logged-in socket, 429 beyond).

    With C{settings.jwt}, C{logIn} requires a JWT of the user
    (L{xmeet.core.tokens}): its session ends when the JWT expires, with a
    C{session/expired} event, unless C{session/refresh} brought a newer
    one; and the HTTP API takes such a JWT as its bearer.

    @param auth_secret: with a secret, C{logIn} requires the C{signature}
        of the user id (see L{xmeet.core.im.sign}); without it or a JWT
        verifier, anyone may log in as anyone, as with the original service.
    @param offline_limit: messages queued per offline user.
    @param offline_users: offline users with a queue.
    @param backend: how other nodes are told; by default there are none.
    """

    def __init__(
        self,
        clock: IReactorTime,
        settings: Settings,
        ids: IdGenerator,
        auth_secret: str | None = None,
        offline_limit: int = DEFAULT_OFFLINE_LIMIT,
        offline_users: int = DEFAULT_OFFLINE_USERS,
        backend: IIMBackend | None = None,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._ids = ids
        self._secret = None if auth_secret is None else auth_secret.encode("utf-8")
        self._tokens: TokenVerifier | None = settings.jwt
        self._offline_limit = offline_limit
        self._offline_users = offline_users
        self._backend: IIMBackend = backend if backend is not None else MemoryIMBackend()
        self._node = self._backend.node_id
        self._ready = True
        self._sessions: dict[str, _Session] = {}
        self._by_socket: dict[str, _Session] = {}
        self._by_user: dict[str, dict[str, _Session]] = {}
        self._threads: dict[str, _Thread] = {}
        self._memberships: dict[str, dict[str, None]] = {}
        self._offline: OrderedDict[str, OfflineQueue] = OrderedDict()
        self._remote: dict[str, set[str]] = {}
        self._node_users: dict[str, set[str]] = {}
        self._delivered: deque[str] = deque()
        self._left: OrderedDict[str, float] = OrderedDict()
        self._remote_sessions: dict[str, tuple[str, str, int | None]] = {}
        self._node_sessions: dict[str, set[str]] = {}
        self._remote_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._delivered_ids: set[str] = set()

    def start(self) -> Deferred[None]:
        """
        Load the shared state and hear the other nodes; calls are refused
        (503) until the backend says the node may serve.
        """
        self._ready = False
        starting = self._backend.start(self)
        starting.addCallback(self._serve)
        return starting

    def _serve(self, ignored: object) -> None:
        self._ready = True
        log.info("IM service ready")

    def stop(self) -> Deferred[None]:
        """
        Leave the cluster: the other nodes count this node's users offline.
        """
        return self._backend.stop()

    def is_online(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on this node.
        """
        return user_id in self._by_user

    def is_reachable(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on a node this one can
        reach now: this node, or another while the backend is connected.
        """
        return user_id in self._by_user or (self._backend.connected and user_id in self._remote)

    def queued(self, user_id: str) -> int:
        """
        How many messages wait for C{user_id} to log in.
        """
        return len(self._offline.get(user_id, ()))

    @property
    def ready(self) -> bool:
        """
        Whether the service answers calls: in a cluster, once its replica
        has been loaded.
        """
        return self._ready

    def _check_ready(self) -> None:
        if not self._ready:
            raise IMError.of(503, "the IM service is loading its state; try again shortly")

    # Sessions

    def log_in(self, client: IIMClient, payload: object) -> dict[str, Any]:
        """
        C{logIn}: the bare C{{userId, socketId, sessionToken}} object, with
        C{expiresAt} (epoch milliseconds) after a JWT login.

        A socket holds one session: logging in again ends the previous one
        (its token stops working).
        """
        self._check_ready()
        request = parse_log_in(payload)
        expires_at = self._check_credentials(request)
        if request.socket_id != client.id:
            raise IMError.of(403, "socketId is not the id of this socket")
        self.socket_closed(client)
        session = _Session(
            secrets.token_hex(16),
            request.user_id,
            client,
            TokenBucket(self._settings.rate, self._settings.burst, self._clock.seconds()),
            expires_at,
        )
        self._sessions[session.token] = session
        self._by_socket[client.id] = session
        sockets = self._by_user.setdefault(session.user_id, {})
        sockets[client.id] = session
        self._left.pop(session.user_id, None)
        if len(sockets) == 1:
            self._backend.publish(PresenceChanged(self._node, session.user_id, True))
        self._backend.publish(
            SessionChanged(self._node, _digest(session.token), session.user_id, expires_at)
        )
        self._schedule_expiry(session)
        log.info("user {user!r} logged in on {socket}", user=session.user_id, socket=client.id)
        ack = {"userId": session.user_id, "socketId": client.id, "sessionToken": session.token}
        if expires_at is not None:
            ack["expiresAt"] = expires_at
        return ack

    def _check_credentials(self, request: LogInRequest) -> int | None:
        """
        Refuse (401) a C{logIn} without the proof the server asks for: a
        JWT of the user, or the signature of the user id.

        @return: when the session of a JWT login ends, in epoch
            milliseconds; C{None} for a session that does not expire.
        """
        if self._tokens is not None:
            claims = self._tokens.verify(request.token, self._clock.seconds())
            if claims.user_id != request.user_id:
                raise IMError(401, INVALID_TOKEN, "the token's sub is not the userId")
            return claims.expires_at
        if self._secret is not None:
            check_signature(self._secret, request.user_id, request.signature)
        return None

    def _schedule_expiry(self, session: _Session) -> None:
        """
        (Re)arm the timer that ends C{session} when its JWT expires.
        """
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        session.expiry = None
        if session.expires_at is not None:
            delay = max(0.0, session.expires_at / 1000 - self._clock.seconds())
            session.expiry = self._clock.callLater(delay, self._expire, session)

    def _expire(self, session: _Session) -> None:
        """
        The JWT of C{session} expired: the session ends, and its socket,
        which stays connected, hears of it.
        """
        if self._sessions.get(session.token) is not session:
            return
        log.info(
            "session of {user!r} on {socket} expired",
            user=session.user_id,
            socket=session.client.id,
        )
        self._end(session)
        session.client.push("session/expired", {"sessionToken": session.token})

    def _expired(self, expires_at: int | None) -> bool:
        return expires_at is not None and self._now() >= expires_at

    def session_refresh(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{session/refresh} C{{sessionToken, token}}: the session lasts
        until the new JWT's C{exp} (plus the leeway), which the ack gives
        as C{expiresAt}. The JWT must be good now and for the session's
        user (403 for another user's).
        """
        fields = require_object(payload)
        session = self._authenticate(client, fields)
        if isinstance(session, _RemoteSession):
            raise IMError.of(403, "this session is held by another node")
        if self._tokens is None:
            raise IMError.of(400, "this server takes no JWT logins: sessions do not expire")
        claims = self._tokens.verify(fields.get("token"), self._clock.seconds())
        if claims.user_id != session.user_id:
            raise IMError.of(403, "the token is for another user")
        session.expires_at = claims.expires_at
        self._schedule_expiry(session)
        self._backend.publish(
            SessionChanged(self._node, _digest(session.token), session.user_id, session.expires_at)
        )
        return _ok({"expiresAt": session.expires_at})

    def flush_offline(self, client: IIMClient) -> int:
        """
        Push the messages queued while the user of C{client}'s session had
        no socket to every socket of that user, oldest first, and forget
        them (on every node). Call it right after acking C{logIn}.

        @return: how many messages were delivered.
        """
        session = self._by_socket.get(client.id)
        if session is None:
            return 0
        return self._flush(session.user_id)

    def _flush(self, user_id: str) -> int:
        """
        Deliver C{user_id}'s queue to its sockets here, and have the other
        nodes deliver it to theirs and forget it.
        """
        queue = self._offline.pop(user_id, None) or ()
        for event, data in queue:
            self._push(self._by_user[user_id].values(), event, data)
        if queue:
            ids = tuple(data["id"] for _, data in queue)
            self._remember_delivered(ids)
            self._backend.publish(Flushed(self._node, user_id, ids))
        return len(queue)

    def _remember_delivered(self, ids: Iterable[str]) -> None:
        for message_id in ids:
            self._delivered.append(message_id)
            self._delivered_ids.add(message_id)
        while len(self._delivered) > DELIVERED_MEMORY:
            self._delivered_ids.discard(self._delivered.popleft())

    def log_out(self, client: IIMClient | None, payload: object) -> dict[str, Any]:
        """
        C{logOut}: end the session; the socket stays connected.
        """
        session = self._authenticate(client, require_object(payload))
        if isinstance(session, _RemoteSession):
            raise IMError.of(403, "this session is held by another node")
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
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        session.expiry = None
        self._backend.publish(SessionChanged(self._node, _digest(session.token), None))
        del self._sessions[session.token]
        del self._by_socket[session.client.id]
        sockets = self._by_user[session.user_id]
        del sockets[session.client.id]
        if not sockets:
            del self._by_user[session.user_id]
            self._backend.publish(PresenceChanged(self._node, session.user_id, False))
            self._remember_left(session.user_id)
        log.info(
            "user {user!r} logged out of {socket}", user=session.user_id, socket=session.client.id
        )

    def _remember_left(self, user_id: str) -> None:
        now = self._clock.seconds()
        self._left.pop(user_id, None)
        self._left[user_id] = now
        while next(iter(self._left.values())) < now - LEFT_WINDOW:
            self._left.popitem(last=False)

    def _just_left(self, user_id: str) -> bool:
        """
        Whether C{user_id} had its last socket here until a moment ago, and
        has none anywhere now.
        """
        left = self._left.get(user_id)
        return (
            left is not None
            and self._clock.seconds() - left < LEFT_WINDOW
            and not self.is_reachable(user_id)
        )

    def _authenticate(
        self, client: IIMClient | None, fields: Mapping[str, Any]
    ) -> _Session | _RemoteSession:
        """
        The session of the call's token, which must be used from its own
        socket; C{client} is C{None} for the HTTP API, where the bearer
        token alone names the session, wherever in the cluster it is held,
        or is a JWT of the user (with JWT logins). A session past its
        expiry is ended (401 C{token_expired}), should its timer be late.
        """
        self._check_ready()
        token = session_token(fields)
        session = self._sessions.get(token)
        if session is not None:
            if client is not None and session.client.id != client.id:
                raise IMError.of(403, "this sessionToken belongs to another socket")
            if self._expired(session.expires_at):
                self._expire(session)
                raise IMError(401, TOKEN_EXPIRED, "the session has expired")
            return session
        if client is None and self._tokens is not None and "." in token:
            claims = self._tokens.verify(token, self._clock.seconds())
            return _RemoteSession(token, claims.user_id, self._remote_bucket(_digest(token)))
        digest = _digest(token)
        remote = self._remote_sessions.get(digest)
        if remote is None:
            raise IMError.of(401, "unknown sessionToken")
        if client is not None:
            raise IMError.of(403, "this sessionToken belongs to another socket")
        user, _, expires_at = remote
        if self._expired(expires_at):
            raise IMError(401, TOKEN_EXPIRED, "the session has expired")
        return _RemoteSession(token, user, self._remote_bucket(digest))

    def _remote_bucket(self, digest: str) -> TokenBucket:
        """
        This node's token bucket for the HTTP calls of a session held
        elsewhere (or of a JWT bearer), the most recently used kept.
        """
        bucket = self._remote_buckets.pop(digest, None) or TokenBucket(
            self._settings.rate, self._settings.burst, self._clock.seconds()
        )
        self._remote_buckets[digest] = bucket
        while len(self._remote_buckets) > REMOTE_BUCKETS:
            self._remote_buckets.popitem(last=False)
        return bucket

    def _take_token(self, session: _Session | _RemoteSession) -> None:
        if not session.bucket.take(self._clock.seconds()):
            raise IMError.of(429, f"more than {self._settings.rate:g} messages a second")

    # Delivery

    @staticmethod
    def _push(sessions: Iterable[_Session], event: str, data: dict[str, Any]) -> None:
        for session in sessions:
            session.client.push(event, data)

    def _route(self, users: Iterable[str]) -> tuple[list[str], list[str], list[str], list[str]]:
        """
        Split C{users}: those to push to and those to queue for (no socket
        in reach, or a queue not flushed yet, which keeps the order); and
        those online and offline, for the ack.
        """
        deliver: list[str] = []
        queue: list[str] = []
        online: list[str] = []
        offline: list[str] = []
        for user in users:
            reachable = self.is_reachable(user)
            (online if reachable else offline).append(user)
            (deliver if reachable and user not in self._offline else queue).append(user)
        return deliver, queue, online, offline

    def _send(self, message: MessageSent, calling: IIMClient | None) -> None:
        """
        Apply a message of this node's user and tell the other nodes.
        """
        self._apply_message(message, None if calling is None else calling.id)
        self._backend.publish(message)

    def _apply_message(self, message: MessageSent, calling: str | None) -> None:
        """
        Keep C{message} in its conversation's history, push it to the
        sockets here of its recipients (but the C{calling} one) and queue
        it for the others.
        """
        data = dict(message.data)
        if message.conversation_id is not None:
            thread = self._threads.get(message.conversation_id)
            if thread is not None:
                thread.log.append(data["id"], data)
        for user in message.deliver:
            for socket_id, session in self._by_user.get(user, {}).items():
                if socket_id != calling:
                    session.client.push(message.event, data)
        for user in message.queue:
            self._enqueue(user, message.event, data)

    def _enqueue(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        queue = self._offline.pop(user_id, None)
        if queue is None:
            queue = OfflineQueue(self._offline_limit, self._settings.offline_bytes)
        if queue.append(event, data):
            log.warn("offline queue of {user!r} full: oldest messages dropped", user=user_id)
        self._offline[user_id] = queue
        while len(self._offline) > self._offline_users:
            dropped, _ = self._offline.popitem(last=False)
            log.warn("too many offline users: queue of {user!r} dropped", user=dropped)

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
        deliver, queue, online, offline = self._route(request.target_ids)
        self._send(
            MessageSent(
                self._node, "message/direct", message.as_event(), tuple(deliver), tuple(queue)
            ),
            None,
        )
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
        recipients = [
            member
            for member in thread.conversation.members
            if member != session.user_id and member not in request.ignore_ids
        ]
        deliver, queue, online, offline = self._route(recipients)
        self._send(
            MessageSent(
                self._node,
                "message/conversation",
                message.as_event(),
                (*deliver, session.user_id),
                tuple(queue),
                request.conversation_id,
            ),
            client,
        )
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
        redo: Callable[[Conversation], Conversation] | None = None,
    ) -> None:
        """
        Keep C{conversation} as the new version of C{thread}, push
        C{conversation/updated} to the sockets of its members and of those
        of C{before} who are members no more, but the calling socket, and
        tell the other nodes. C{redo} makes the same change on another
        version, should another node have changed the conversation first,
        checking again there that the caller may make it.
        """
        former = tuple(user for user in before if not conversation.is_member(user))
        base = thread.stamp
        stamp = Stamp(base.number + 1, self._node)
        self._replace(thread, conversation, stamp, former, None if client is None else client.id)
        change = ConversationChanged(self._node, stamp, conversation, former, base, redo)
        self._backend.publish(change)

    def _replace(
        self,
        thread: _Thread,
        conversation: Conversation,
        stamp: Stamp,
        former: Iterable[str],
        calling: str | None,
    ) -> None:
        """
        Make C{conversation} the state of C{thread} here and push
        C{conversation/updated} to this node's sockets of its members and
        of C{former}, but C{calling}.
        """
        former = [user for user in former if not conversation.is_member(user)]
        self._unindex(conversation.id, former)
        thread.conversation = conversation
        thread.stamp = stamp
        for member in conversation.members:
            self._memberships.setdefault(member, {})[conversation.id] = None
        data = {"conversation": conversation.as_json()}
        for user in dict.fromkeys((*former, *conversation.members)):
            for socket_id, other in self._by_user.get(user, {}).items():
                if socket_id != calling:
                    other.client.push("conversation/updated", data)

    def _unindex(self, conversation_id: str, users: Iterable[str]) -> None:
        for user in users:
            conversations = self._memberships.get(user, {})
            conversations.pop(conversation_id, None)
            if not conversations:
                self._memberships.pop(user, None)

    def _message_log(self) -> MessageLog:
        """
        An empty conversation history, bounded in messages and in bytes.
        """
        return MessageLog(self._settings.history_size, self._settings.history_bytes)

    def _new_thread(self, conversation: Conversation, stamp: Stamp) -> _Thread:
        thread = _Thread(conversation, self._message_log(), stamp)
        self._threads[conversation.id] = thread
        return thread

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
        thread = self._new_thread(conversation, Stamp(0, self._node))
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
        actor = session.user_id
        user = request.user_id or actor

        def join(conversation: Conversation) -> Conversation:
            if user != actor:
                conversation.check_change(actor, ["members"])
            return conversation.with_member(user)

        conversation = join(thread.conversation)
        conversation.check_size(self._settings.max_message_size)
        if conversation is not thread.conversation:
            self._store(thread, conversation, client, redo=join)
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
        leaver = session.user_id
        conversation = thread.conversation.without_member(leaver)
        self._store(
            thread, conversation, client, [leaver], lambda other: other.without_member(leaver)
        )
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
        actor = session.user_id
        changes = request.changes

        def update(conversation: Conversation) -> Conversation:
            conversation.check_change(actor, changes)
            return conversation.updated(changes)

        conversation = update(before)
        conversation.check_size(self._settings.max_message_size)
        if conversation != before:
            self._store(thread, conversation, client, before.members, update)
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

    # The other nodes

    def im_event(self, event: IMEvent) -> None:
        """
        Apply another node's change to the replica and push it to the
        sockets of this node.
        """
        if isinstance(event, PresenceChanged):
            self._presence(event.node, event.user, event.online)
        elif isinstance(event, SessionChanged):
            self._session(event.node, event.digest, event.user, event.expires_at)
        elif isinstance(event, NodePresence):
            self._node_gone(event.node)
            for user in event.users:
                self._presence(event.node, user, True)
            expiries = dict(event.expiries)
            for digest, user in event.sessions:
                self._session(event.node, digest, user, expiries.get(digest))
        elif isinstance(event, NodeGone):
            self._node_gone(event.node)
        elif isinstance(event, MessageSent):
            self._remote_message(event)
        elif isinstance(event, Flushed):
            self._flushed(event)
        else:
            self._remote_change(event)

    def _presence(self, node: str, user: str, online: bool) -> None:
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

    def _session(
        self, node: str, digest: str, user: str | None, expires_at: int | None = None
    ) -> None:
        if node == self._node:
            return
        if user is not None:
            self._remote_sessions[digest] = (user, node, expires_at)
            self._node_sessions.setdefault(node, set()).add(digest)
            return
        self._remote_sessions.pop(digest, None)
        self._remote_buckets.pop(digest, None)
        digests = self._node_sessions.get(node, set())
        digests.discard(digest)
        if not digests:
            self._node_sessions.pop(node, None)

    def _node_gone(self, node: str) -> None:
        for user in list(self._node_users.get(node, ())):
            self._presence(node, user, False)
        for digest in list(self._node_sessions.get(node, ())):
            self._session(node, digest, None)

    def _remote_message(self, message: MessageSent) -> None:
        """
        A message of another node. A recipient with sockets here gets the
        messages queued for it at once, in order: it logged in here while
        the sender still thought it offline, or before its queue was
        flushed. A recipient whose last socket here just left, unknown to
        the sender, gets it queued again.
        """
        if message.again:
            message = attrs.evolve(
                message,
                queue=tuple(
                    user
                    for user in message.queue
                    if all(
                        data["id"] != message.data["id"] for _, data in self._offline.get(user, ())
                    )
                ),
            )
        stranded = tuple(user for user in message.deliver if self._just_left(user))
        late = [user for user in message.deliver if user in self._offline and user in self._by_user]
        if late:
            message = attrs.evolve(
                message,
                deliver=tuple(user for user in message.deliver if user not in late),
                queue=(*message.queue, *late),
            )
        self._apply_message(message, None)
        for user in dict.fromkeys(message.queue):
            if user in self._by_user:
                self._flush(user)
        if stranded:
            again = MessageSent(self._node, message.event, message.data, (), stranded, again=True)
            self._send(again, None)

    def _flushed(self, event: Flushed) -> None:
        """
        Another node delivered C{event.ids} of a user's queue: push to the
        user's sockets here those still queued here, and forget them.
        """
        self._remember_delivered(event.ids)
        queue = self._offline.get(event.user)
        if queue is None:
            return
        ids = set(event.ids)
        delivered = [entry for entry in queue if entry[1]["id"] in ids]
        kept = queue.without(ids)
        if kept:
            self._offline[event.user] = kept
        else:
            del self._offline[event.user]
        for event_name, data in delivered:
            self._push(self._by_user.get(event.user, {}).values(), event_name, data)

    def _remote_change(self, change: ConversationChanged) -> None:
        """
        Another node's version of a conversation, kept if it is newer than
        this node's.
        """
        conversation = change.conversation
        thread = self._threads.get(conversation.id)
        if thread is None:
            thread = self._new_thread(conversation, change.stamp)
        elif change.stamp <= thread.stamp:
            return
        former = (*change.former, *thread.conversation.members)
        self._replace(thread, conversation, change.stamp, former, None)

    def im_rebase(self, change: ConversationChanged, stored: ConversationState) -> None:
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
            return
        conversation = stored.conversation
        redo = change.redo
        try:
            conversation = redo(conversation)
            conversation.check_size(self._settings.max_message_size)
        except IMError as error:
            log.info(
                "change of conversation {conversation} lost to a concurrent one: {why}",
                conversation=conversation.id,
                why=error.message,
            )
            conversation = stored.conversation
            redo = _unchanged
        base = max(stored.stamp, thread.stamp)
        stamp = Stamp(base.number + 1, self._node)
        former = thread.conversation.members
        if conversation == thread.conversation:
            thread.stamp = stamp
        else:
            self._replace(thread, conversation, stamp, former, None)
        former = tuple(user for user in former if not conversation.is_member(user))
        rebased = ConversationChanged(self._node, stamp, conversation, former, stored.stamp, redo)
        self._backend.publish(rebased)

    def im_snapshot(self, snapshot: IMSnapshot) -> None:
        """
        The stored state replaces the replica's view: newer conversations,
        their histories, the offline queues (delivered at once to users
        with sockets here), the other nodes' users and sessions. Queued
        messages this node knows were delivered are not queued again: the
        state may have been read before Redis forgot them.
        """
        for state in snapshot.conversations:
            self._restore(state)
        self._offline = OrderedDict()
        for user, entries in snapshot.offline.items():
            seen: set[str] = set()
            for event, data in entries:
                if data["id"] not in self._delivered_ids and data["id"] not in seen:
                    seen.add(data["id"])
                    self._enqueue(user, event, dict(data))
        self._remote = {}
        self._node_users = {}
        for node, users in snapshot.presence.items():
            for user in users:
                self._presence(node, user, True)
        self._remote_sessions = {}
        self._node_sessions = {}
        for node, sessions in snapshot.sessions.items():
            expiries = snapshot.expiries.get(node, {})
            for digest, user in sessions.items():
                self._session(node, digest, user, expiries.get(digest))
        for user in [user for user in self._offline if user in self._by_user]:
            self._flush(user)

    def _restore(self, state: ConversationState) -> None:
        conversation = state.conversation
        thread = self._threads.get(conversation.id)
        if thread is None:
            thread = self._new_thread(conversation, state.stamp)
            self._replace(thread, conversation, state.stamp, (), None)
        elif state.stamp > thread.stamp:
            self._replace(thread, conversation, state.stamp, thread.conversation.members, None)
        thread.log = self._message_log()
        for entry in state.history:
            thread.log.append(entry["id"], dict(entry))
