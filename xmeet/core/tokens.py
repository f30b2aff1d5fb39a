# -*- test-case-name: tests.test_core_tokens -*-
"""
JWT logins (PROTOCOL.md section 3), without I/O: the key the operator
gives (L{load_token_key}) and the check of a token a client presents
(L{TokenVerifier.verify}), the time passed in.

The algorithm is decided by the key, never by the token: a PEM public key
(or certificate) verifies RS256 (RSA, 2048 bits or more) or ES256 (EC
P-256) only; anything else is an HS256 secret of at least
L{MIN_SECRET_LENGTH} bytes. A token whose header names another algorithm
(C{none}, or HS256 signed with the public key as its secret: the
algorithm-confusion attack) is refused like any bad signature.

C{exp} and C{nbf} are checked here, against the clock the caller passes,
with a leeway for the clock skew between the issuer and this server:
PyJWT's own time checks read the system clock, which tests cannot drive.
A token is good while C{now < exp + leeway}; the session it opens ends
then, so L{TokenClaims.expires_at} includes the leeway.

Every refusal is an L{IMError} 401 with the code L{INVALID_TOKEN} or
L{TOKEN_EXPIRED}; no other exception leaves L{TokenVerifier.verify},
whatever the client sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from xmeet.core.im import MAX_ID_LENGTH, IMError
from xmeet.core.rules import InvalidName, normalize_nickname

__all__ = [
    "DEFAULT_LEEWAY",
    "INVALID_TOKEN",
    "MAX_TOKEN_LENGTH",
    "MIN_RSA_BITS",
    "MIN_SECRET_LENGTH",
    "TOKEN_EXPIRED",
    "TokenClaims",
    "TokenKey",
    "TokenVerifier",
    "XNESTS_CLAIM",
    "XnestGrant",
    "grant_xnest",
    "load_token_key",
]

#: The error code of a token that is missing, malformed, badly signed, for
#: another audience or issuer, or not valid yet.
INVALID_TOKEN = "invalid_token"

#: The error code of a token (or a session) past its C{exp}.
TOKEN_EXPIRED = "token_expired"

#: Seconds of clock skew allowed between the token's issuer and this server.
DEFAULT_LEEWAY = 30.0

#: Bytes an HS256 secret needs at least: the size of the SHA-256 output.
MIN_SECRET_LENGTH = 32

#: Bits an RSA key needs at least.
MIN_RSA_BITS = 2048

#: Characters of the longest token looked at; longer ones are refused unread.
MAX_TOKEN_LENGTH = 8192

#: The latest C{exp} or C{nbf} taken for a time (in the year 2286); later
#: ones are refused, so that no arithmetic on them overflows.
MAX_TIMESTAMP = 10**10

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PEM = b"-----BEGIN "


@attrs.frozen
class TokenKey:
    """
    The key tokens are verified with, and the one algorithm it allows.

    @ivar algorithm: C{"HS256"}, C{"RS256"} or C{"ES256"}.
    @ivar key: the HS256 secret (bytes) or the public key object.
    """

    algorithm: str
    key: Any = attrs.field(repr=False, eq=False)


def _public_key(data: bytes) -> Any:
    """
    The public key of a PEM public key or certificate.
    """
    if b"PRIVATE KEY-----" in data:
        raise ValueError("holds a private key: give the public key only")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"is not a readable PEM public key ({error})") from None


def _asymmetric(data: bytes) -> TokenKey:
    key = _public_key(data)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"holds a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS}")
        return TokenKey("RS256", key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"holds an EC key on {key.curve.name}; ES256 needs P-256")
        return TokenKey("ES256", key)
    raise ValueError(f"holds a {type(key).__name__}; only RSA (RS256) and EC P-256 (ES256)")


def load_token_key(data: bytes) -> TokenKey:
    """
    The key of a key file's contents: a PEM public key or certificate for
    RS256 or ES256; otherwise the bytes, without surrounding white space,
    as the HS256 secret. A file that looks like PEM is never taken for a
    secret.

    @raise ValueError: saying what is wrong with the file.
    """
    if _PEM in data:
        return _asymmetric(data)
    secret = data.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"holds a {len(secret)}-byte HS256 secret; at least {MIN_SECRET_LENGTH} bytes"
        )
    return TokenKey("HS256", secret)


@attrs.frozen
class TokenClaims:
    """
    What a good token says.

    @ivar user_id: its C{sub}.
    @ivar expires_at: when it stops being good, in epoch milliseconds of
        this server's clock: C{exp} plus the leeway.
    @ivar claims: every claim of the token.
    """

    user_id: str
    expires_at: int
    claims: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


def _invalid(message: str) -> IMError:
    return IMError(401, INVALID_TOKEN, message)


def _timestamp(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"the token's {name} is not a number")
    if not 0 <= value <= MAX_TIMESTAMP:
        raise _invalid(f"the token's {name} is out of range")
    return float(value)


def _user_id(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_ID_LENGTH:
        raise _invalid(f"the token's sub must be a user id of 1 to {MAX_ID_LENGTH} characters")
    return subject


@attrs.frozen
class TokenVerifier:
    """
    Checks tokens against one key, and the audience and issuer this server
    is configured with (a token with an C{aud} is refused when the server
    names no audience).

    @ivar leeway: seconds of clock skew allowed on C{exp} and C{nbf}.
    """

    key: TokenKey
    audience: str | None = None
    issuer: str | None = None
    leeway: float = DEFAULT_LEEWAY

    def verify(self, token: object, now: float) -> TokenClaims:
        """
        The claims of C{token} at C{now} (epoch seconds).

        @raise IMError: 401 L{TOKEN_EXPIRED} for a token past its C{exp},
            401 L{INVALID_TOKEN} for anything else that is wrong.
        """
        if token is None:
            raise _invalid("token is missing")
        if not isinstance(token, str):
            raise _invalid("token must be a string")
        if len(token) > MAX_TOKEN_LENGTH or not _COMPACT.fullmatch(token):
            raise _invalid("token is not a JWT")
        claims = self._decode(token)
        user_id = _user_id(claims)
        expires = _timestamp(claims, "exp")
        if expires is None:
            raise _invalid("the token has no exp")
        not_before = _timestamp(claims, "nbf")
        if not_before is not None and now + self.leeway < not_before:
            raise _invalid("the token is not valid yet (nbf)")
        if now >= expires + self.leeway:
            raise IMError(401, TOKEN_EXPIRED, "the token has expired")
        return TokenClaims(user_id, int((expires + self.leeway) * 1000), claims)

    def _decode(self, token: str) -> dict[str, Any]:
        """
        The claims of a well signed token for this audience and issuer;
        times are checked by L{verify}.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.key,
                algorithms=[self.key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as error:
            raise _invalid(f"the token is refused: {error}") from None
        return claims


#: The claim naming the xnests a token lets its holder into: a list of
#: xnest ids, or C{"*"} (alone or in the list) for any.
XNESTS_CLAIM = "xnests"

#: The claims that may give the holder's nickname in xnests, first first.
NICKNAME_CLAIMS = ("nickname", "name")


@attrs.frozen
class XnestGrant:
    """
    What a token lets its holder do in one xnest (with C{--xgate-jwt}).

    @ivar nickname: the nickname the token gives, which the member keeps
        (C{@changename} is refused); C{None} when it gives none.
    @ivar expires_at: when the membership ends, in epoch milliseconds.
    """

    nickname: str | None
    expires_at: int


def _allows(allowed: object, xnest_id: str) -> bool:
    if allowed == "*":
        return True
    return isinstance(allowed, list) and ("*" in allowed or xnest_id in allowed)


def _nickname(claims: Mapping[str, Any]) -> str | None:
    for name in NICKNAME_CLAIMS:
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _invalid(f"the token's {name} is not a string")
        try:
            return normalize_nickname(value)
        except InvalidName as error:
            raise _invalid(f"the token's {name} is not a valid nickname: {error}") from None
    return None


def grant_xnest(verifier: TokenVerifier, token: object, xnest_id: str, now: float) -> XnestGrant:
    """
    Let the holder of C{token} into xnest C{xnest_id}, when the token is
    good at C{now} and its L{XNESTS_CLAIM} names the xnest (or C{"*"}).

    @raise IMError: 401 as L{TokenVerifier.verify} (or for a nickname
        claim that is no valid nickname), 403 for an xnest the token does
        not name.
    """
    claims = verifier.verify(token, now)
    if not _allows(claims.claims.get(XNESTS_CLAIM), xnest_id):
        raise IMError.of(403, f"the token does not let its holder into xnest {xnest_id!r}")
    return XnestGrant(_nickname(claims.claims), claims.expires_at)
