"""
End-to-end tests of JWT logins on a real port of 127.0.0.1: the
C{python-socketio} client logs in with a JWT, refreshes it, and receives
C{session/expired} when the refreshed one expires (in real time: a few
seconds); treq calls the HTTP API with a JWT as its bearer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from tests.support import http_client, start_xmeet
from tests.test_im_socketio import sio_connect
from tests.token_support import ec_private, public_pem, rsa_private, signed
from tests.xgate_client import wait_until
from xmeet.config import Settings
from xmeet.core.tokens import TokenVerifier, load_token_key

__all__ = ["HTTPBearerTests", "SocketIOExpiryTests"]


class SocketIOExpiryTests(TestCase):
    """
    A python-socketio client on a node taking ES256 JWT logins.
    """

    timeout = 60

    async def test_expire_and_refresh(self) -> None:
        """
        C{logIn} with a token that expires in 3 s, C{session/refresh} with
        one of 5 s: the session works until the second expires, then the
        client receives C{session/expired} and its token gets 401.
        """
        verifier = TokenVerifier(load_token_key(public_pem(ec_private())), leeway=0)
        running = start_xmeet(self, Settings(jwt=verifier))
        sio = await sio_connect(self, running.url)
        start = time.time()

        def jwt(lifetime: float) -> str:
            return signed(ec_private(), "ES256", sub="ann", exp=start + lifetime)

        refused = await sio.call("logIn", {"userId": "ann", "socketId": sio.id})
        self.assertEqual(refused["statusCode"], 401)
        self.assertEqual(refused["error"]["code"], "invalid_token")
        ack = await sio.call("logIn", {"userId": "ann", "socketId": sio.id, "token": jwt(3)})
        session = ack["sessionToken"]
        self.assertEqual(ack["expiresAt"], int((start + 3) * 1000))
        refreshed = await sio.call("session/refresh", {"sessionToken": session, "token": jwt(5)})
        self.assertEqual(
            refreshed, {"statusCode": 200, "body": {"expiresAt": int((start + 5) * 1000)}}
        )
        await wait_until(lambda: time.time() > start + 3.5, 10)
        listed = await sio.call("conversation/list", {"sessionToken": session})
        self.assertEqual(listed["statusCode"], 200)
        await wait_until(lambda: sio.named("session/expired"), 10)
        self.assertGreater(time.time(), start + 4.9)
        self.assertEqual(sio.named("session/expired"), [{"sessionToken": session}])
        gone = await sio.call("conversation/list", {"sessionToken": session})
        self.assertEqual(gone["statusCode"], 401)


class HTTPBearerTests(TestCase):
    """
    The HTTP API of a node taking RS256 JWT logins, with a JWT as the
    bearer and no socket at all.
    """

    timeout = 30

    async def request(self, url: str, bearer: str, body: Any = None) -> tuple[int, Any]:
        headers = Headers({b"authorization": [f"Bearer {bearer}".encode()]})
        if body is None:
            response = await self.http.get(url, headers=headers)
        else:
            headers.setRawHeaders(b"content-type", [b"application/json"])
            response = await self.http.post(url, json.dumps(body).encode(), headers=headers)
        return response.code, json.loads(await response.content())

    async def test_bearer(self) -> None:
        """
        A good JWT creates a conversation as its C{sub}; an expired one is
        401 C{token_expired}, a forged one 401 C{invalid_token}.
        """
        verifier = TokenVerifier(load_token_key(public_pem(rsa_private())), leeway=0)
        running = start_xmeet(self, Settings(jwt=verifier))
        self.http = http_client(self)
        url = running.url + "/api/conversations"
        now = time.time()
        good = signed(rsa_private(), "RS256", sub="ann", exp=now + 60)
        status, created = await self.request(url, good, {"name": "by http"})
        self.assertEqual((status, created["body"]["conversation"]["admin"]), (201, ["ann"]))
        status, got = await self.request(f"{url}/{created['body']['id']}", good)
        self.assertEqual((status, got["body"]["conversation"]["name"]), (200, "by http"))
        expired = signed(rsa_private(), "RS256", sub="ann", exp=now - 1)
        status, refused = await self.request(url, expired, {"name": "late"})
        self.assertEqual((status, refused["error"]["code"]), (401, "token_expired"))
        forged = signed(b"k" * 32, sub="ann", exp=now + 60)
        status, refused = await self.request(url, forged, {"name": "forged"})
        self.assertEqual((status, refused["error"]["code"]), (401, "invalid_token"))
