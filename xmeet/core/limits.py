# -*- test-case-name: tests.test_core_limits -*-
"""
Per-sender rate limits (PROTOCOL.md section 1).

A token bucket decides which messages pass; a flood detector notices a
client that keeps sending far beyond the limit, so it can be disconnected;
L{SenderPolicy} combines them into one verdict per message for every front
end. All take the current time as an argument and so need no clock of
their own.
"""

from __future__ import annotations

import enum

__all__ = ["FloodDetector", "SenderPolicy", "TokenBucket", "Verdict"]


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


class Verdict(enum.Enum):
    """
    What a front end does with one message, as L{SenderPolicy} judges it.
    """

    ACCEPT = "accept"
    """
    Handle the message.
    """

    DROP_AND_TELL = "drop-and-tell"
    """
    Drop the message and tell the sender it was rate limited.
    """

    DROP_SILENTLY = "drop-silently"
    """
    Drop the message; the sender was told less than a second ago.
    """

    CLOSE = "close"
    """
    Close the connection: the sender keeps sending far above the rate.
    """


class SenderPolicy:
    """
    The rate rules of one sender (PROTOCOL.md section 1), as one decision
    per message: C{rate} messages a second with bursts of C{burst} pass; a
    limited sender is told at most once a second; a sender above ten times
    the rate for five whole seconds is closed.

    Every front end that limits a sender keeps one of these and maps its
    L{Verdict}s onto its wire; one that answers every call (Socket.IO
    acknowledgements, the IM API) passes C{closes_floods=False} and tells
    every drop.
    """

    __slots__ = ("_bucket", "_flood", "_last_told")

    def __init__(
        self, rate: float, burst: float, now: float, *, closes_floods: bool = True
    ) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._flood = FloodDetector(rate) if closes_floods else None
        self._last_told = float("-inf")

    def judge(self, now: float, *, can_tell: bool = True) -> Verdict:
        """
        The verdict on one message arriving at C{now}.

        @param can_tell: C{False} while the sender cannot be told anything
            (it is still joining): a drop is then silent and does not count
            as the one told this second.
        """
        if self._flood is not None and self._flood.record(now):
            return Verdict.CLOSE
        if self._bucket.take(now):
            return Verdict.ACCEPT
        if can_tell and now - self._last_told >= 1:
            self._last_told = now
            return Verdict.DROP_AND_TELL
        return Verdict.DROP_SILENTLY
