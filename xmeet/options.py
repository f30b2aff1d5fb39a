# -*- test-case-name: tests.test_tap -*-
"""
The values of C{twistd xmeet}'s options: the table of options with their
help, grouped by what they govern, and the functions that turn an
option's text (or the file it names) into a value or refuse it with a
C{usage.UsageError} naming the option; none needs the reactor. Kept apart
from L{xmeet.tap}, so that the command line reads as what it is (the
options, the settings they make, the service) and each parser can be
tested alone.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.python import usage

from xmeet.config import Settings

__all__ = [
    "OPTION_PARAMETERS",
    "at_least_a_second",
    "byte_size",
    "check_history_bounds",
    "check_origins",
    "check_prefix",
    "check_redis",
    "check_timezone",
    "count_or_off",
    "positive_float",
    "positive_int",
    "rate_or_off",
    "read_file",
    "read_secret",
    "seconds",
    "write_delay",
]


CONNECTION_OPTIONS: list[list[Any]] = [
    [
        "port",
        "p",
        "tcp:8080",
        "Twisted endpoint description to listen on; a bare number "
        "means TCP on all interfaces (tcp:8080:interface=127.0.0.1, "
        "ssl:8443:privateKey=key.pem:certKey=cert.pem). TCP and SSL ports "
        "listen with backlog=1024 unless the description sets it.",
    ],
    [
        "max-connections",
        None,
        "0",
        "Concurrent WebSocket connections accepted; 0 for "
        "no limit. Beyond it the handshake gets 503.",
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
    [
        "cors-origins",
        None,
        "",
        "Comma-separated browser origins allowed besides the node's own "
        "pages, for CORS and for the WebSocket and long-polling handshakes "
        "of /xgate/ and /socket.io/ (others get 403), or * for any (CORS "
        "without credentials). Clients that send no Origin are allowed.",
    ],
]
"""
Where the node listens, and what its HTTP and WebSocket connections may cost it.
"""


MESSAGE_OPTIONS: list[list[Any]] = [
    [
        "max-message-size",
        None,
        "65536",
        "Largest accepted message in bytes, after "
        "reassembly; larger ones close the connection with 1009.",
    ],
    [
        "max-payload",
        None,
        "1000000",
        "Engine.IO maxPayload: largest long-polling body or Socket.IO WebSocket message, in bytes.",
    ],
    ["rate", None, "20", "Messages per second per connection (token bucket refill)."],
    ["burst", None, "40", "Messages a connection may send at once (token bucket size)."],
    [
        "max-xnests-per-socket",
        None,
        "100",
        "Xnests one Socket.IO socket may be in; xnest/join beyond it is "
        "answered 429 too_many_xnests.",
    ],
    ["ping-interval", None, "25", "Seconds between heartbeats on idle connections."],
    [
        "ping-timeout",
        None,
        "20",
        "Seconds to wait for a heartbeat answer before dropping the connection.",
    ],
]
"""
What a client may send, how fast, and how its connection is kept alive.
"""


DELIVERY_OPTIONS: list[list[Any]] = [
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
]
"""
How much a node queues for a slow client, and how it batches writes.
"""


KEPT_OPTIONS: list[list[Any]] = [
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
        "max-idle-rooms",
        None,
        "10000",
        "Empty xnests whose history is kept in memory; the "
        "least recently used beyond this are forgotten.",
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
    ["timezone", None, "UTC", "IANA time zone of send_time in frames (e.g. Asia/Shanghai)."],
]
"""
What the node keeps: xnest histories, idle xnests, offline IM messages,
and the time zone of their send_time.
"""


LOGIN_OPTIONS: list[list[Any]] = [
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
        "Seconds of clock skew allowed on a JWT's exp and nbf; a session ends at exp plus this.",
    ],
]
"""
How clients prove who they are: an HMAC secret or JWTs (one kind per server).
"""


CLUSTER_OPTIONS: list[list[Any]] = [
    [
        "redis",
        None,
        None,
        "redis://HOST:PORT/DB to mirror rooms to and cluster through; "
        "without it everything lives in this process.",
    ],
    [
        "redis-password-file",
        None,
        None,
        "File holding the password Redis asks for (one line), used with "
        "--redis instead of a password in the URL, which ps shows.",
    ],
    ["redis-prefix", None, "xmeet:", "Prefix of every Redis key and channel of this node."],
    [
        "node-timeout",
        None,
        "15",
        "Seconds after which a silent node counts as dead; its members leave (needs --redis).",
    ],
]
"""
The Redis that nodes of a cluster share.
"""

OPTION_PARAMETERS = [
    *CONNECTION_OPTIONS,
    *MESSAGE_OPTIONS,
    *DELIVERY_OPTIONS,
    *KEPT_OPTIONS,
    *LOGIN_OPTIONS,
    *CLUSTER_OPTIONS,
]
"""
C{optParameters} of L{xmeet.tap.Options}, in the order C{--help} lists them.
"""


_LARGEST_KEY_FILE = 65536
"""
Bytes read at most from a key or secret file: a PEM key or certificate is
a few kilobytes; more is a file given by mistake.
"""

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)


def byte_size(name: str, value: str) -> int:
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


def check_history_bounds(settings: Settings) -> None:
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


def positive_int(name: str, value: str) -> int:
    """
    A count: a whole number, at least 1.
    """
    try:
        number = int(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise usage.UsageError(f"--{name} must be at least 1, not {number}")
    return number


def positive_float(name: str, value: str) -> float:
    """
    A finite number above 0.
    """
    try:
        number = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise usage.UsageError(f"--{name} must be a positive number, not {value!r}")
    return number


def seconds(name: str, value: str) -> float:
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


def count_or_off(name: str, value: str) -> int:
    """
    A limit that 0 turns off.
    """
    return 0 if value.strip() == "0" else positive_int(name, value)


def rate_or_off(name: str, value: str) -> float:
    """
    A rate that 0 turns off.
    """
    try:
        number = float(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number, not {value!r}") from None
    return 0.0 if number == 0 else positive_float(name, value)


def at_least_a_second(name: str, value: str) -> float:
    """
    Heartbeat periods: Autobahn batches its auto-ping timers in whole
    seconds, so a shorter period would ping (and time out) at random.
    """
    seconds = positive_float(name, value)
    if seconds < 1:
        raise usage.UsageError(f"--{name} must be at least 1 second, not {value!r}")
    return seconds


def write_delay(value: str) -> float:
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


def read_file(name: str, path: str) -> bytes:
    """
    The bytes of a key or secret file, at most L{_LARGEST_KEY_FILE}.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(_LARGEST_KEY_FILE + 1)
    except OSError as error:
        raise usage.UsageError(f"--{name} {path!r}: {error.strerror}") from None
    if len(data) > _LARGEST_KEY_FILE:
        raise usage.UsageError(f"--{name} {path!r} is larger than {_LARGEST_KEY_FILE} bytes")
    return data


def read_secret(name: str, path: str) -> str:
    """
    The secret held by the file at C{path}: its first line, without
    surrounding white space (the newline an editor or C{echo} adds).
    """
    lines = read_file(name, path).strip().splitlines()
    if not lines:
        raise usage.UsageError(f"--{name} {path!r} is empty")
    try:
        return lines[0].strip().decode("utf-8")
    except UnicodeDecodeError:
        raise usage.UsageError(f"--{name} {path!r} is not UTF-8 text") from None


def check_origins(value: str) -> tuple[str, ...]:
    """
    The comma-separated CORS origins: each C{*} or an http(s) origin.
    """
    origins = tuple(origin.strip() for origin in value.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise usage.UsageError(f"--cors-origins: {origin!r} is not * nor an http(s):// origin")
    return origins


def check_redis(url: str | None) -> str | None:
    """
    A Redis URL that parses (L{xmeet.store.redis.parse_redis_url}), or none.
    """
    if url is None:
        return None
    from xmeet.store.redis import parse_redis_url

    try:
        parse_redis_url(url)
    except ValueError as error:
        raise usage.UsageError(f"--redis: {error}") from None
    return url


def check_prefix(prefix: str) -> str:
    """
    A Redis key prefix: not empty, without white space.
    """
    if not prefix or any(character.isspace() for character in prefix):
        raise usage.UsageError("--redis-prefix must be non-empty, without white space")
    return prefix


def check_timezone(name: str) -> str:
    """
    An IANA time zone name this machine knows.
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise usage.UsageError(f"--timezone {name!r} is not a known time zone") from None
    return name
