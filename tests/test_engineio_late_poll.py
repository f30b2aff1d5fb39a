"""
A long-polling client's close packet racing with its own poll: the poll
that arrives an instant after the close gets the noop it would have got
before it, not an unknown-session error.
"""

from __future__ import annotations

from tests.test_engineio_resource import ResourceTestCase
from tests.test_engineio_session import body_of
from xmeet.engineio.server import LATE_POLL_GRACE


class LatePollTests(ResourceTestCase):
    """
    L{xmeet.engineio.EngineIOServer.closed_by_client}.
    """

    def close(self, sid: str) -> None:
        posted = self.request(b"POST", b"1", EIO="4", transport="polling", sid=sid)
        self.assertEqual(body_of(posted), b"ok")

    def poll(self, sid: str) -> bytes:
        return body_of(self.request(EIO="4", transport="polling", sid=sid))

    def test_one_late_poll(self) -> None:
        """
        The first poll after the close gets a noop; the next one the
        official unknown-session error.
        """
        sid = self.handshake()
        self.close(sid)
        self.assertEqual(self.poll(sid), b"6")
        self.assertRefused(
            self.request(EIO="4", transport="polling", sid=sid), 1, "Session ID unknown"
        )

    def test_grace_expires(self) -> None:
        """
        After the grace period, a poll is refused as for any unknown session.
        """
        sid = self.handshake()
        self.close(sid)
        self.clock.advance(LATE_POLL_GRACE)
        self.assertRefused(
            self.request(EIO="4", transport="polling", sid=sid), 1, "Session ID unknown"
        )

    def test_pending_poll_answered_instead(self) -> None:
        """
        When a poll was pending at the close, it got the noop; a later poll
        is refused at once.
        """
        sid = self.handshake()
        pending = self.request(EIO="4", transport="polling", sid=sid)
        self.close(sid)
        self.assertEqual(body_of(pending), b"6")
        self.assertRefused(
            self.request(EIO="4", transport="polling", sid=sid), 1, "Session ID unknown"
        )
