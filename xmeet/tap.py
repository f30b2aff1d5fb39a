# -*- test-case-name: tests.test_tap -*-
"""
The command line of C{twistd xmeet}: options, their validation, and the
service they make.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.application.service import MultiService
from twisted.python import usage

from xmeet.config import Settings

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


_LARGEST_KEY_FILE = 65536
"""
Bytes read at most from a key or secret file: a PEM key or certificate is
a few kilobytes; more is a file given by mistake.
"""

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


def _check_history_bounds(settings: Settings) -> None:
    """
    Each byte bound of kept messages holds at least one message of the
    largest size accepted, and the node's budget at least one room's
    history: else a bound would refuse what the server accepts.
    """
    for name, size in [
        ("history-bytes", settings.history_bytes),
        ("offline-bytes", settings.offline_bytes),
    ]:
        if size < settings.max_message_size:
            raise usage.UsageError(
                f"--{name} ({size}) must be at least --max-message-size "
                f"({settings.max_message_size})"
            )
    if settings.history_memory < settings.history_bytes:
        raise usage.UsageError(
            f"--history-memory ({settings.history_memory}) must be at least "
            f"--history-bytes ({settings.history_bytes})"
        )


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


def _seconds(name: str, value: str) -> float:
    """
    A duration that may be 0, at most an hour.
    """
    try:
        seconds = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 3600:
        raise usage.UsageError(f"--{name} must be from 0 to 3600 seconds, not {value!r}")
    return seconds


def _count_or_off(name: str, value: str) -> int:
    """
    A limit that 0 turns off.
    """
    return 0 if value.strip() == "0" else _positive_int(name, value)


def _rate_or_off(name: str, value: str) -> float:
    """
    A rate that 0 turns off.
    """
    try:
        number = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    return 0.0 if number == 0 else _positive_float(name, value)


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


def _read_file(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(_LARGEST_KEY_FILE + 1)
    except OSError as error:
        raise usage.UsageError(f"--{name} {path!r}: {error.strerror}") from None
    if len(data) > _LARGEST_KEY_FILE:
        raise usage.UsageError(f"--{name} {path!r} is larger than {_LARGEST_KEY_FILE} bytes")
    return data


def _read_secret(name: str, path: str) -> str:
    """
    The secret held by the file at C{path}: its first line, without
    surrounding white space (the newline an editor or C{echo} adds).
    """
    lines = _read_file(name, path).strip().splitlines()
    if not lines:
        raise usage.UsageError(f"--{name} {path!r} is empty")
    try:
        return lines[0].strip().decode("utf-8")
    except UnicodeDecodeError:
        raise usage.UsageError(f"--{name} {path!r} is not UTF-8 text") from None


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
            "history-bytes",
            None,
            "1M",
            "Bytes of history kept per xnest and per IM conversation (each "
            "message as stored JSON in UTF-8, plus 64); the newest message is always kept.",
        ],
        [
            "history-memory",
            None,
            "256M",
            "Bytes of history kept in memory for all xnests of the node together; "
            "beyond it the least recently used empty xnests are forgotten first, "
            "then the largest live histories lose their oldest messages.",
        ],
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
            "redis-password-file",
            None,
            None,
            "File holding the password Redis asks for (one line), used with "
            "--redis instead of a password in the URL, which ps shows.",
        ],
        [
            "auth-secret",
            None,
            None,
            "Require logIn to carry the hex HMAC-SHA256 signature of the userId "
            "under this secret; without it (or --auth-secret-file, or "
            "--jwt-key-file) anyone may log in as anyone. The command line is "
            "visible in ps: prefer --auth-secret-file.",
        ],
        [
            "auth-secret-file",
            None,
            None,
            "As --auth-secret, the secret read from this file (one line).",
        ],
        [
            "jwt-key-file",
            None,
            None,
            "Require logIn to carry a JWT of the userId (its sub), whose exp "
            "ends the session; the HTTP API takes it as its bearer too. The "
            "file holds a PEM public key (RSA: RS256, EC P-256: ES256) or "
            "else an HS256 secret of at least 32 bytes.",
        ],
        [
            "jwt-audience",
            None,
            None,
            "The aud a JWT must name (with --jwt-key-file); without it, a JWT "
            "naming an audience is refused.",
        ],
        ["jwt-issuer", None, None, "The iss a JWT must have (with --jwt-key-file)."],
        [
            "jwt-leeway",
            None,
            "30",
            "Seconds of clock skew allowed on a JWT's exp and nbf; a session "
            "ends at exp plus this.",
        ],
        [
            "offline-limit",
            None,
            "1000",
            "Messages kept per offline user until the next logIn.",
        ],
        [
            "offline-bytes",
            None,
            "1M",
            "Bytes of messages kept per offline user (counted as --history-bytes "
            "counts); the oldest are dropped beyond it.",
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
            "Comma-separated browser origins allowed besides the node's own "
            "pages, for CORS and for the WebSocket and long-polling handshakes "
            "of /xgate/ and /socket.io/ (others get 403), or * for any (CORS "
            "without credentials). Clients that send no Origin are allowed.",
        ],
        [
            "max-connections-per-ip",
            None,
            "0",
            "xgate connections and Socket.IO sessions together per client "
            "address; 0 for no limit. Beyond it the handshake gets 429.",
        ],
        [
            "connection-rate-per-ip",
            None,
            "0",
            "New xgate and Socket.IO handshakes per second per client address "
            "(token bucket refill); 0 for no limit. Beyond it: 429.",
        ],
        [
            "connection-burst-per-ip",
            None,
            "100",
            "Handshakes a client address may make at once (token bucket size "
            "of --connection-rate-per-ip).",
        ],
        [
            "max-xnests-per-socket",
            None,
            "100",
            "Xnests one Socket.IO socket may be in; xnest/join beyond it is "
            "answered 429 too_many_xnests.",
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
            auth_secret=self._auth_secret(),
            jwt=self._jwt(),
            xgate_jwt=self._xgate_jwt(),
            offline_limit=_positive_int("offline-limit", self["offline-limit"]),
            offline_bytes=_byte_size("offline-bytes", self["offline-bytes"]),
            history_bytes=_byte_size("history-bytes", self["history-bytes"]),
            history_memory=_byte_size("history-memory", self["history-memory"]),
            max_send_queue=_positive_int("max-send-queue", self["max-send-queue"]),
            max_send_buffer=_byte_size("max-send-buffer", self["max-send-buffer"]),
            write_delay=_write_delay(self["write-delay"]),
            max_payload=_positive_int("max-payload", self["max-payload"]),
            cors_origins=self._check_origins(self["cors-origins"]),
            max_connections_per_ip=_count_or_off(
                "max-connections-per-ip", self["max-connections-per-ip"]
            ),
            connection_rate_per_ip=_rate_or_off(
                "connection-rate-per-ip", self["connection-rate-per-ip"]
            ),
            connection_burst_per_ip=_positive_int(
                "connection-burst-per-ip", self["connection-burst-per-ip"]
            ),
            max_xnests_per_socket=_positive_int(
                "max-xnests-per-socket", self["max-xnests-per-socket"]
            ),
            redis_url=self._check_redis(self["redis"]),
            redis_password=self._redis_password(),
            redis_prefix=self._check_prefix(self["redis-prefix"]),
            node_timeout=_positive_float("node-timeout", self["node-timeout"]),
            max_connections=0
            if max_connections == "0"
            else _positive_int("max-connections", max_connections),
            access_log=bool(self["access-log"]),
            header_timeout=_positive_float("header-timeout", self["header-timeout"]),
            body_min_rate=_byte_size("body-min-rate", self["body-min-rate"]),
        )
        _check_history_bounds(self["settings"])

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
            secret = _read_secret("auth-secret-file", path)
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
            key = load_token_key(_read_file("jwt-key-file", path))
        except ValueError as error:
            raise usage.UsageError(f"--jwt-key-file {path!r} {error}") from None
        return TokenVerifier(
            key,
            audience=self["jwt-audience"] or None,
            issuer=self["jwt-issuer"] or None,
            leeway=_seconds("jwt-leeway", self["jwt-leeway"]),
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
        return _read_secret("redis-password-file", path)

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
