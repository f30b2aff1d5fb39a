# -*- test-case-name: tests.test_tap -*-
"""
The settings every part of xmeet reads, as one immutable value.

C{xmeet.tap} builds it from the command line; tests and embedders build it
directly, so no module reads options from anywhere else.
"""

from __future__ import annotations

import attrs

__all__ = ["Settings"]


@attrs.frozen
class Settings:
    """
    Validated settings of one xmeet node.

    @ivar history_size: messages kept per xnest.
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
    @ivar cors_origins: origins allowed to use Engine.IO long-polling from
        a browser; C{("*",)} allows any, C{()} sends no CORS headers.
    @ivar connect_timeout: seconds a Socket.IO client has, after the
        Engine.IO handshake, to connect to a namespace.
    @ivar redis_url: C{redis://HOST:PORT/DB} to mirror to and cluster
        through, or C{None} to keep everything in this process.
    @ivar redis_prefix: prefix of every Redis key and channel.
    @ivar node_timeout: seconds after which a silent node counts as dead
        and its members leave.
    @ivar auth_secret: with a secret, C{logIn} requires the HMAC-SHA256
        signature of the user id; C{None} leaves the server open.
    @ivar max_send_queue: frames kept for a client (xgate, Engine.IO
        WebSocket or long-polling) whose connection does not drain; beyond
        it the client is dropped.
    @ivar max_send_buffer: bytes (on the wire) of the frames kept for such
        a client; beyond it the client is dropped too.
    @ivar write_delay: seconds a busy WebSocket connection waits after a
        write, collecting what it is sent meanwhile (L{xmeet.fastsend.Outbox});
        0 sends at the end of every reactor turn.
    @ivar offline_limit: messages kept per user who has no socket, for
        delivery at the next C{logIn}; the oldest are dropped beyond it.
    @ivar access_log: log a line per HTTP request (L{xmeet.web.XmeetSite}).
    @ivar header_timeout: seconds an HTTP request's line and headers have
        to arrive in, from its first byte (L{xmeet.web.DeadlineChannel}).
    @ivar body_min_rate: bytes per second an HTTP request body must arrive
        at, after an allowance of C{header_timeout} seconds.
    """

    history_size: int = 1000
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
    connect_timeout: float = 45.0
    redis_url: str | None = None
    redis_prefix: str = "xmeet:"
    node_timeout: float = 15.0
    auth_secret: str | None = None
    offline_limit: int = 1000
    max_send_queue: int = 10000
    max_send_buffer: int = 4 * 1024 * 1024
    write_delay: float = 0.020
    access_log: bool = False
    header_timeout: float = 10.0
    body_min_rate: int = 1024
