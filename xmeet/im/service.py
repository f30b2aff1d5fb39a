# -*- test-case-name: tests.test_im -*-
"""
The IM service of one node (PROTOCOL.md section 3), independent of any
transport: the facade the front ends call, one method per call of the
protocol.

A front end translates and nothing more. A Socket.IO handler is one line
per event::

    ack(render(service.conversation_get(Caller.socket(client, payload), payload)))

with C{except IMError as error: ack(error_ack(error))} (or an C{error}
event when the client asked for no ack), where C{render} and C{error_ack}
are L{xmeet.handlers.im_wire}'s; the HTTP API calls the same methods with
C{Caller.bearer(token)}. Every method checks everything before it changes
anything, so an L{IMError} always means nothing happened.

After acking a successful C{logIn}, the handler calls L{IMService.flush_offline}
for the socket, in the same reactor turn: the queued messages then arrive
after the ack, in order, and once. Messages for a user arriving between the
two calls join the queue, so they stay in order too.

In a cluster, every node holds a replica of the IM state (who is online on
which node, the digests of other nodes' session tokens, conversations with
their histories, offline queues) and its backend
(L{xmeet.store.im_interfaces.IIMBackend}) tells the other nodes every
change: calls stay synchronous, and each node pushes to its own sockets.
A message for a user online on another node goes there through the
backend; a message queued on one node is delivered by whichever node the
user logs in on, which tells the others to forget it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from xmeet.config import Settings
from xmeet.core.conversation import Conversation, ConversationMessage, DirectMessage
from xmeet.core.ids import IdGenerator
from xmeet.core.im import (
    IMError,
    conversation_id_of,
    parse_conversation_message,
    parse_direct_message,
    parse_history,
    parse_join,
    parse_log_in,
    parse_new_conversation,
    parse_update,
    require_object,
)
from xmeet.im.client import Caller, IIMClient
from xmeet.im.cluster import Cluster
from xmeet.im.conversations import Conversations, joining, leaving, updating
from xmeet.im.delivery import Delivery
from xmeet.im.offline import DEFAULT_OFFLINE_LIMIT, DEFAULT_OFFLINE_USERS, OfflineQueues
from xmeet.im.replica import Replica
from xmeet.im.sessions import RemoteSession, Session, Sessions
from xmeet.im.values import (
    ConversationCreated,
    ConversationList,
    ConversationSent,
    ConversationShown,
    DirectSent,
    HistoryPage,
    LoggedIn,
    LoggedOut,
    Refreshed,
)
from xmeet.store.im_interfaces import IIMBackend, Stamp
from xmeet.store.im_memory import MemoryIMBackend

__all__ = ["IMService"]

log = Logger()


class IMService:
    """
    Sessions, conversations and offline queues of one node, and its replica
    of the cluster's IM state.

    Limits come from C{settings}: C{max_message_size} bounds message
    contents and conversations, C{history_size} the messages kept per
    conversation, C{rate}/C{burst} the messages and conversations a session
    may create (a sender policy (rate, burst) per logged-in socket, 429 beyond).

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

    @ivar cluster: what hears the other nodes' changes, through the backend.
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
        self._backend = backend = backend if backend is not None else MemoryIMBackend()
        self._node = node = backend.node_id
        self._ready = True
        replica = Replica(node)
        sessions = Sessions(clock, settings, replica, backend.publish, node, auth_secret)
        offline = OfflineQueues(offline_limit, offline_users, settings.offline_bytes)
        conversations = Conversations(settings, node)
        delivery = Delivery(sessions, replica, offline, conversations, backend)
        self._sessions, self._offline = sessions, offline
        self._conversations, self._delivery = conversations, delivery
        self.cluster = Cluster(sessions, replica, offline, conversations, delivery, backend)

    def start(self) -> Deferred[None]:
        """
        Load the shared state and hear the other nodes; calls are refused
        (503) until the backend says the node may serve.
        """
        self._ready = False
        starting = self._backend.start(self.cluster)
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

    @property
    def ready(self) -> bool:
        """
        Whether the service answers calls: in a cluster, once its replica
        has been loaded.
        """
        return self._ready

    def is_online(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on this node.
        """
        return self._sessions.is_online(user_id)

    def is_reachable(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on a node this one can
        reach now.
        """
        return self._delivery.is_reachable(user_id)

    def queued(self, user_id: str) -> int:
        """
        How many messages wait for C{user_id} to log in.
        """
        return self._offline.queued(user_id)

    def _check_ready(self) -> None:
        if not self._ready:
            raise IMError.of(503, "the IM service is loading its state; try again shortly")

    def _authenticate(self, caller: Caller) -> Session | RemoteSession:
        self._check_ready()
        return self._sessions.authenticate(caller)

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    # Sessions

    def log_in(self, client: IIMClient, payload: object) -> LoggedIn:
        """
        C{logIn}: a new session for the socket; logging in again ends the
        socket's previous session (its token stops working).
        """
        self._check_ready()
        session = self._sessions.log_in(client, parse_log_in(payload))
        return LoggedIn(session.user_id, client.id, session.token, session.expires_at)

    def session_refresh(self, caller: Caller, payload: object) -> Refreshed:
        """
        C{session/refresh} C{{sessionToken, token}}: the session lasts
        until the new JWT's C{exp} (plus the leeway). The JWT must be good
        now and for the session's user (403 for another user's).
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        return Refreshed(self._sessions.refresh(session, fields.get("token")))

    def flush_offline(self, client: IIMClient) -> int:
        """
        Push the messages queued while the user of C{client}'s session had
        no socket to every socket of that user, oldest first, and forget
        them (on every node). Call it right after acking C{logIn}.

        @return: how many messages were delivered.
        """
        session = self._sessions.of_socket(client)
        return 0 if session is None else self._delivery.flush(session.user_id)

    def log_out(self, caller: Caller, payload: object) -> LoggedOut:
        """
        C{logOut}: end the session; the socket stays connected.
        """
        require_object(payload)
        self._sessions.log_out(self._authenticate(caller))
        return LoggedOut()

    def socket_closed(self, client: IIMClient) -> None:
        """
        The socket went away: end its session, if it had one.
        """
        self._sessions.socket_closed(client)

    # Messages

    def direct_message(self, caller: Caller, payload: object) -> DirectSent:
        """
        C{message/direct}: to every socket of every target, queued for the
        targets without one.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_direct_message(fields, self._settings.max_message_size)
        self._sessions.take_token(session)
        message = DirectMessage(
            self._ids.next_id(),
            session.user_id,
            request.target_ids,
            request.type,
            request.text_content,
            self._now(),
        )
        route = self._delivery.send_direct(message)
        return DirectSent(message.id, request.target_ids, route.online, route.offline)

    def conversation_message(self, caller: Caller, payload: object) -> ConversationSent:
        """
        C{message/conversation}: to every member but the sender and
        C{ignoreIds}, and to the sender's other sockets; kept in history.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_conversation_message(fields, self._settings.max_message_size)
        thread = self._conversations.thread(request.conversation_id)
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "only members may send to this conversation")
        self._sessions.take_token(session)
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
        route = self._delivery.send_to_conversation(message, recipients, caller.client)
        return ConversationSent(message.id, route.online, route.offline)

    # Conversations

    def conversation_add(self, caller: Caller, payload: object) -> ConversationCreated:
        """
        C{conversation/add}: a new conversation, announced to its members.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_new_conversation(fields, self._settings.max_message_size)
        conversation = self._conversations.checked(
            Conversation.create(self._ids.next_id(), session.user_id, request, self._now())
        )
        self._sessions.take_token(session)
        thread = self._conversations.new_thread(conversation, Stamp(0, self._node))
        self._delivery.store(thread, conversation, caller.client)
        return ConversationCreated(conversation)

    def conversation_join(self, caller: Caller, payload: object) -> ConversationShown:
        """
        C{conversation/join}: any logged-in user may join. With C{userId}
        (the HTTP API's C{POST .../members}), add that user, which takes the
        right to change C{members}.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_join(fields)
        thread = self._conversations.thread(request.conversation_id)
        join = joining(session.user_id, request.user_id or session.user_id)
        conversation = self._conversations.checked(join(thread.conversation))
        if conversation is not thread.conversation:
            self._delivery.store(thread, conversation, caller.client, redo=join)
        return ConversationShown(conversation)

    def conversation_leave(self, caller: Caller, payload: object) -> ConversationShown:
        """
        C{conversation/leave}: members only (403 for others); the leaver
        stops being an admin too.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        thread = self._conversations.thread(conversation_id_of(fields))
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "not a member of this conversation")
        leave = leaving(session.user_id)
        conversation = leave(thread.conversation)
        self._delivery.store(thread, conversation, caller.client, (session.user_id,), leave)
        return ConversationShown(conversation)

    def conversation_update(self, caller: Caller, payload: object) -> ConversationShown:
        """
        C{conversation/update}: members change unprotected fields, admins
        any field but C{id} and C{createdAt}.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_update(fields, self._settings.max_message_size)
        thread = self._conversations.thread(request.conversation_id)
        before = thread.conversation
        update = updating(session.user_id, request.changes)
        conversation = self._conversations.checked(update(before))
        if conversation != before:
            self._delivery.store(thread, conversation, caller.client, before.members, update)
        return ConversationShown(conversation)

    def conversation_get(self, caller: Caller, payload: object) -> ConversationShown:
        """
        C{conversation/get}: any logged-in user may look a conversation up,
        as any may join it.
        """
        fields = require_object(payload)
        self._authenticate(caller)
        return ConversationShown(
            self._conversations.thread(conversation_id_of(fields)).conversation
        )

    def conversation_list(self, caller: Caller, payload: object) -> ConversationList:
        """
        C{conversation/list}: the caller's conversations, oldest membership
        first.
        """
        require_object(payload)
        session = self._authenticate(caller)
        return ConversationList(tuple(self._conversations.of_member(session.user_id)))

    def conversation_history(self, caller: Caller, payload: object) -> HistoryPage:
        """
        C{conversation/history}: members only; newest first.
        """
        fields = require_object(payload)
        session = self._authenticate(caller)
        request = parse_history(fields)
        thread = self._conversations.thread(request.conversation_id)
        if not thread.conversation.is_member(session.user_id):
            raise IMError.of(403, "only members may read this conversation")
        return HistoryPage(tuple(thread.log.page(request.before, request.limit)))
