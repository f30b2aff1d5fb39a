# -*- test-case-name: tests.test_core_limits -*-
"""
Per-connection rate limits (PROTOCOL.md section 1).

A token bucket decides which messages pass; a flood detector notices a
client that keeps sending far beyond the limit, so it can be disconnected.
Both take the current time as an argument and so need no clock of their own.
"""

from __future__ import annotations

__all__ = ["FloodDetector", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """
    Refills C{rate} tokens a second up to C{burst}; each message takes one.
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    @property
    def updated(self) -> float:
        """
        When tokens were last counted (the last C{take} at a later time).
        """
        return self._updated

    def take(self, now: float) -> bool:
        """
        Take one token at time C{now}; C{False} when the bucket is empty.
        """
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class FloodDetector:
    """
    Notices a sender that stays above C{factor} times C{rate} for
    C{seconds} whole consecutive seconds.

    Time is cut in one-second windows; a window is flooded when it saw more
    than C{factor * rate} messages. A gap of a silent window breaks the
    streak.
    """

    __slots__ = ("_count", "_limit", "_seconds", "_streak", "_window")

    def __init__(self, rate: float, factor: float = 10, seconds: int = 5) -> None:
        self._limit = rate * factor
        self._seconds = seconds
        self._window = -1
        self._count = 0
        self._streak = 0

    def record(self, now: float) -> bool:
        """
        Record one message at time C{now}; C{True} once the sender has
        flooded for the whole period.
        """
        window = int(now)
        if window != self._window:
            flooded = self._count > self._limit
            contiguous = window == self._window + 1
            self._streak = self._streak + 1 if flooded and contiguous else 0
            self._window = window
            self._count = 0
        self._count += 1
        if self._count > self._limit and self._streak + 1 >= self._seconds:
            return True
        return False


class RateLimiter:
    """
    The limits of one connection: which messages pass, when to tell the
    sender it was limited (at most once a second), and when to disconnect.
    """

    __slots__ = ("_bucket", "_flood", "_last_warning")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._flood = FloodDetector(rate)
        self._last_warning = float("-inf")

    def allow(self, now: float) -> bool:
        """
        Whether the message arriving at C{now} may pass.
        """
        return self._bucket.take(now)

    def is_flooding(self, now: float) -> bool:
        """
        Record a message at C{now}; C{True} when the sender should be
        disconnected.
        """
        return self._flood.record(now)

    def should_warn(self, now: float) -> bool:
        """
        Whether to send a rate-limit error now: at most one a second.
        """
        if now - self._last_warning >= 1:
            self._last_warning = now
            return True
        return False
