# -*- test-case-name: tests.test_im,tests.test_im_jwt -*-
"""
The sessions of one node: who logged in on which socket, with which token,
until when (JWT logins), and at what rate each session may send.

A socket holds one session. Other nodes learn of a session by its token's
digest only (L{xmeet.im.replica}), so that any node accepts the token on
the HTTP API without any node storing it.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from xmeet.config import Settings
from xmeet.core.im import IMError, LogInRequest, check_session_token, check_signature
from xmeet.core.limits import SenderPolicy, Verdict
from xmeet.core.tokens import INVALID_TOKEN, TOKEN_EXPIRED
from xmeet.im.client import Caller, IIMClient, Push
from xmeet.im.replica import Replica, digest
from xmeet.store.im_interfaces import IMEvent, PresenceChanged, SessionChanged

__all__ = ["LEFT_WINDOW", "REMOTE_POLICIES", "RemoteSession", "Session", "Sessions"]

log = Logger()

#: Seconds after a user's last socket here left during which a message
#: another node sent to that socket (not knowing yet) is queued again
#: rather than lost.
LEFT_WINDOW = 10.0

#: Sessions of other nodes whose sender policy this node keeps for the
#: HTTP API; the least recently used go beyond this.
REMOTE_POLICIES = 10_000


@attrs.define(eq=False)
class Session:
    """
    One successful C{logIn}: a user on a socket, with that socket's sender
    policy; a JWT login's session ends at C{expires_at} (epoch
    milliseconds), by the C{expiry} timer.
    """

    token: str
    user_id: str
    client: IIMClient
    policy: SenderPolicy
    expires_at: int | None = None
    expiry: IDelayedCall | None = None


@attrs.define(eq=False)
class RemoteSession:
    """
    A session held by another node (or a JWT bearer), used here through
    the HTTP API, with this node's sender policy for it.
    """

    token: str
    user_id: str
    policy: SenderPolicy


class Sessions:
    """
    The sessions of this node, and this node's sender policies for the HTTP
    calls of sessions held elsewhere.

    @param replica: the other nodes' sessions.
    @param publish: tells the other nodes of a change.
    @param auth_secret: with a secret, C{logIn} requires the C{signature}
        of the user id; with C{settings.jwt}, a JWT of the user.
    """

    def __init__(
        self,
        clock: IReactorTime,
        settings: Settings,
        replica: Replica,
        publish: Callable[[IMEvent], None],
        node: str,
        auth_secret: str | None = None,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._replica = replica
        self._publish = publish
        self._node = node
        self._secret = None if auth_secret is None else auth_secret.encode("utf-8")
        self._tokens = settings.jwt
        self._sessions: dict[str, Session] = {}
        self._by_socket: dict[str, Session] = {}
        self._by_user: dict[str, dict[str, Session]] = {}
        self._left: OrderedDict[str, float] = OrderedDict()
        self._remote_policies: OrderedDict[str, SenderPolicy] = OrderedDict()

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def is_online(self, user_id: str) -> bool:
        """
        Whether C{user_id} has a logged-in socket on this node.
        """
        return user_id in self._by_user

    def of_socket(self, client: IIMClient) -> Session | None:
        """
        The session of C{client}, if it has one.
        """
        return self._by_socket.get(client.id)

    def of_user(self, user_id: str) -> Mapping[str, Session]:
        """
        The sessions of C{user_id} here, by socket id.
        """
        return self._by_user.get(user_id, {})

    def log_in(self, client: IIMClient, request: LogInRequest) -> Session:
        """
        A new session for C{client}, ending its previous one (its token
        stops working).
        """
        expires_at = self._check_credentials(request)
        if request.socket_id != client.id:
            raise IMError.of(403, "socketId is not the id of this socket")
        self.socket_closed(client)
        session = Session(
            secrets.token_hex(16),
            request.user_id,
            client,
            self._sender_policy(),
            expires_at,
        )
        self._sessions[session.token] = session
        self._by_socket[client.id] = session
        sockets = self._by_user.setdefault(session.user_id, {})
        sockets[client.id] = session
        self._left.pop(session.user_id, None)
        if len(sockets) == 1:
            self._publish(PresenceChanged(self._node, session.user_id, True))
        self._publish(
            SessionChanged(self._node, digest(session.token), session.user_id, expires_at)
        )
        self._schedule_expiry(session)
        log.info("user {user!r} logged in on {socket}", user=session.user_id, socket=client.id)
        return session

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

    def refresh(self, session: Session | RemoteSession, token: object) -> int:
        """
        C{session} lasts until the new JWT C{token}'s C{exp} (plus the
        leeway); the JWT must be good now and for the session's user.

        @return: when the session now ends, in epoch milliseconds.
        """
        if isinstance(session, RemoteSession):
            raise IMError.of(403, "this session is held by another node")
        if self._tokens is None:
            raise IMError.of(400, "this server takes no JWT logins: sessions do not expire")
        claims = self._tokens.verify(token, self._clock.seconds())
        if claims.user_id != session.user_id:
            raise IMError.of(403, "the token is for another user")
        session.expires_at = claims.expires_at
        self._schedule_expiry(session)
        self._publish(
            SessionChanged(self._node, digest(session.token), session.user_id, session.expires_at)
        )
        return claims.expires_at

    def _schedule_expiry(self, session: Session) -> None:
        """
        (Re)arm the timer that ends C{session} when its JWT expires.
        """
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        session.expiry = None
        if session.expires_at is not None:
            delay = max(0.0, session.expires_at / 1000 - self._clock.seconds())
            session.expiry = self._clock.callLater(delay, self._expire, session)

    def _expire(self, session: Session) -> None:
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
        session.client.push(Push("session/expired", {"sessionToken": session.token}))

    def _expired(self, expires_at: int | None) -> bool:
        return expires_at is not None and self._now() >= expires_at

    def log_out(self, session: Session | RemoteSession) -> None:
        """
        End C{session}; its socket stays connected.
        """
        if isinstance(session, RemoteSession):
            raise IMError.of(403, "this session is held by another node")
        self._end(session)

    def socket_closed(self, client: IIMClient) -> None:
        """
        The socket went away: end its session, if it had one.
        """
        session = self._by_socket.get(client.id)
        if session is not None:
            self._end(session)

    def _end(self, session: Session) -> None:
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        session.expiry = None
        self._publish(SessionChanged(self._node, digest(session.token), None))
        del self._sessions[session.token]
        del self._by_socket[session.client.id]
        sockets = self._by_user[session.user_id]
        del sockets[session.client.id]
        if not sockets:
            del self._by_user[session.user_id]
            self._publish(PresenceChanged(self._node, session.user_id, False))
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

    def left_lately(self, user_id: str) -> bool:
        """
        Whether C{user_id} had its last socket here until a moment ago
        (L{LEFT_WINDOW}).
        """
        left = self._left.get(user_id)
        return left is not None and self._clock.seconds() - left < LEFT_WINDOW

    def authenticate(self, caller: Caller) -> Session | RemoteSession:
        """
        The session of the call's token, which must be used from its own
        socket; for the HTTP API (no client), the bearer token alone names
        the session, wherever in the cluster it is held, or is a JWT of
        the user (with JWT logins). A session past its expiry is ended
        (401 C{token_expired}), should its timer be late.
        """
        token = check_session_token(caller.token)
        session = self._sessions.get(token)
        client = caller.client
        if session is not None:
            if client is not None and session.client.id != client.id:
                raise IMError.of(403, "this sessionToken belongs to another socket")
            if self._expired(session.expires_at):
                self._expire(session)
                raise IMError(401, TOKEN_EXPIRED, "the session has expired")
            return session
        if client is None and self._tokens is not None and "." in token:
            claims = self._tokens.verify(token, self._clock.seconds())
            return RemoteSession(token, claims.user_id, self._remote_policy(digest(token)))
        token_digest = digest(token)
        remote = self._replica.session(token_digest)
        if remote is None:
            raise IMError.of(401, "unknown sessionToken")
        if client is not None:
            raise IMError.of(403, "this sessionToken belongs to another socket")
        if self._expired(remote.expires_at):
            raise IMError(401, TOKEN_EXPIRED, "the session has expired")
        return RemoteSession(token, remote.user, self._remote_policy(token_digest))

    def _remote_policy(self, token_digest: str) -> SenderPolicy:
        """
        This node's sender policy for the HTTP calls of a session held
        elsewhere (or of a JWT bearer), the most recently used kept.
        """
        policy = self._remote_policies.pop(token_digest, None) or self._sender_policy()
        self._remote_policies[token_digest] = policy
        while len(self._remote_policies) > REMOTE_POLICIES:
            self._remote_policies.popitem(last=False)
        return policy

    def forget_remote(self, token_digest: str) -> None:
        """
        A session held elsewhere ended: forget its sender policy here.
        """
        self._remote_policies.pop(token_digest, None)

    def _sender_policy(self) -> SenderPolicy:
        """
        The sender policy of one session: the rooms' rate rules, every drop
        answered (an acknowledgement), no flood closing (a socket may carry
        other namespaces' traffic).
        """
        return SenderPolicy(
            self._settings.rate, self._settings.burst, self._clock.seconds(), closes_floods=False
        )

    def take_token(self, session: Session | RemoteSession) -> None:
        """
        Refuse (429) a message or conversation beyond the session's rate.
        """
        if session.policy.judge(self._clock.seconds()) is not Verdict.ACCEPT:
            raise IMError.of(429, f"more than {self._settings.rate:g} messages a second")
