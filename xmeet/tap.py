# -*- test-case-name: tests.test_tap -*-
"""
The command line of C{twistd xmeet}: options, their validation, and the
service they make. The option table and the parsers of option values are
L{xmeet.options}; here they are combined into L{Settings}, with the checks
that need more than one option or the reactor.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.python import usage

from xmeet.config import Settings
from xmeet.options import (
    OPTION_PARAMETERS,
    at_least_a_second,
    byte_size,
    check_history_bounds,
    check_origins,
    check_prefix,
    check_redis,
    check_timezone,
    count_or_off,
    positive_float,
    positive_int,
    rate_or_off,
    read_file,
    read_secret,
    seconds,
    write_delay,
)

if TYPE_CHECKING:
    from xmeet.core.tokens import TokenVerifier

__all__ = ["LISTEN_BACKLOG", "Options", "makeService", "port_description"]


LISTEN_BACKLOG = 1024
"""
The listen backlog of TCP ports whose description gives none: Twisted's
default of 50 makes the kernel drop connections when a few hundred clients
connect at once (Node listens with 511, uvicorn with 2048).
"""

_BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl")
_BACKLOG = re.compile(r"(?<!\\):backlog=")


def port_description(value: str) -> str:
    """
    A bare port number means TCP on every interface; anything else is a
    Twisted endpoint description. TCP and TLS ports get a listen backlog
    of L{LISTEN_BACKLOG} unless their description sets one.
    """
    description = f"tcp:{value}" if value.isdigit() else value
    kind = description.split(":", 1)[0]
    if kind in _BACKLOG_ENDPOINTS and not _BACKLOG.search(description):
        description = f"{description}:backlog={LISTEN_BACKLOG}"
    return description


class Options(usage.Options):
    """
    C{twistd xmeet} options; L{postOptions} turns them into L{Settings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Realtime chat server: Xmeet rooms at /xgate/websocket/{xnest_id}, "
        "Socket.IO (IM protocol) at /socket.io/, the HTTP API at /api/, "
        "a demo page at /, health at /healthz."
    )

    optFlags = [
        [
            "access-log",
            None,
            "Log one line per HTTP request (twisted.web's combined log format). "
            "Off by default: with long-polling every message is a request.",
        ],
        [
            "xgate-jwt",
            None,
            "Require a JWT (checked as with --jwt-key-file) on xgate WebSocket "
            "URLs, ?token=JWT, whose xnests claim names the xnest (or is *); "
            "its nickname (or name) claim is the member's nickname.",
        ],
    ]

    optParameters = OPTION_PARAMETERS

    def postOptions(self) -> None:
        """
        Validate every option and build C{self["settings"]}.
        """
        self["port"] = port_description(self["port"])
        self._check_port(self["port"])
        max_connections = self["max-connections"]
        self["settings"] = Settings(
            history_size=positive_int("history-size", self["history-size"]),
            max_message_size=positive_int("max-message-size", self["max-message-size"]),
            rate=positive_float("rate", self["rate"]),
            burst=positive_int("burst", self["burst"]),
            ping_interval=at_least_a_second("ping-interval", self["ping-interval"]),
            ping_timeout=at_least_a_second("ping-timeout", self["ping-timeout"]),
            timezone=check_timezone(self["timezone"]),
            max_idle_rooms=positive_int("max-idle-rooms", self["max-idle-rooms"]),
            auth_secret=self._auth_secret(),
            jwt=self._jwt(),
            xgate_jwt=self._xgate_jwt(),
            offline_limit=positive_int("offline-limit", self["offline-limit"]),
            offline_bytes=byte_size("offline-bytes", self["offline-bytes"]),
            history_bytes=byte_size("history-bytes", self["history-bytes"]),
            history_memory=byte_size("history-memory", self["history-memory"]),
            max_send_queue=positive_int("max-send-queue", self["max-send-queue"]),
            max_send_buffer=byte_size("max-send-buffer", self["max-send-buffer"]),
            write_delay=write_delay(self["write-delay"]),
            max_payload=positive_int("max-payload", self["max-payload"]),
            cors_origins=check_origins(self["cors-origins"]),
            max_connections_per_ip=count_or_off(
                "max-connections-per-ip", self["max-connections-per-ip"]
            ),
            connection_rate_per_ip=rate_or_off(
                "connection-rate-per-ip", self["connection-rate-per-ip"]
            ),
            connection_burst_per_ip=positive_int(
                "connection-burst-per-ip", self["connection-burst-per-ip"]
            ),
            max_xnests_per_socket=positive_int(
                "max-xnests-per-socket", self["max-xnests-per-socket"]
            ),
            redis_url=check_redis(self["redis"]),
            redis_password=self._redis_password(),
            redis_prefix=check_prefix(self["redis-prefix"]),
            node_timeout=positive_float("node-timeout", self["node-timeout"]),
            max_connections=0
            if max_connections == "0"
            else positive_int("max-connections", max_connections),
            access_log=bool(self["access-log"]),
            header_timeout=positive_float("header-timeout", self["header-timeout"]),
            body_min_rate=byte_size("body-min-rate", self["body-min-rate"]),
        )
        check_history_bounds(self["settings"])

    @staticmethod
    def _check_port(description: str) -> None:
        from twisted.internet import endpoints, reactor

        try:
            endpoints.serverFromString(reactor, description)
        except Exception as error:
            raise usage.UsageError(f"--port {description!r} is not usable: {error}") from None

    def _auth_secret(self) -> str | None:
        """
        The HMAC secret of C{--auth-secret} or C{--auth-secret-file}: one
        of them at most, and not beside C{--jwt-key-file} (a server takes
        one kind of login, so that the weaker never stands in for the
        stronger).
        """
        secret, path = self["auth-secret"], self["auth-secret-file"]
        if secret is not None and path is not None:
            raise usage.UsageError("give --auth-secret or --auth-secret-file, not both")
        if path is not None:
            secret = read_secret("auth-secret-file", path)
        if secret is not None and self["jwt-key-file"] is not None:
            raise usage.UsageError("--jwt-key-file replaces --auth-secret: give one of them")
        if secret is not None and not secret:
            raise usage.UsageError("--auth-secret must not be empty")
        return secret

    def _jwt(self) -> TokenVerifier | None:
        """
        The JWT verifier of C{--jwt-key-file} and its companions, which
        mean nothing without it.
        """
        path = self["jwt-key-file"]
        if path is None:
            for name in ("jwt-audience", "jwt-issuer"):
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} needs --jwt-key-file")
            return None
        from xmeet.core.tokens import TokenVerifier, load_token_key

        try:
            key = load_token_key(read_file("jwt-key-file", path))
        except ValueError as error:
            raise usage.UsageError(f"--jwt-key-file {path!r} {error}") from None
        return TokenVerifier(
            key,
            audience=self["jwt-audience"] or None,
            issuer=self["jwt-issuer"] or None,
            leeway=seconds("jwt-leeway", self["jwt-leeway"]),
        )

    def _xgate_jwt(self) -> bool:
        if self["xgate-jwt"] and self["jwt-key-file"] is None:
            raise usage.UsageError("--xgate-jwt needs --jwt-key-file")
        return bool(self["xgate-jwt"])

    def _redis_password(self) -> str | None:
        path = self["redis-password-file"]
        if path is None:
            return None
        if self["redis"] is None:
            raise usage.UsageError("--redis-password-file needs --redis")
        from xmeet.store.redis import parse_redis_url

        if parse_redis_url(self["redis"]).password is not None:
            raise usage.UsageError("--redis has a password already: drop it from the URL")
        return read_secret("redis-password-file", path)


def makeService(config: Any) -> MultiService:
    """
    The node described by validated C{config}, for twistd.
    """
    from twisted.internet import reactor

    from xmeet.service import make_service

    return make_service(reactor, config["settings"], config["port"])
