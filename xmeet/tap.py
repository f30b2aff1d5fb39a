# -*- test-case-name: tests.test_tap -*-
"""
The command line of C{twistd xmeet}: options, their validation, and the
service they make.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.application.service import MultiService
from twisted.python import usage

from xmeet.config import Settings

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


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)


def _byte_size(name: str, value: str) -> int:
    """
    A size in bytes: a whole number, optionally with a binary unit
    (C{512K}, C{4M}, C{1G}; also C{4MiB}, C{4MB}).
    """
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise usage.UsageError(
            f"--{name} must be a size in bytes such as 4194304, 512K or 4M, not {value!r}"
        )
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if size < 1:
        raise usage.UsageError(f"--{name} must be at least 1 byte, not {value!r}")
    return size


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise usage.UsageError(f"--{name} must be at least 1, not {number}")
    return number


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise usage.UsageError(f"--{name} must be a positive number, not {value!r}")
    return number


def _at_least_a_second(name: str, value: str) -> float:
    """
    Heartbeat periods: Autobahn batches its auto-ping timers in whole
    seconds, so a shorter period would ping (and time out) at random.
    """
    seconds = _positive_float(name, value)
    if seconds < 1:
        raise usage.UsageError(f"--{name} must be at least 1 second, not {value!r}")
    return seconds


def _write_delay(value: str) -> float:
    """
    The write delay: milliseconds, 0 (off) to 1000, as seconds.
    """
    try:
        milliseconds = float(value)
    except ValueError:
        raise usage.UsageError(
            f"--write-delay must be a number of milliseconds, not {value!r}"
        ) from None
    if not 0 <= milliseconds <= 1000:
        raise usage.UsageError(f"--write-delay must be from 0 to 1000 ms, not {value!r}")
    return milliseconds / 1000


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
    ]

    optParameters = [
        [
            "port",
            "p",
            "tcp:8080",
            "Twisted endpoint description to listen on; a bare number "
            "means TCP on all interfaces (tcp:8080:interface=127.0.0.1, "
            "ssl:8443:privateKey=key.pem:certKey=cert.pem). TCP and SSL ports "
            "listen with backlog=1024 unless the description sets it.",
        ],
        ["history-size", None, "1000", "Messages kept per xnest."],
        [
            "max-message-size",
            None,
            "65536",
            "Largest accepted message in bytes, after "
            "reassembly; larger ones close the connection with 1009.",
        ],
        ["rate", None, "20", "Messages per second per connection (token bucket refill)."],
        ["burst", None, "40", "Messages a connection may send at once (token bucket size)."],
        ["ping-interval", None, "25", "Seconds between heartbeats on idle connections."],
        [
            "ping-timeout",
            None,
            "20",
            "Seconds to wait for a heartbeat answer before dropping the connection.",
        ],
        [
            "redis",
            None,
            None,
            "redis://HOST:PORT/DB to mirror rooms to and cluster through; "
            "without it everything lives in this process.",
        ],
        ["redis-prefix", None, "xmeet:", "Prefix of every Redis key and channel of this node."],
        [
            "node-timeout",
            None,
            "15",
            "Seconds after which a silent node counts as dead; its members leave (needs --redis).",
        ],
        [
            "max-send-queue",
            None,
            "10000",
            "Frames kept for a client that stopped reading (or polling); "
            "beyond it the client is dropped.",
        ],
        [
            "max-send-buffer",
            None,
            "4M",
            "Bytes of frames kept for a client that stopped reading (or "
            "polling), as a number or with K, M or G; beyond it the client is "
            "dropped.",
        ],
        [
            "write-delay",
            None,
            "20",
            "Longest wait, in milliseconds, of a busy connection (one sent "
            "several frames at once) after a write, collecting what it is sent "
            "meanwhile: fewer system calls for members of busy rooms. The wait "
            "follows the load; 0 sends every reactor turn.",
        ],
        [
            "auth-secret",
            None,
            None,
            "Require logIn to carry the hex HMAC-SHA256 signature of the userId "
            "under this secret; without it anyone may log in as anyone.",
        ],
        [
            "offline-limit",
            None,
            "1000",
            "Messages kept per offline user until the next logIn.",
        ],
        [
            "max-payload",
            None,
            "1000000",
            "Engine.IO maxPayload: largest long-polling body or Socket.IO "
            "WebSocket message, in bytes.",
        ],
        [
            "cors-origins",
            None,
            "",
            "Comma-separated origins allowed to use /socket.io/ long-polling "
            "from a browser (credentials allowed), or * for any.",
        ],
        ["timezone", None, "UTC", "IANA time zone of send_time in frames (e.g. Asia/Shanghai)."],
        [
            "max-idle-rooms",
            None,
            "10000",
            "Empty xnests whose history is kept in memory; the "
            "least recently used beyond this are forgotten.",
        ],
        [
            "max-connections",
            None,
            "0",
            "Concurrent WebSocket connections accepted; 0 for "
            "no limit. Beyond it the handshake gets 503.",
        ],
        [
            "header-timeout",
            None,
            "10",
            "Seconds an HTTP request's line and headers have to arrive in, from "
            "its first byte; slower clients get 408 and are disconnected.",
        ],
        [
            "body-min-rate",
            None,
            "1K",
            "Bytes per second an HTTP request body must arrive at, after "
            "--header-timeout seconds of grace, as a number or with K or M; "
            "slower bodies get 408 and are disconnected.",
        ],
    ]

    def postOptions(self) -> None:
        """
        Validate every option and build C{self["settings"]}.
        """
        self["port"] = port_description(self["port"])
        self._check_port(self["port"])
        max_connections = self["max-connections"]
        self["settings"] = Settings(
            history_size=_positive_int("history-size", self["history-size"]),
            max_message_size=_positive_int("max-message-size", self["max-message-size"]),
            rate=_positive_float("rate", self["rate"]),
            burst=_positive_int("burst", self["burst"]),
            ping_interval=_at_least_a_second("ping-interval", self["ping-interval"]),
            ping_timeout=_at_least_a_second("ping-timeout", self["ping-timeout"]),
            timezone=self._check_timezone(self["timezone"]),
            max_idle_rooms=_positive_int("max-idle-rooms", self["max-idle-rooms"]),
            auth_secret=self._check_secret(self["auth-secret"]),
            offline_limit=_positive_int("offline-limit", self["offline-limit"]),
            max_send_queue=_positive_int("max-send-queue", self["max-send-queue"]),
            max_send_buffer=_byte_size("max-send-buffer", self["max-send-buffer"]),
            write_delay=_write_delay(self["write-delay"]),
            max_payload=_positive_int("max-payload", self["max-payload"]),
            cors_origins=self._check_origins(self["cors-origins"]),
            redis_url=self._check_redis(self["redis"]),
            redis_prefix=self._check_prefix(self["redis-prefix"]),
            node_timeout=_positive_float("node-timeout", self["node-timeout"]),
            max_connections=0
            if max_connections == "0"
            else _positive_int("max-connections", max_connections),
            access_log=bool(self["access-log"]),
            header_timeout=_positive_float("header-timeout", self["header-timeout"]),
            body_min_rate=_byte_size("body-min-rate", self["body-min-rate"]),
        )

    @staticmethod
    def _check_port(description: str) -> None:
        from twisted.internet import endpoints, reactor

        try:
            endpoints.serverFromString(reactor, description)
        except Exception as error:
            raise usage.UsageError(f"--port {description!r} is not usable: {error}") from None

    @staticmethod
    def _check_secret(secret: str | None) -> str | None:
        if secret is not None and not secret:
            raise usage.UsageError("--auth-secret must not be empty")
        return secret

    @staticmethod
    def _check_origins(value: str) -> tuple[str, ...]:
        origins = tuple(origin.strip() for origin in value.split(",") if origin.strip())
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise usage.UsageError(
                    f"--cors-origins: {origin!r} is not * nor an http(s):// origin"
                )
        return origins

    @staticmethod
    def _check_redis(url: str | None) -> str | None:
        if url is None:
            return None
        from xmeet.store.redis import parse_redis_url

        try:
            parse_redis_url(url)
        except ValueError as error:
            raise usage.UsageError(f"--redis: {error}") from None
        return url

    @staticmethod
    def _check_prefix(prefix: str) -> str:
        if not prefix or any(character.isspace() for character in prefix):
            raise usage.UsageError("--redis-prefix must be non-empty, without white space")
        return prefix

    @staticmethod
    def _check_timezone(name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise usage.UsageError(f"--timezone {name!r} is not a known time zone") from None
        return name


def makeService(config: Any) -> MultiService:
    """
    The node described by validated C{config}, for twistd.
    """
    from twisted.internet import reactor

    from xmeet.service import make_service

    return make_service(reactor, config["settings"], config["port"])
