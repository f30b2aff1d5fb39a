"""
Tests for JWT logins in L{xmeet.im.service.IMService} (PROTOCOL.md section 3) with
in-memory clients and a fake clock: C{logIn} with a token, the session's
end at the token's expiry, C{session/refresh}, a JWT as the HTTP API's
bearer, and the expiry of sessions held by other nodes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import txredisapi
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cluster_support import redis_cleanup, unique_prefix
from tests.test_core_im import payloads
from tests.test_im import NOW, FakeClient, Harness, WireService, wire
from tests.test_im_backend import im_backend
from tests.token_support import SECRET, ec_private, public_pem, rsa_private, signed
from tests.xgate_client import wait_until
from xmeet.config import Settings
from xmeet.core.ids import IdGenerator, new_node_id
from xmeet.core.im import IMError
from xmeet.core.tokens import INVALID_TOKEN, TOKEN_EXPIRED, TokenVerifier, load_token_key
from xmeet.im.service import IMService
from xmeet.store.im_interfaces import IMSnapshot, NodePresence, SessionChanged
from xmeet.store.redis_link import RedisAddress, RedisLink

__all__ = [
    "ExpiryTests",
    "HTTPBearerTests",
    "JWTLogInTests",
    "RedisExpiryTests",
    "RefreshTests",
    "RemoteTests",
]

VERIFIER = TokenVerifier(load_token_key(SECRET), leeway=0)


def token(user: str = "ann", lifetime: float = 60, **claims: Any) -> str:
    """
    An HS256 token of C{user} that expires C{lifetime} seconds after NOW.
    """
    return signed(SECRET, sub=user, exp=NOW + lifetime, **claims)


def refusal(call: Any, *args: Any) -> tuple[int, str]:
    """
    The status and code of the L{IMError} that C{call(*args)} raises.
    """
    try:
        call(*args)
    except IMError as error:
        return error.status_code, error.code
    raise AssertionError("no IMError raised")


class JWTHarness(Harness):
    """
    A service taking JWT logins (leeway 0 unless told), on a fake clock.
    """

    def __init__(self, verifier: TokenVerifier = VERIFIER, **options: Any) -> None:
        super().__init__(jwt=verifier, **options)

    def log_in_with(self, user: str, jwt: str) -> tuple[FakeClient, dict[str, Any]]:
        client = FakeClient(f"sock-{len(self.clients)}")
        self.clients.append(client)
        ack = self.service.log_in(client, {"userId": user, "socketId": client.id, "token": jwt})
        return client, ack

    def listed(self, client: FakeClient | None, session: str) -> dict[str, Any]:
        return self.service.conversation_list(client, {"sessionToken": session})


class JWTLogInTests(SynchronousTestCase):
    """
    C{logIn} on a server with C{--jwt-key-file}.
    """

    def test_log_in(self) -> None:
        """
        A good token of the userId logs in; the ack gives when the session
        ends (C{exp} plus the leeway, epoch milliseconds).
        """
        harness = JWTHarness(TokenVerifier(load_token_key(SECRET), leeway=30))
        client, ack = harness.log_in_with("ann", token("ann", 60))
        self.assertEqual(ack["userId"], "ann")
        self.assertEqual(ack["expiresAt"], (NOW + 90) * 1000)
        self.assertEqual(harness.listed(client, ack["sessionToken"])["statusCode"], 200)

    def test_asymmetric_keys(self) -> None:
        """
        RS256 and ES256 tokens log in on servers with the public keys.
        """
        for private, algorithm in [(rsa_private(), "RS256"), (ec_private(), "ES256")]:
            harness = JWTHarness(TokenVerifier(load_token_key(public_pem(private))))
            jwt = signed(private, algorithm, sub="ann", exp=NOW + 60)
            self.assertEqual(harness.log_in_with("ann", jwt)[1]["userId"], "ann")

    def test_refused(self) -> None:
        """
        No token, a signature instead, another user's token, an expired
        token: 401 with the code saying which, and nobody logged in.
        """
        harness = JWTHarness()
        client = FakeClient("s1")
        base = {"userId": "ann", "socketId": "s1"}
        cases = [
            (base, INVALID_TOKEN),
            ({**base, "signature": "00" * 32}, INVALID_TOKEN),
            ({**base, "token": token("bob")}, INVALID_TOKEN),
            ({**base, "token": token("ann", -1)}, TOKEN_EXPIRED),
            ({**base, "token": signed(b"y" * 32, sub="ann", exp=NOW + 60)}, INVALID_TOKEN),
        ]
        for payload, code in cases:
            self.assertEqual(refusal(harness.service.log_in, client, payload), (401, code))
        self.assertFalse(harness.service.is_online("ann"))
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    @given(payloads)
    def test_any_payload(self, payload: object) -> None:
        """
        Whatever C{logIn} carries, a JWT server answers 400, 401 or 403
        and starts no timer, unless a good token logged someone in.
        """
        harness = JWTHarness()
        try:
            harness.service.log_in(FakeClient("s1"), payload)
        except IMError as error:
            self.assertIn(error.status_code, (400, 401, 403))
            self.assertEqual(harness.clock.getDelayedCalls(), [])


class ExpiryTests(SynchronousTestCase):
    """
    A session of a JWT login ends when the token expires.
    """

    def test_expired(self) -> None:
        """
        At C{exp} the socket receives C{session/expired} and the token
        stops working (401); the user is offline; the socket stays usable.
        """
        harness = JWTHarness()
        client, ack = harness.log_in_with("ann", token("ann", 60))
        session = ack["sessionToken"]
        harness.clock.advance(59.999)
        self.assertEqual(harness.listed(client, session)["statusCode"], 200)
        self.assertEqual(client.take(), [])
        harness.clock.advance(0.001)
        self.assertEqual(client.take(), [("session/expired", {"sessionToken": session})])
        self.assertEqual(refusal(harness.listed, client, session)[0], 401)
        self.assertFalse(harness.service.is_online("ann"))
        again = harness.service.log_in(
            client, {"userId": "ann", "socketId": client.id, "token": token("ann", 120)}
        )
        self.assertEqual(harness.listed(client, again["sessionToken"])["statusCode"], 200)

    def test_late_timer(self) -> None:
        """
        A call after the expiry, before the timer ran, ends the session
        at once: 401 C{token_expired}, and C{session/expired} pushed.
        """
        harness = JWTHarness()
        client, ack = harness.log_in_with("ann", token("ann", 60))
        harness.clock.rightNow += 60
        self.assertEqual(refusal(harness.listed, client, ack["sessionToken"]), (401, TOKEN_EXPIRED))
        self.assertEqual([event for event, _ in client.take()], ["session/expired"])
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_timer_cancelled(self) -> None:
        """
        Logging out, closing the socket or logging in again cancels the
        timer: nothing is pushed at the old C{exp}.
        """
        harness = JWTHarness()
        first, ack = harness.log_in_with("ann", token("ann", 60))
        harness.service.log_out(first, {"sessionToken": ack["sessionToken"]})
        second, _ = harness.log_in_with("bob", token("bob", 60))
        harness.service.socket_closed(second)
        third, _ = harness.log_in_with("cid", token("cid", 60))
        harness.service.log_in(
            third, {"userId": "cid", "socketId": third.id, "token": token("cid", 600)}
        )
        self.assertEqual(len(harness.clock.getDelayedCalls()), 1)
        harness.clock.advance(61)
        self.assertEqual(first.events + second.events + third.events, [])
        self.assertTrue(harness.service.is_online("cid"))

    def test_open_server_never_expires(self) -> None:
        """
        Without JWT logins, sessions start no timer and never end alone.
        """
        harness = Harness()
        client, session = harness.log_in("ann")
        self.assertEqual(harness.clock.getDelayedCalls(), [])
        harness.clock.advance(10**9)
        self.assertEqual(
            harness.service.conversation_list(client, {"sessionToken": session})["statusCode"],
            200,
        )


class RefreshTests(SynchronousTestCase):
    """
    C{session/refresh} C{{sessionToken, token}}.
    """

    def setUp(self) -> None:
        self.harness = JWTHarness()
        self.client, ack = self.harness.log_in_with("ann", token("ann", 60))
        self.session = ack["sessionToken"]

    def refresh(self, jwt: object, client: FakeClient | None = None) -> dict[str, Any]:
        return self.harness.service.session_refresh(
            client or self.client, {"sessionToken": self.session, "token": jwt}
        )

    def test_refresh(self) -> None:
        """
        A newer token moves the session's end to its C{exp}: nothing
        happens at the old one; C{session/expired} comes at the new one.
        """
        self.harness.clock.advance(50)
        ack = self.refresh(token("ann", 120))
        self.assertEqual(ack, {"statusCode": 200, "body": {"expiresAt": (NOW + 120) * 1000}})
        self.harness.clock.advance(69.9)
        self.assertEqual(self.harness.listed(self.client, self.session)["statusCode"], 200)
        self.assertEqual(self.client.take(), [])
        self.harness.clock.advance(0.1)
        self.assertEqual(self.client.take(), [("session/expired", {"sessionToken": self.session})])

    def test_refused(self) -> None:
        """
        Another user's token is 403; a bad or expired token 401; either
        way the session keeps its end.
        """
        self.assertEqual(refusal(self.refresh, token("bob", 120)), (403, "forbidden"))
        self.assertEqual(refusal(self.refresh, token("ann", -5)), (401, TOKEN_EXPIRED))
        self.assertEqual(refusal(self.refresh, "not.a.token"), (401, INVALID_TOKEN))
        self.assertEqual(refusal(self.refresh, None), (401, INVALID_TOKEN))
        self.harness.clock.advance(60)
        self.assertEqual([event for event, _ in self.client.take()], ["session/expired"])

    def test_after_expiry(self) -> None:
        """
        Too late: the session is gone (401) and stays gone.
        """
        self.harness.clock.advance(60)
        self.assertEqual(refusal(self.refresh, token("ann", 120))[0], 401)
        self.assertEqual(refusal(self.harness.listed, self.client, self.session)[0], 401)

    def test_other_socket(self) -> None:
        """
        Another socket may not refresh the session (403).
        """
        self.assertEqual(refusal(self.refresh, token("ann", 120), FakeClient("x"))[0], 403)

    def test_open_server(self) -> None:
        """
        A server without JWT logins answers C{session/refresh} with 400.
        """
        harness = Harness()
        client, session = harness.log_in("ann")
        call = {"sessionToken": session, "token": token("ann", 120)}
        self.assertEqual(refusal(harness.service.session_refresh, client, call)[0], 400)


class HTTPBearerTests(SynchronousTestCase):
    """
    With JWT logins, the HTTP API (C{client=None}) takes a JWT as its
    bearer: the user is its C{sub}, while it is good.
    """

    def test_bearer(self) -> None:
        harness = JWTHarness()
        bearer = {"sessionToken": token("ann", 60)}
        added = harness.service.conversation_add(None, {**bearer, "name": "x"})
        self.assertEqual(added["body"]["conversation"]["admin"], ["ann"])
        listed = harness.service.conversation_list(None, bearer)
        self.assertEqual([c["name"] for c in listed["body"]["conversations"]], ["x"])
        harness.clock.advance(60)
        self.assertEqual(
            refusal(harness.service.conversation_list, None, bearer), (401, TOKEN_EXPIRED)
        )

    def test_not_on_sockets(self) -> None:
        """
        A JWT is no sessionToken on a socket, nor on a server without JWT
        logins.
        """
        bearer = {"sessionToken": token("ann", 60)}
        harness = JWTHarness()
        client = FakeClient("s1")
        self.assertEqual(refusal(harness.service.conversation_list, client, bearer)[0], 401)
        self.assertEqual(refusal(Harness().service.conversation_list, None, bearer)[0], 401)

    def test_bad_bearer(self) -> None:
        """
        A badly signed JWT as the bearer is 401 C{invalid_token}.
        """
        harness = JWTHarness()
        forged = {"sessionToken": signed(b"z" * 32, sub="ann", exp=NOW + 60)}
        self.assertEqual(
            refusal(harness.service.conversation_list, None, forged), (401, INVALID_TOKEN)
        )

    def test_rate_limited(self) -> None:
        """
        Calls with one JWT share a token bucket, as a session's do.
        """
        harness = JWTHarness(rate=1, burst=2)
        bearer = {"sessionToken": token("ann", 60), "targetIds": ["bob"], "type": "text"}
        message = {**bearer, "textContent": "hi"}
        for _ in range(2):
            harness.service.direct_message(None, message)
        self.assertEqual(refusal(harness.service.direct_message, None, message)[0], 429)


def _digest(session: str) -> str:
    return hashlib.sha256(session.encode()).hexdigest()


class RemoteTests(SynchronousTestCase):
    """
    Sessions of other nodes: their HTTP calls here end at their expiry,
    whether it came by an event, a node's presence or the stored state,
    even before their node says the session ended.
    """

    NODE = "othernode0"
    SESSION = "ab" * 16

    def check_until(self, harness: Harness, expires_at: int) -> None:
        call = {"sessionToken": self.SESSION}
        harness.clock.rightNow = expires_at / 1000 - 0.001
        self.assertEqual(harness.service.conversation_list(None, call)["statusCode"], 200)
        harness.clock.rightNow = expires_at / 1000
        self.assertEqual(
            refusal(harness.service.conversation_list, None, call), (401, TOKEN_EXPIRED)
        )

    def test_event(self) -> None:
        harness = JWTHarness()
        expires_at = (NOW + 60) * 1000
        harness.service.cluster.im_event(
            SessionChanged(self.NODE, _digest(self.SESSION), "bob", expires_at)
        )
        self.check_until(harness, expires_at)

    def test_refreshed(self) -> None:
        harness = JWTHarness()
        digest = _digest(self.SESSION)
        for seconds in (60, 90):
            changed = SessionChanged(self.NODE, digest, "bob", (NOW + seconds) * 1000)
            harness.service.cluster.im_event(changed)
        self.check_until(harness, (NOW + 90) * 1000)

    def test_node_presence(self) -> None:
        harness = JWTHarness()
        digest = _digest(self.SESSION)
        expires_at = (NOW + 60) * 1000
        harness.service.cluster.im_event(
            NodePresence(self.NODE, ("bob",), ((digest, "bob"),), ((digest, expires_at),))
        )
        self.check_until(harness, expires_at)

    def test_snapshot(self) -> None:
        harness = JWTHarness()
        digest = _digest(self.SESSION)
        expires_at = (NOW + 60) * 1000
        harness.service.cluster.im_snapshot(
            IMSnapshot(
                sessions={self.NODE: {digest: "bob"}},
                expiries={self.NODE: {digest: expires_at}},
            )
        )
        self.check_until(harness, expires_at)

    def test_published(self) -> None:
        """
        This node tells the others when its sessions end: at logIn, at
        each refresh, and when they end.
        """
        from tests.test_im import RecordingIMBackend

        backend = RecordingIMBackend()
        harness = JWTHarness(backend=backend)
        client, ack = harness.log_in_with("ann", token("ann", 60))
        session = ack["sessionToken"]
        harness.service.session_refresh(client, {"sessionToken": session, "token": token()})
        harness.clock.advance(60)
        told = [
            (event.user, event.expires_at)
            for event in backend.published
            if isinstance(event, SessionChanged)
        ]
        expiry = (NOW + 60) * 1000
        self.assertEqual(told, [("ann", expiry), ("ann", expiry), (None, None)])

    @given(st.integers(min_value=-(10**6), max_value=10**6))
    def test_any_time(self, offset: int) -> None:
        """
        Around the expiry, a remote session is good exactly before it.
        """
        harness = JWTHarness()
        expires_at = (NOW + 60) * 1000
        harness.service.cluster.im_event(
            SessionChanged(self.NODE, _digest(self.SESSION), "bob", expires_at)
        )
        harness.clock.rightNow = (expires_at + offset) / 1000
        try:
            harness.service.conversation_list(None, {"sessionToken": self.SESSION})
        except IMError as error:
            self.assertEqual((error.code, offset >= 0), (TOKEN_EXPIRED, True))
        else:
            self.assertLess(offset, 0)


class RedisExpiryTests(TestCase):
    """
    Nodes sharing the real Redis on 127.0.0.1:6379 (under a prefix of the
    test's own) honour the expiry of each other's JWT sessions on their
    HTTP API, from the events and from the stored state, even while the
    session's node has not ended it yet (its clock is behind here).
    """

    timeout = 30

    def setUp(self) -> None:
        self.prefix = unique_prefix()
        redis_cleanup(self, self.prefix)

    @defer.inlineCallbacks
    def start_node(self) -> Any:
        """
        A started node whose service runs on a fake clock of its own, set
        to NOW; fires with the service and its clock.
        """
        node_id = new_node_id()
        link = RedisLink(reactor, reactor, RedisAddress("127.0.0.1"), self.prefix, node_id, 30)
        clock = Clock()
        clock.advance(NOW)
        service = wire(
            IMService(
                clock,
                Settings(rate=1000, burst=1000, jwt=VERIFIER),
                IdGenerator(node_id),
                backend=im_backend(link),
            )
        )
        self.addCleanup(link.stop)
        self.addCleanup(service.stop)
        yield service.start()
        return service, clock

    @staticmethod
    def answer(service: WireService, session: str) -> int | str:
        """
        200, or the error code, of an HTTP call with C{session}.
        """
        try:
            return service.conversation_list(None, {"sessionToken": session})["statusCode"]
        except IMError as error:
            return error.code

    @defer.inlineCallbacks
    def test_expiry_across_nodes(self) -> Any:
        one, one_clock = yield self.start_node()
        two, two_clock = yield self.start_node()
        client = FakeClient("b2")
        ack = two.log_in(client, {"userId": "bob", "socketId": "b2", "token": token("bob", 60)})
        session = ack["sessionToken"]
        yield wait_until(lambda: self.answer(one, session) == 200)
        three, three_clock = yield self.start_node()
        self.assertEqual(self.answer(three, session), 200)
        for clock in (one_clock, three_clock):
            clock.advance(60)
        self.assertEqual(
            [self.answer(one, session), self.answer(three, session)], [TOKEN_EXPIRED] * 2
        )

        two.session_refresh(client, {"sessionToken": session, "token": token("bob", 120)})
        yield wait_until(lambda: self.answer(one, session) == 200)
        self.assertEqual(self.answer(three, session), 200)
        four, four_clock = yield self.start_node()
        four_clock.advance(119.999)
        self.assertEqual(self.answer(four, session), 200)
        four_clock.advance(0.001)
        self.assertEqual(self.answer(four, session), TOKEN_EXPIRED)

        two_clock.advance(120)
        self.assertEqual([event for event, _ in client.events], ["session/expired"])
        yield wait_until(lambda: self.answer(one, session) == "unauthorized")
        connection = yield txredisapi.Connection("127.0.0.1", 6379, reconnect=False)
        self.addCleanup(connection.disconnect)
        keys = yield connection.keys(f"{self.prefix}im:expiries:*")
        stored = yield defer.gatherResults([connection.hgetall(key) for key in keys])
        self.assertEqual([entries for entries in stored if entries], [])
