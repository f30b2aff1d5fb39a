"""
End-to-end tests of C{--xgate-jwt} on a real port of 127.0.0.1 with
Autobahn's client (L{tests.xgate_client}) and treq: the C{?token=} JWT at
the xgate handshake, the xnests it names, the nickname it gives, and the
connection's end when it expires.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.trial.unittest import TestCase

from tests.support import http_client, start_xmeet
from tests.token_support import SECRET, signed
from tests.xgate_client import connect, handshake_status, wait_until, xnest_url
from xmeet.config import Settings
from xmeet.core.tokens import TokenVerifier, load_token_key

__all__ = ["XgateJWTTests", "XgateOpenTests"]

VERIFIER = TokenVerifier(load_token_key(SECRET), leeway=0)


def token(lifetime: float = 60, **claims: Any) -> str:
    return signed(SECRET, **{"sub": "ann", "exp": time.time() + lifetime, **claims})


class XgateJWTTests(TestCase):
    """
    A node with C{--xgate-jwt}.
    """

    timeout = 30

    def setUp(self) -> None:
        self.running = start_xmeet(self, Settings(jwt=VERIFIER, xgate_jwt=True))
        self.addCleanup(wait_until, lambda: self.running.node.gate.connections == 0)

    def url(self, xnest_id: str, **query: str) -> str:
        return xnest_url(self.running.ws_url, xnest_id, query)

    async def refusal(self, jwt: str | None) -> tuple[int, Any]:
        """
        The HTTP status and JSON body a request for xnest C{room} gets.
        """
        query = {} if jwt is None else {"token": jwt}
        url = xnest_url(self.running.url, "room", query)
        response = await http_client(self).get(url)
        return response.code, json.loads(await response.content())

    async def test_refused(self) -> None:
        """
        No token, a bad or expired one, or one that does not name the
        xnest: 401 or 403 with the JSON error object, at the handshake.
        """
        cases = [
            (None, 401, "invalid_token"),
            ("garbage", 401, "invalid_token"),
            (signed(b"w" * 32, sub="ann", exp=time.time() + 60, xnests="*"), 401, "invalid_token"),
            (token(-1, xnests="*"), 401, "token_expired"),
            (token(), 403, "forbidden"),
            (token(xnests=["other"]), 403, "forbidden"),
            (token(xnests="room"), 403, "forbidden"),
            (token(xnests="*", nickname="x" * 40), 401, "invalid_token"),
        ]
        for jwt, status, code in cases:
            answer, body = await self.refusal(jwt)
            self.assertEqual(
                (answer, body["statusCode"], body["error"]["code"]), (status, status, code), jwt
            )
        status = await handshake_status(self, self.url("room", token=token(xnests=["other"])))
        self.assertEqual(status, 403)
        self.assertEqual(await handshake_status(self, self.url("room")), 401)

    async def test_nickname_from_token(self) -> None:
        """
        The token's nickname claim is the member's nickname, whatever the
        query says, and C{@changename} is refused with an error frame.
        """
        jwt = token(xnests=["lobby", "room"], nickname=" Ann ")
        client = await connect(self, self.url("room", token=jwt, nickname="mallory"))
        members = await client.next_of_type("members")
        self.assertEqual([member["nickname"] for member in members["payload"]], ["Ann"])
        client.send("@changename:Bob")
        error = await client.next_of_type("error")
        self.assertEqual(error["payload"], "your token sets your nickname")
        client.send("hello")
        normal = await client.next_of_type("normal")
        self.assertEqual(normal["payload"], "hello")
        self.assertEqual(
            [frame["type"] for frame in client.frames if frame["type"] == "changename"], []
        )

    async def test_any_xnest(self) -> None:
        """
        C{xnests: "*"} lets the holder in anywhere; without a nickname
        claim the usual rules choose the nickname (here the query's).
        """
        client = await connect(self, self.url("anywhere", token=token(xnests="*"), nickname="zed"))
        members = await client.next_of_type("members")
        self.assertEqual([member["nickname"] for member in members["payload"]], ["zed"])
        client.send("@changename:zoe")
        changed = await client.next_of_type("changename")
        self.assertEqual(changed["payload"], "zoe")

    async def test_expiry_closes(self) -> None:
        """
        When the token expires, the connection is closed with 1008.
        """
        started = time.time()
        client = await connect(self, self.url("room", token=token(2, xnests=["room"])))
        closed = await client.when_closed(timeout=10)
        self.assertEqual((closed.code, closed.reason), (1008, "token expired"))
        self.assertGreater(time.time(), started + 1.9)


class XgateOpenTests(TestCase):
    """
    Without C{--xgate-jwt} (the default), xgate stays open even on a node
    taking JWT logins: seed clients keep working.
    """

    async def test_open(self) -> None:
        running = start_xmeet(self, Settings(jwt=VERIFIER))
        client = await connect(self, xnest_url(running.ws_url, "room"))
        members = await client.next_of_type("members")
        self.assertEqual(len(members["payload"]), 1)
        await client.close()
