# -*- test-case-name: tests.test_core_admission -*-
"""
Which WebSocket and Engine.IO handshakes a node admits (README, "Origins
and CORS" and the per-address options): pure rules, time passed in.

  - L{OriginPolicy}: a browser's C{Origin} must be the request's own host
    or one of the configured origins (or any, with C{*}); a client that
    sends no C{Origin} is not a browser, and no page can borrow its
    credentials, so it is allowed.
  - L{AddressLimits}: connections open per client address, and new
    handshakes per second per address (a token bucket with a burst).

A refusal is a L{Refusal}, which the front ends answer with the JSON
error object of PROTOCOL.md.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from xmeet.core.limits import TokenBucket

__all__ = [
    "CONNECTION_RATE_LIMITED",
    "ORIGIN_NOT_ALLOWED",
    "TOO_MANY_CONNECTIONS",
    "AddressLimits",
    "Lease",
    "OriginPolicy",
    "Refusal",
    "normalize_origin",
]

ORIGIN_NOT_ALLOWED = "origin_not_allowed"
TOO_MANY_CONNECTIONS = "too_many_connections"
CONNECTION_RATE_LIMITED = "connection_rate_limited"

_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Refusal:
    """
    A handshake refused: the HTTP status and the error object's C{code}
    and C{message}. The code also names the refusal in the node's metrics.
    """

    status: int
    code: str
    message: str


def _authority(scheme: str, netloc: str) -> tuple[str, int] | None:
    """
    The host and port of C{netloc} (C{host[:port]}, IPv6 in brackets),
    the port defaulting to that of C{scheme}; C{None} if malformed.
    """
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return host.lower(), port


def normalize_origin(origin: str) -> str | None:
    """
    C{origin} as browsers send it for an http(s) page,
    C{scheme://host[:port]} in lower case without the scheme's default
    port; C{None} for anything else (C{null}, other schemes, paths,
    garbage), which no configured origin matches.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.path not in ("", "/") or parts.query:
        return None
    if parts.fragment:
        return None
    authority = _authority(scheme, parts.netloc)
    if authority is None:
        return None
    host, port = authority
    if ":" in host:
        host = f"[{host}]"
    if port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _same_host(origin: str, host_header: str | None) -> bool:
    """
    Whether C{origin} names the host the request was sent to (its C{Host}
    header). The scheme is left out: behind a TLS-terminating proxy the
    request arrives as plain HTTP from an C{https} page; a C{Host} without
    a port means the default port of the origin's scheme.
    """
    if not host_header:
        return False
    scheme = origin.split("://", 1)[0]
    origin_authority = _authority(scheme, origin.split("://", 1)[1])
    return origin_authority is not None and origin_authority == _authority(scheme, host_header)


@attrs.frozen
class OriginPolicy:
    """
    The browser origins allowed to use the node's endpoints.

    @ivar origins: the configured origins, normalized; C{*} allows any.
    """

    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def of(cls, configured: tuple[str, ...]) -> OriginPolicy:
        """
        The policy of C{--cors-origins}: a list of origins, or C{*}.
        """
        normalized = (normalize_origin(origin) for origin in configured if origin != "*")
        return cls(frozenset(o for o in normalized if o is not None), "*" in configured)

    def allows(self, origin: str | None, host_header: str | None) -> bool:
        """
        Whether a request with C{Origin} C{origin} (C{None}: none sent)
        sent to C{Host} C{host_header} may go on.
        """
        if origin is None or self.any_origin:
            return True
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        return normalized in self.origins or _same_host(normalized, host_header)

    def refusal(self, origin: str | None, host_header: str | None) -> Refusal | None:
        """
        The 403 refusal of a request from a disallowed origin, else C{None}.
        """
        if self.allows(origin, host_header):
            return None
        shown = (origin or "")[:100]
        return Refusal(403, ORIGIN_NOT_ALLOWED, f"origin {shown!r} is not allowed")


class Lease:
    """
    One admitted connection (or Engine.IO session) of an address, counted
    until L{release}d. Releasing twice counts out once.

    @ivar address: the client address it counts for.
    """

    __slots__ = ("_limits", "address")

    def __init__(self, limits: AddressLimits, address: str) -> None:
        self._limits: AddressLimits | None = limits
        self.address = address

    def release(self) -> None:
        """
        The connection ended: it no longer counts.
        """
        limits, self._limits = self._limits, None
        if limits is not None:
            limits.closed(self.address)


class AddressLimits:
    """
    Connections open and handshakes per second, per client address.

    Counts are kept, with a connection limit, for addresses with open
    connections only. Rate
    buckets are kept, least recently used first, only while they could
    still refuse: a bucket unused for C{burst / rate} seconds is full
    again, just like a new one, so it is forgotten. At most
    C{max_addresses} buckets are kept whatever clients do; beyond that the
    least recently used go first.

    @ivar max_connections: connections per address, 0 for no limit.
    @ivar rate: new handshakes a second per address, 0 for no limit.
    @ivar burst: handshakes an address may make at once.
    """

    def __init__(
        self, max_connections: int, rate: float, burst: int, max_addresses: int = 100_000
    ) -> None:
        self.max_connections = max_connections
        self.rate = rate
        self.burst = burst
        self._max_addresses = max_addresses
        self._open: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def connections(self, address: str) -> int:
        """
        Connections of C{address} admitted and not yet released.
        """
        return self._open.get(address, 0)

    @property
    def addresses(self) -> int:
        """
        Addresses with open connections.
        """
        return len(self._open)

    @property
    def buckets(self) -> int:
        """
        Rate buckets kept now.
        """
        return len(self._buckets)

    def admit(self, address: str, now: float) -> Lease | Refusal | None:
        """
        A L{Lease} for a new connection of C{address} at C{now}, or the
        429 refusal when the address has its limit of open connections or
        handshakes too fast. A refused handshake still takes a token.
        Without a connection limit there is nothing to count: an admitted
        connection gets C{None}, and holds nothing.
        """
        if not self._take_token(address, now):
            return Refusal(
                429,
                CONNECTION_RATE_LIMITED,
                f"more than {self.rate:g} new connections a second from one address",
            )
        if not self.max_connections:
            return None
        count = self._open.get(address, 0)
        if count >= self.max_connections:
            return Refusal(
                429,
                TOO_MANY_CONNECTIONS,
                f"more than {self.max_connections} connections from one address",
            )
        self._open[address] = count + 1
        return Lease(self, address)

    def closed(self, address: str) -> None:
        """
        One connection of C{address} ended (see L{Lease.release}).
        """
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def _take_token(self, address: str, now: float) -> bool:
        if not self.rate:
            return True
        self._forget_full_buckets(now)
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        self._buckets[address] = bucket
        return bucket.take(now)

    def _forget_full_buckets(self, now: float) -> None:
        """
        Drop the buckets refilled since their last use, and the least
        recently used beyond C{max_addresses} (the dict keeps them by last
        use: a used bucket moves to its end).
        """
        refill = self.burst / self.rate
        buckets = self._buckets
        while buckets:
            address, bucket = next(iter(buckets.items()))
            if len(buckets) < self._max_addresses and bucket.updated + refill > now:
                break
            del buckets[address]
