# -*- test-case-name: tests.test_core_admission -*-
"""
Tests for L{xmeet.core.admission}: the origin policy and the per-address
limits, with plain numbers for time.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.admission import (
    CONNECTION_RATE_LIMITED,
    ORIGIN_NOT_ALLOWED,
    TOO_MANY_CONNECTIONS,
    AddressLimits,
    Lease,
    OriginPolicy,
    Refusal,
    normalize_origin,
)

__all__ = ["AddressLimitsTests", "NormalizeOriginTests", "OriginPolicyTests"]

unhurried = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class NormalizeOriginTests(SynchronousTestCase):
    """
    L{normalize_origin} gives http(s) origins one spelling and refuses the
    rest.
    """

    def test_spellings(self) -> None:
        """
        Case, a default port and a trailing slash do not matter; another
        port does.
        """
        cases = {
            "http://Example.COM": "http://example.com",
            "http://example.com:80": "http://example.com",
            "https://example.com:443/": "https://example.com",
            "https://example.com:80": "https://example.com:80",
            "http://127.0.0.1:8080": "http://127.0.0.1:8080",
            "http://[::1]:8080": "http://[::1]:8080",
        }
        for origin, expected in cases.items():
            self.assertEqual(normalize_origin(origin), expected, origin)

    def test_not_http_origins(self) -> None:
        """
        C{null}, other schemes, paths, credentials, bad ports and garbage
        are no origin anyone can list.
        """
        for origin in [
            "null",
            "",
            "file://",
            "chrome-extension://abc",
            "ws://example.com",
            "http://example.com/page",
            "http://example.com?x=1",
            "http://user@example.com",
            "http://example.com:99999",
            "http://example.com:x",
            "http://",
            "http://[::1",
        ]:
            self.assertIsNone(normalize_origin(origin), origin)

    @unhurried
    @given(st.text())
    def test_any_text(self, text: str) -> None:
        """
        Any text normalizes without raising, and a normalized origin is
        its own normal form.
        """
        normalized = normalize_origin(text)
        if normalized is not None:
            self.assertEqual(normalize_origin(normalized), normalized)


class OriginPolicyTests(SynchronousTestCase):
    """
    L{OriginPolicy}: non-browsers, the node's own pages and listed
    origins are allowed; other browser origins get 403.
    """

    def test_no_origin_allowed(self) -> None:
        """
        A client that sends no C{Origin} is no browser: allowed.
        """
        self.assertTrue(OriginPolicy.of(()).allows(None, "example.com"))

    def test_same_host_allowed(self) -> None:
        """
        A page of the node itself (its origin names the C{Host} the request
        was sent to) is allowed by default, whatever the scheme (a TLS
        proxy may stand in between).
        """
        policy = OriginPolicy.of(())
        self.assertTrue(policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080"))
        self.assertTrue(policy.allows("http://Chat.Example", "chat.example"))
        self.assertTrue(policy.allows("https://chat.example", "chat.example"))
        self.assertTrue(policy.allows("https://chat.example", "chat.example:443"))
        self.assertTrue(policy.allows("http://[::1]:8080", "[::1]:8080"))

    def test_other_hosts_refused(self) -> None:
        """
        Another host, another port of the same host, C{null} and a missing
        or malformed C{Host} are refused by default.
        """
        policy = OriginPolicy.of(())
        for origin, host in [
            ("http://evil.example", "127.0.0.1:8080"),
            ("http://127.0.0.1:8081", "127.0.0.1:8080"),
            ("http://127.0.0.1", "127.0.0.1:8080"),
            ("null", "127.0.0.1:8080"),
            ("http://127.0.0.1:8080", None),
            ("http://127.0.0.1:8080", "127.0.0.1:99999"),
        ]:
            self.assertFalse(policy.allows(origin, host), (origin, host))

    def test_refusal(self) -> None:
        """
        A refused origin is 403 C{origin_not_allowed}, naming the origin.
        """
        refusal = OriginPolicy.of(()).refusal("http://evil.example", "127.0.0.1:8080")
        self.assertEqual(
            refusal,
            Refusal(403, ORIGIN_NOT_ALLOWED, "origin 'http://evil.example' is not allowed"),
        )
        self.assertIsNone(OriginPolicy.of(()).refusal(None, None))

    def test_listed(self) -> None:
        """
        Listed origins are allowed, spelled in any normal form; others are
        not.
        """
        policy = OriginPolicy.of(("https://App.example:443", "http://b.example:8000"))
        self.assertTrue(policy.allows("https://app.example", "chat.example"))
        self.assertTrue(policy.allows("http://b.example:8000", "chat.example"))
        self.assertFalse(policy.allows("http://app.example", "chat.example"))
        self.assertFalse(policy.allows("http://evil.example", "chat.example"))

    def test_any(self) -> None:
        """
        C{*} allows every origin, even one that is not http(s).
        """
        policy = OriginPolicy.of(("*",))
        for origin in ["http://evil.example", "null", "chrome-extension://x"]:
            self.assertTrue(policy.allows(origin, "chat.example"), origin)


class AddressLimitsTests(SynchronousTestCase):
    """
    L{AddressLimits}: connections per address, handshakes per second per
    address, and bounded memory.
    """

    def admitted(self, limits: AddressLimits, address: str, now: float = 0) -> Lease:
        lease = limits.admit(address, now)
        assert isinstance(lease, Lease), lease
        return lease

    def test_connections_per_address(self) -> None:
        """
        An address gets C{max_connections} leases, then 429
        C{too_many_connections}; other addresses are not affected; a
        released lease makes room for one more.
        """
        limits = AddressLimits(2, 0, 1)
        first = self.admitted(limits, "10.0.0.1")
        self.admitted(limits, "10.0.0.1")
        refusal = limits.admit("10.0.0.1", 0)
        assert isinstance(refusal, Refusal)
        self.assertEqual((refusal.status, refusal.code), (429, TOO_MANY_CONNECTIONS))
        self.admitted(limits, "10.0.0.2")
        first.release()
        self.admitted(limits, "10.0.0.1")
        self.assertEqual(limits.connections("10.0.0.1"), 2)

    def test_release_once(self) -> None:
        """
        Releasing a lease twice counts its connection out once.
        """
        limits = AddressLimits(5, 0, 1)
        first = self.admitted(limits, "a")
        self.admitted(limits, "a")
        first.release()
        first.release()
        self.assertEqual(limits.connections("a"), 1)

    def test_back_to_zero(self) -> None:
        """
        After many connections of many addresses open and close, in any
        order, nothing is counted nor kept.
        """
        limits = AddressLimits(5, 0, 1)
        leases = [self.admitted(limits, f"10.0.{n % 7}.1") for n in range(35)]
        for lease in leases[::2] + leases[1::2]:
            lease.release()
        self.assertEqual((limits.addresses, limits.connections("10.0.0.1")), (0, 0))

    def test_no_connection_limit(self) -> None:
        """
        C{max_connections} 0 admits any number, with nothing to count or
        release.
        """
        limits = AddressLimits(0, 0, 1)
        self.assertEqual([limits.admit("a", 0) for _ in range(1000)], [None] * 1000)
        self.assertEqual((limits.addresses, limits.connections("a")), (0, 0))

    def test_rate(self) -> None:
        """
        An address may make C{burst} handshakes at once, then C{rate} a
        second; beyond, 429 C{connection_rate_limited}, which holds no
        connection.
        """
        limits = AddressLimits(100, 2, 3)
        for _ in range(3):
            self.admitted(limits, "a", 10)
        refusal = limits.admit("a", 10)
        assert isinstance(refusal, Refusal)
        self.assertEqual((refusal.status, refusal.code), (429, CONNECTION_RATE_LIMITED))
        self.assertEqual(limits.connections("a"), 3)
        self.admitted(limits, "b", 10)
        self.admitted(limits, "a", 10.5)
        self.assertIsInstance(limits.admit("a", 10.5), Refusal)

    def test_full_buckets_forgotten(self) -> None:
        """
        A bucket unused long enough to be full again is forgotten: the
        address starts afresh with the same burst.
        """
        limits = AddressLimits(100, 10, 20)
        for n in range(20):
            self.admitted(limits, f"a{n}", 0)
        self.assertEqual(limits.buckets, 20)
        self.admitted(limits, "b", 2.5)
        self.assertEqual(limits.buckets, 1)
        for _ in range(20):
            self.admitted(limits, "a0", 2.5)
        self.assertIsInstance(limits.admit("a0", 2.5), Refusal)

    def test_many_addresses_bounded(self) -> None:
        """
        However many addresses handshake within the refill time, at most
        C{max_addresses} buckets are kept.
        """
        limits = AddressLimits(0, 1, 100, max_addresses=1000)
        for n in range(50_000):
            limits.admit(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", n / 1_000_000)
        self.assertEqual(limits.buckets, 1000)

    def test_no_rate_limit_keeps_no_bucket(self) -> None:
        """
        Without a rate limit, no bucket is kept at all.
        """
        limits = AddressLimits(5, 0, 1)
        for n in range(100):
            self.admitted(limits, f"a{n}").release()
        self.assertEqual((limits.buckets, limits.addresses), (0, 0))
