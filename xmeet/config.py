# -*- test-case-name: tests.test_tap -*-
"""
The settings every part of xmeet reads, as one immutable value.

C{xmeet.tap} builds it from the command line; tests and embedders build it
directly, so no module reads options from anywhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from xmeet.core.tokens import TokenVerifier

__all__ = ["Settings"]


@attrs.frozen
class Settings:
    """
    Validated settings of one xmeet node.

    @ivar history_size: messages kept per xnest.
    @ivar history_bytes: bytes of history kept per xnest and per IM
        conversation, each message counted as its stored JSON in UTF-8 plus
        L{xmeet.core.history.ENTRY_OVERHEAD}; the newest message is always
        kept.
    @ivar history_memory: bytes of history (counted the same way) a node
        keeps in memory for all its xnests together, live and idle: beyond
        it the least recently used idle xnests are forgotten first, then
        the largest live histories lose their oldest messages
        (L{xmeet.core.history.HistoryBudget}).
    @ivar max_message_size: largest accepted message in bytes, after
        reassembly of fragmented WebSocket messages.
    @ivar rate: messages per second per connection (token bucket refill).
    @ivar burst: token bucket capacity.
    @ivar ping_interval: seconds between heartbeats on idle connections.
    @ivar ping_timeout: seconds to wait for the heartbeat's answer.
    @ivar timezone: IANA zone name used for C{send_time}.
    @ivar max_idle_rooms: empty xnests whose history is kept in memory; the
        least recently used beyond this many are forgotten.
    @ivar max_connections: concurrent WebSocket connections accepted per
        node, 0 for no limit.
    @ivar max_payload: Engine.IO C{maxPayload}: largest HTTP long-polling
        body or WebSocket message accepted on C{/socket.io/}, in bytes.
    @ivar cors_origins: browser origins allowed besides the node's own
        host, for CORS and for the handshakes of xgate and C{/socket.io/}
        (L{xmeet.core.admission.OriginPolicy}); C{("*",)} allows any
        (CORS without credentials), C{()} only the node's own pages.
    @ivar max_connections_per_ip: xgate connections and Engine.IO
        sessions together per client address, 0 for no limit.
    @ivar connection_rate_per_ip: new handshakes a second per client
        address (token bucket refill), 0 for no limit.
    @ivar connection_burst_per_ip: handshakes a client address may make
        at once (token bucket size).
    @ivar max_xnests_per_socket: xnests one Socket.IO socket may be in.
    @ivar connect_timeout: seconds a Socket.IO client has, after the
        Engine.IO handshake, to connect to a namespace.
    @ivar redis_url: C{redis://HOST:PORT/DB} to mirror to and cluster
        through, or C{None} to keep everything in this process.
    @ivar redis_prefix: prefix of every Redis key and channel.
    @ivar node_timeout: seconds after which a silent node counts as dead
        and its members leave.
    @ivar redis_password: the password Redis asks for, read from a file
        (C{--redis-password-file}) rather than put in C{redis_url}, where
        C{ps} would show it; C{None} keeps the URL's.
    @ivar auth_secret: with a secret, C{logIn} requires the HMAC-SHA256
        signature of the user id; C{None} leaves the server open.
    @ivar jwt: with a verifier, C{logIn} requires a JWT of the user, whose
        C{exp} ends the session; the HTTP API takes such a JWT as its
        bearer too. C{None} leaves JWT logins off.
    @ivar xgate_jwt: xgate connections need a JWT (C{?token=}) that names
        their xnest, checked by C{jwt}; off, xgate is open as the original.
    @ivar max_send_queue: frames kept for a client (xgate, Engine.IO
        WebSocket or long-polling) whose connection does not drain; beyond
        it the client is dropped.
    @ivar max_send_buffer: bytes (on the wire) of the frames kept for such
        a client; beyond it the client is dropped too.
    @ivar write_delay: seconds a busy WebSocket connection waits after a
        write, collecting what it is sent meanwhile (L{xmeet.transport.send.Outbox});
        0 sends at the end of every reactor turn.
    @ivar offline_limit: messages kept per user who has no socket, for
        delivery at the next C{logIn}; the oldest are dropped beyond it.
    @ivar offline_bytes: bytes of messages kept per user who has no
        socket (counted as C{history_bytes} counts), beside C{offline_limit};
        the newest message is always kept.
    @ivar access_log: log a line per HTTP request (L{xmeet.web.XmeetSite}).
    @ivar header_timeout: seconds an HTTP request's line and headers have
        to arrive in, from its first byte (L{xmeet.web.DeadlineChannel}).
    @ivar body_min_rate: bytes per second an HTTP request body must arrive
        at, after an allowance of C{header_timeout} seconds.
    """

    history_size: int = 1000
    history_bytes: int = 1024 * 1024
    history_memory: int = 256 * 1024 * 1024
    max_message_size: int = 65536
    rate: float = 20.0
    burst: int = 40
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    timezone: str = "UTC"
    max_idle_rooms: int = 10000
    max_connections: int = 0
    max_payload: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    max_connections_per_ip: int = 0
    connection_rate_per_ip: float = 0.0
    connection_burst_per_ip: int = 100
    max_xnests_per_socket: int = 100
    connect_timeout: float = 45.0
    redis_url: str | None = None
    redis_prefix: str = "xmeet:"
    node_timeout: float = 15.0
    redis_password: str | None = attrs.field(default=None, repr=False)
    auth_secret: str | None = attrs.field(default=None, repr=False)
    jwt: TokenVerifier | None = None
    xgate_jwt: bool = False
    offline_limit: int = 1000
    offline_bytes: int = 1024 * 1024
    max_send_queue: int = 10000
    max_send_buffer: int = 4 * 1024 * 1024
    write_delay: float = 0.020
    access_log: bool = False
    header_timeout: float = 10.0
    body_min_rate: int = 1024
