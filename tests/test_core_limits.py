# -*- test-case-name: tests.test_core_limits -*-
"""
Tests for L{xmeet.core.limits}: the token bucket, the flood detector and
the sender policy, driven with plain numbers for time.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmeet.core.limits import FloodDetector, SenderPolicy, TokenBucket, Verdict

__all__ = ["FloodDetectorTests", "SenderPolicyTests", "TokenBucketTests"]

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


class SenderPolicyTests(SynchronousTestCase):
    """
    L{SenderPolicy} judges each message with the bucket, the flood
    detector and a telling throttle of one a second.
    """

    def test_accepts_by_rate_and_burst(self) -> None:
        """
        C{burst} messages pass at once, then C{rate} a second; the first
        message dropped is told, the next within a second is not.
        """
        policy = SenderPolicy(rate=2, burst=3, now=0)
        self.assertEqual(
            [policy.judge(0) for _ in range(4)],
            [Verdict.ACCEPT] * 3 + [Verdict.DROP_AND_TELL],
        )
        self.assertEqual(
            [policy.judge(0.5), policy.judge(0.5)], [Verdict.ACCEPT, Verdict.DROP_SILENTLY]
        )

    def test_tells_at_most_once_a_second(self) -> None:
        """
        The first drop is told at once; later ones only a whole second
        after the previous one told.
        """
        policy = SenderPolicy(rate=1, burst=0, now=0, closes_floods=False)
        answers = [policy.judge(now) for now in [0, 0.5, 0.999, 1, 1.5, 1.999, 3.5]]
        told, silent = Verdict.DROP_AND_TELL, Verdict.DROP_SILENTLY
        self.assertEqual(answers, [told, silent, silent, told, silent, silent, told])

    def test_cannot_tell_is_silent_and_not_counted(self) -> None:
        """
        A drop judged with C{can_tell=False} is silent and does not use up
        the second's telling: the next drop that can be told is.
        """
        policy = SenderPolicy(rate=1, burst=0, now=0, closes_floods=False)
        self.assertEqual(policy.judge(0, can_tell=False), Verdict.DROP_SILENTLY)
        self.assertEqual(policy.judge(0.5), Verdict.DROP_AND_TELL)

    def test_closes_at_ten_times_rate_for_five_seconds(self) -> None:
        """
        With rate 2, 21 messages a second for five seconds: the 21st of the
        fifth second closes, and nothing before it does.
        """
        policy = SenderPolicy(rate=2, burst=2, now=0)
        answers = [
            [policy.judge(second + index / 32) is Verdict.CLOSE for index in range(21)]
            for second in range(5)
        ]
        self.assertNotIn(True, sum(answers[:4], []))
        self.assertEqual(answers[4], [False] * 20 + [True])

    def test_accepted_messages_count_towards_a_flood(self) -> None:
        """
        A bucket large enough to accept a flood does not hide it: with rate
        1 and burst 1000, 11 messages a second are accepted for four
        seconds, and the 11th of the fifth second closes.
        """
        policy = SenderPolicy(rate=1, burst=1000, now=0)
        answers = [policy.judge(second + index / 16) for second in range(5) for index in range(11)]
        self.assertEqual(answers, [Verdict.ACCEPT] * 54 + [Verdict.CLOSE])

    def test_without_closing_floods(self) -> None:
        """
        With C{closes_floods=False}, a flood is only rate limited: the
        bucket's messages pass, every other one is dropped, none closes.
        """
        policy = SenderPolicy(rate=1, burst=1, now=0, closes_floods=False)
        answers = [policy.judge(second + index / 32) for second in range(10) for index in range(20)]
        self.assertNotIn(Verdict.CLOSE, answers)
        self.assertEqual(answers.count(Verdict.ACCEPT), 10)

    @unhurried
    @given(st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=100))
    def test_telling_model(self, gaps: list[float]) -> None:
        """
        For any arrival times of dropped messages, one is told exactly when
        at least a second has passed since the last one told.
        """
        policy = SenderPolicy(rate=1, burst=0, now=0, closes_floods=False)
        now = 0.0
        last = None
        for gap in gaps:
            now += gap
            expected = last is None or now - last >= 1
            told = policy.judge(now) is Verdict.DROP_AND_TELL
            self.assertEqual(told, expected)
            if expected:
                last = now
