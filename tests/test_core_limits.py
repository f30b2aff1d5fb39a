# -*- test-case-name: tests.test_core_limits -*-
"""
Tests for L{xmeet.core.limits}: the token bucket, the flood detector and
the per-connection rate limiter, driven with plain numbers for time.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.limits import FloodDetector, RateLimiter, TokenBucket

__all__ = ["FloodDetectorTests", "RateLimiterTests", "TokenBucketTests"]

unhurried = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""
Hypothesis settings for these properties: a busy machine (tests running
in parallel) must slow them down, not fail them.
"""


def takes(bucket: TokenBucket, times: list[float]) -> list[bool]:
    """
    What C{bucket.take} answers at each of C{times}, in order.
    """
    return [bucket.take(now) for now in times]


def flood_answers(detector: FloodDetector, counts: list[int]) -> list[list[bool]]:
    """
    Feed C{counts[w]} messages in the one-second window C{w} (at C{w},
    C{w + 0.1}, ...; always inside the window) and collect every answer of
    C{detector.record}, window by window.
    """
    answers = []
    for window, count in enumerate(counts):
        answers.append([detector.record(window + index / (count + 1)) for index in range(count)])
    return answers


class TokenBucketTests(SynchronousTestCase):
    """
    L{TokenBucket} starts full, gives one token a message, refills at
    C{rate} per second and never holds more than C{burst}.
    """

    def test_starts_full(self) -> None:
        """
        A new bucket lets C{burst} messages through at once, then none.
        """
        bucket = TokenBucket(rate=1, burst=3, now=100)
        self.assertEqual(takes(bucket, [100] * 5), [True, True, True, False, False])

    def test_refills_at_rate(self) -> None:
        """
        An empty bucket gains C{rate} tokens a second: with rate 4, one
        token every quarter of a second (binary fractions keep the
        arithmetic exact).
        """
        bucket = TokenBucket(rate=4, burst=1, now=0)
        self.assertEqual(
            takes(bucket, [0, 0.125, 0.25, 0.25, 0.375, 0.5]),
            [True, False, True, False, False, True],
        )

    def test_capped_at_burst(self) -> None:
        """
        A long silence refills the bucket to C{burst} tokens, not more.
        """
        bucket = TokenBucket(rate=10, burst=2, now=0)
        self.assertEqual(takes(bucket, [0, 0]), [True, True])
        self.assertEqual(takes(bucket, [3600] * 4), [True, True, False, False])

    def test_time_going_back_gives_nothing(self) -> None:
        """
        A clock that steps backwards refills nothing and does not spoil
        the next refill.
        """
        bucket = TokenBucket(rate=1, burst=1, now=10)
        self.assertEqual(takes(bucket, [10, 5, 10.5, 11]), [True, False, False, True])

    def test_fractional_rate(self) -> None:
        """
        A rate below one message a second waits the whole period.
        """
        bucket = TokenBucket(rate=0.5, burst=1, now=0)
        self.assertEqual(takes(bucket, [0, 1, 1.5, 2]), [True, False, False, True])

    @unhurried
    @given(
        rate=st.integers(min_value=1, max_value=50),
        burst=st.integers(min_value=1, max_value=50),
        gaps=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=200),
    )
    def test_never_more_than_burst_plus_refill(
        self, rate: int, burst: int, gaps: list[float]
    ) -> None:
        """
        Over any period, the messages let through are at most C{burst}
        plus what the rate refills in that period.
        """
        bucket = TokenBucket(rate=rate, burst=burst, now=0)
        now = 0.0
        passed = 0
        for gap in gaps:
            now += gap
            passed += bucket.take(now)
        self.assertLessEqual(passed, burst + rate * now + 1e-6)

    @unhurried
    @given(
        rate=st.integers(min_value=1, max_value=50),
        burst=st.integers(min_value=1, max_value=50),
        seconds=st.lists(st.integers(min_value=1, max_value=10), max_size=50),
    )
    def test_one_message_a_second_always_passes(
        self, rate: int, burst: int, seconds: list[int]
    ) -> None:
        """
        A sender that waits at least a whole second between messages is
        never limited when the rate is at least one a second.
        """
        bucket = TokenBucket(rate=rate, burst=burst, now=0)
        now = 0
        for gap in seconds:
            now += gap
            self.assertTrue(bucket.take(now))


class FloodDetectorTests(SynchronousTestCase):
    """
    L{FloodDetector} answers C{True} once a sender has sent more than
    C{factor * rate} messages in each of C{seconds} consecutive one-second
    windows.
    """

    def test_five_flooded_seconds(self) -> None:
        """
        With rate 1 (limit 10 a second), 11 messages in each of five
        consecutive seconds: the first 54 records are C{False}, the 11th
        message of the fifth second is the first C{True}.
        """
        answers = flood_answers(FloodDetector(rate=1), [11] * 5)
        self.assertEqual(answers[:4], [[False] * 11] * 4)
        self.assertEqual(answers[4], [False] * 10 + [True])

    def test_keeps_answering_true(self) -> None:
        """
        Once flooding, every further message of that window is C{True}.
        """
        answers = flood_answers(FloodDetector(rate=1), [11] * 4 + [15])
        self.assertEqual(answers[4], [False] * 10 + [True] * 5)

    def test_at_the_limit_is_not_flooding(self) -> None:
        """
        Exactly C{factor * rate} messages a second, for any time, is fine.
        """
        answers = flood_answers(FloodDetector(rate=2), [20] * 30)
        self.assertNotIn(True, sum(answers, []))

    def test_silent_second_breaks_streak(self) -> None:
        """
        A second without any message starts the count of five again.
        """
        answers = flood_answers(FloodDetector(rate=1), [11] * 4 + [0] + [11] * 5)
        self.assertNotIn(True, sum(answers[:9], []))
        self.assertEqual(answers[9], [False] * 10 + [True])

    def test_calm_second_breaks_streak(self) -> None:
        """
        A second at or under the limit starts the count of five again.
        """
        answers = flood_answers(FloodDetector(rate=1), [11] * 4 + [10] + [11] * 4)
        self.assertNotIn(True, sum(answers, []))

    def test_custom_factor_and_seconds(self) -> None:
        """
        C{factor} and C{seconds} are honoured: factor 2 of rate 3 is a
        limit of 6, and one second of flood is enough.
        """
        answers = flood_answers(FloodDetector(rate=3, factor=2, seconds=1), [7])
        self.assertEqual(answers, [[False] * 6 + [True]])

    def test_windows_are_whole_seconds(self) -> None:
        """
        Windows are aligned on whole seconds of C{now}: 11 messages
        straddling a second boundary are two calm windows.
        """
        detector = FloodDetector(rate=1, seconds=1)
        answers = [detector.record(0.5 + index * 0.09) for index in range(11)]
        self.assertEqual(answers, [False] * 11)

    @unhurried
    @given(
        counts=st.lists(st.integers(min_value=0, max_value=14), max_size=20),
        seconds=st.integers(min_value=1, max_value=6),
    )
    def test_matches_model(self, counts: list[int], seconds: int) -> None:
        """
        For any number of messages per second, the answers are those of a
        direct reading of the rule: the n-th message of second w is
        flooding when n exceeds the limit and the C{seconds - 1} seconds
        before w all exceeded it too.
        """
        limit = 10
        expected = []
        for window, count in enumerate(counts):
            before = counts[max(window - seconds + 1, 0) : window]
            streak = window >= seconds - 1 and all(c > limit for c in before)
            expected.append([streak and number > limit for number in range(1, count + 1)])
        self.assertEqual(flood_answers(FloodDetector(rate=1, seconds=seconds), counts), expected)


class RateLimiterTests(SynchronousTestCase):
    """
    L{RateLimiter} combines the bucket, the flood detector and a warning
    throttle of one a second.
    """

    def test_allow_uses_rate_and_burst(self) -> None:
        """
        C{allow} lets C{burst} messages through at once, then C{rate} a
        second.
        """
        limiter = RateLimiter(rate=2, burst=3, now=0)
        self.assertEqual([limiter.allow(0) for _ in range(4)], [True, True, True, False])
        self.assertEqual([limiter.allow(0.5), limiter.allow(0.5)], [True, False])

    def test_warns_at_most_once_a_second(self) -> None:
        """
        The first warning is given at once; later ones only a whole
        second after the previous one given.
        """
        limiter = RateLimiter(rate=1, burst=1, now=0)
        answers = [limiter.should_warn(now) for now in [0, 0.5, 0.999, 1, 1.5, 1.999, 3.5]]
        self.assertEqual(answers, [True, False, False, True, False, False, True])

    def test_flooding_uses_ten_times_rate_for_five_seconds(self) -> None:
        """
        C{is_flooding} applies ten times the rate for five seconds: with
        rate 2, 21 messages a second for five seconds.
        """
        limiter = RateLimiter(rate=2, burst=2, now=0)
        answers = [
            [limiter.is_flooding(second + index / 32) for index in range(21)] for second in range(5)
        ]
        self.assertNotIn(True, sum(answers[:4], []))
        self.assertEqual(answers[4], [False] * 20 + [True])

    @unhurried
    @given(st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=100))
    def test_warnings_model(self, gaps: list[float]) -> None:
        """
        For any arrival times, a warning is given exactly when at least a
        second has passed since the last warning given.
        """
        limiter = RateLimiter(rate=1, burst=1, now=0)
        now = 0.0
        last = None
        for gap in gaps:
            now += gap
            expected = last is None or now - last >= 1
            self.assertEqual(limiter.should_warn(now), expected)
            if expected:
                last = now
