"""
Tests for L{xmeet.core.tokens}: the JWT key file and the check of tokens,
with keys made in the test and the time passed in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.token_support import SECRET, ec_private, forged, public_pem, rsa_private, signed
from xmeet.core.im import IMError
from xmeet.core.tokens import (
    INVALID_TOKEN,
    MAX_TOKEN_LENGTH,
    TOKEN_EXPIRED,
    TokenClaims,
    TokenVerifier,
    XnestGrant,
    grant_xnest,
    load_token_key,
)

__all__ = ["KeyFileTests", "PropertyTests", "VerifyTests", "XnestGrantTests"]

NOW = 1_700_000_000.0


def refusal(verifier: TokenVerifier, token: object, now: float = NOW) -> tuple[int, str]:
    """
    The status and code of the error C{verifier} refuses C{token} with.
    """
    try:
        verifier.verify(token, now)
    except IMError as error:
        return error.status_code, error.code
    raise AssertionError("token accepted")


def hs256(**options: Any) -> TokenVerifier:
    return TokenVerifier(load_token_key(SECRET), **options)


class KeyFileTests(SynchronousTestCase):
    """
    The algorithm follows from the key file, and a file that cannot be a
    safe key is refused with what is wrong.
    """

    def test_secret(self) -> None:
        """
        Bytes that are no PEM are the HS256 secret, without surrounding
        white space (the trailing newline of an editor).
        """
        key = load_token_key(b"  " + SECRET + b"\n")
        self.assertEqual((key.algorithm, key.key), ("HS256", SECRET))

    def test_short_secret(self) -> None:
        """
        A secret shorter than 32 bytes is refused.
        """
        with self.assertRaises(ValueError) as raised:
            load_token_key(SECRET[:31] + b"\n")
        self.assertIn("31-byte", str(raised.exception))

    def test_rsa(self) -> None:
        """
        An RSA public key verifies RS256.
        """
        self.assertEqual(load_token_key(public_pem(rsa_private())).algorithm, "RS256")

    def test_ec(self) -> None:
        """
        An EC P-256 public key verifies ES256.
        """
        self.assertEqual(load_token_key(public_pem(ec_private())).algorithm, "ES256")

    def test_unsuitable_keys(self) -> None:
        """
        Short RSA keys, other curves, other key types, private keys and
        broken PEM are refused; PEM is never taken for an HS256 secret.
        """
        other_curve = public_pem(ec.generate_private_key(ec.SECP384R1()))
        edwards = public_pem(ed25519.Ed25519PrivateKey.generate())
        short = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
        private = rsa_private().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        broken = b"-----BEGIN PUBLIC KEY-----\n" + b"A" * 64 + b"\n-----END PUBLIC KEY-----\n"
        for data, why in [
            (other_curve, "secp384r1"),
            (edwards, "only RSA"),
            (short, "1024-bit"),
            (private, "private key"),
            (broken, "not a readable PEM"),
        ]:
            with self.assertRaises(ValueError) as raised:
                load_token_key(data)
            self.assertIn(why, str(raised.exception))


class VerifyTests(SynchronousTestCase):
    """
    L{TokenVerifier.verify}: a good token gives its user and expiry;
    anything else is 401.
    """

    def test_good_hs256(self) -> None:
        """
        C{sub} is the user; the session ends at C{exp} plus the leeway, in
        milliseconds.
        """
        token = signed(SECRET, sub="ann", exp=NOW + 60)
        self.assertEqual(
            hs256(leeway=5).verify(token, NOW), TokenClaims("ann", int((NOW + 65) * 1000))
        )

    def test_good_rs256_and_es256(self) -> None:
        """
        Tokens signed with the private half of a configured key pass.
        """
        for private, algorithm in [(rsa_private(), "RS256"), (ec_private(), "ES256")]:
            verifier = TokenVerifier(load_token_key(public_pem(private)))
            token = signed(private, algorithm, sub="ann", exp=NOW + 60)
            self.assertEqual(verifier.verify(token, NOW).user_id, "ann")

    def test_expired(self) -> None:
        """
        A token is good until C{exp} plus the leeway, then C{token_expired}.
        """
        verifier = hs256(leeway=30)
        token = signed(SECRET, sub="ann", exp=NOW)
        self.assertEqual(verifier.verify(token, NOW + 29.999).user_id, "ann")
        self.assertEqual(refusal(verifier, token, NOW + 30), (401, TOKEN_EXPIRED))
        self.assertEqual(refusal(hs256(leeway=0), token, NOW), (401, TOKEN_EXPIRED))

    def test_not_before(self) -> None:
        """
        A token with an C{nbf} later than now plus the leeway is refused.
        """
        token = signed(SECRET, sub="ann", exp=NOW + 60, nbf=NOW + 10)
        self.assertEqual(refusal(hs256(leeway=5), token), (401, INVALID_TOKEN))
        self.assertEqual(hs256(leeway=10).verify(token, NOW).user_id, "ann")

    def test_claims_required(self) -> None:
        """
        C{exp} and C{sub} are required; C{exp} must be a number of seconds,
        C{sub} a user id.
        """
        for claims in [
            {"sub": "ann"},
            {"exp": NOW + 60},
            {"sub": "ann", "exp": "tomorrow"},
            {"sub": "ann", "exp": True},
            {"sub": "ann", "exp": 10**30},
            {"sub": "", "exp": NOW + 60},
            {"sub": "a" * 129, "exp": NOW + 60},
            {"sub": 5, "exp": NOW + 60},
        ]:
            self.assertEqual(refusal(hs256(), signed(SECRET, **claims)), (401, INVALID_TOKEN))

    def test_wrong_key(self) -> None:
        """
        A token signed with another secret or another key pair is refused.
        """
        other = signed(b"x" * 32, sub="ann", exp=NOW + 60)
        self.assertEqual(refusal(hs256(), other), (401, INVALID_TOKEN))
        verifier = TokenVerifier(load_token_key(public_pem(rsa_private())))
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = signed(stranger, "RS256", sub="ann", exp=NOW + 60)
        self.assertEqual(refusal(verifier, token), (401, INVALID_TOKEN))

    def test_algorithm_confusion(self) -> None:
        """
        With a public key configured, a token signed by HS256 with that
        public key as the secret is refused, and so is one of C{alg: none};
        an RS256 token does not pass an ES256 key either.
        """
        pem = public_pem(rsa_private())
        verifier = TokenVerifier(load_token_key(pem))
        claims = {"sub": "ann", "exp": NOW + 60}
        self.assertEqual(refusal(verifier, forged("HS256", pem, **claims)), (401, INVALID_TOKEN))
        self.assertEqual(refusal(verifier, forged("none", b"", **claims)), (401, INVALID_TOKEN))
        self.assertEqual(refusal(hs256(), forged("none", b"", **claims)), (401, INVALID_TOKEN))
        es256 = TokenVerifier(load_token_key(public_pem(ec_private())))
        rs256 = signed(rsa_private(), "RS256", **claims)
        self.assertEqual(refusal(es256, rs256), (401, INVALID_TOKEN))

    def test_audience_and_issuer(self) -> None:
        """
        A configured audience and issuer must match; a token naming an
        audience is refused by a server that names none.
        """
        verifier = hs256(audience="xmeet", issuer="https://id.example")
        good = {"sub": "ann", "exp": NOW + 60, "aud": "xmeet", "iss": "https://id.example"}
        self.assertEqual(verifier.verify(signed(SECRET, **good), NOW).user_id, "ann")
        for wrong in [{"aud": "other"}, {"iss": "https://evil.example"}, {"aud": None}]:
            token = signed(SECRET, **{**good, **wrong})
            self.assertEqual(refusal(verifier, token), (401, INVALID_TOKEN))
        self.assertEqual(refusal(hs256(), signed(SECRET, **good)), (401, INVALID_TOKEN))

    def test_not_tokens(self) -> None:
        """
        Missing, not a string, too long or not a compact JWT: 401.
        """
        token = signed(SECRET, sub="ann", exp=NOW + 60)
        too_long = token + "." * MAX_TOKEN_LENGTH
        for value in [None, 5, ["a"], "", "abc", "a.b", token + "é", too_long]:
            self.assertEqual(refusal(hs256(), value), (401, INVALID_TOKEN))


class XnestGrantTests(SynchronousTestCase):
    """
    L{grant_xnest}: the xnests claim and the nickname claims.
    """

    def grant(self, **claims: Any) -> XnestGrant:
        jwt = signed(SECRET, sub="ann", exp=NOW + 60, **claims)
        return grant_xnest(hs256(leeway=0), jwt, "room", NOW)

    def refused(self, **claims: Any) -> tuple[int, str]:
        try:
            self.grant(**claims)
        except IMError as error:
            return error.status_code, error.code
        raise AssertionError("granted")

    def test_xnests(self) -> None:
        """
        C{"*"}, alone or listed, or the xnest's id listed, let in; no
        claim, another id, or the id as a bare string do not (403).
        """
        expires = int((NOW + 60) * 1000)
        for allowed in ["*", ["*"], ["lobby", "room"]]:
            self.assertEqual(self.grant(xnests=allowed), XnestGrant(None, expires))
        for allowed in [None, ["lobby"], "room", [], {"room": 1}, 5]:
            self.assertEqual(self.refused(xnests=allowed), (403, "forbidden"))

    def test_nickname(self) -> None:
        """
        C{nickname}, else C{name}, trimmed as nicknames are; one that is
        no valid nickname is an invalid token.
        """
        self.assertEqual(self.grant(xnests="*", nickname=" Ann ", name="x").nickname, "Ann")
        self.assertEqual(self.grant(xnests="*", name="Ann B").nickname, "Ann B")
        for bad in ["", "x" * 33, "a\x00b", 5]:
            self.assertEqual(self.refused(xnests="*", nickname=bad), (401, INVALID_TOKEN))

    def test_bad_token(self) -> None:
        """
        The token is checked first: expired is 401 whatever it allows.
        """
        jwt = signed(SECRET, sub="ann", exp=NOW - 1, xnests="*")
        with self.assertRaises(IMError) as raised:
            grant_xnest(hs256(leeway=0), jwt, "room", NOW)
        self.assertEqual(raised.exception.code, TOKEN_EXPIRED)


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
claim_sets = st.dictionaries(
    st.sampled_from(["sub", "exp", "nbf", "aud", "iss", "iat"]) | st.text(max_size=4), json_values
)
headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "RS256", "ES256", "none", "HS512"]) | st.text(max_size=6)},
    optional={"typ": json_values, "kid": json_values, "crit": json_values, "b64": json_values},
)
structured = st.builds(
    lambda header, claims, signature: f"{_segment(header)}.{_segment(claims)}.{signature}",
    headers,
    claim_sets,
    st.text(alphabet="AZaz09-_", max_size=12),
)
signed_claims = claim_sets.map(lambda claims: forged("HS256", SECRET, **claims))


class PropertyTests(SynchronousTestCase):
    """
    Whatever a client sends as a token, the verifier accepts it or refuses
    it with 401, and raises nothing else.
    """

    @given(
        st.text() | st.binary() | json_values | structured | signed_claims,
        st.floats(min_value=0, max_value=2e10),
    )
    def test_any_token(self, token: object, now: float) -> None:
        for verifier in (hs256(), hs256(audience="a", issuer="i", leeway=0)):
            try:
                claims = verifier.verify(token, now)
            except IMError as error:
                self.assertEqual(error.status_code, 401)
                self.assertIn(error.code, (INVALID_TOKEN, TOKEN_EXPIRED))
            else:
                self.assertIsInstance(claims.user_id, str)
                self.assertGreater(claims.expires_at, now * 1000 - 1)
