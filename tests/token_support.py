"""
Keys and tokens for the JWT tests, made with C{cryptography} and PyJWT as
an application server would: an HS256 secret, an RSA and an EC P-256 key
pair (made once per test run), and tokens signed with them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import tempfile
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.trial.unittest import SynchronousTestCase

__all__ = [
    "SECRET",
    "ec_private",
    "forged",
    "key_file",
    "public_pem",
    "rsa_private",
    "signed",
]

#: An HS256 secret of the least length the server accepts.
SECRET = b"0123456789abcdef0123456789abcdef"


@functools.cache
def rsa_private() -> rsa.RSAPrivateKey:
    """
    A 2048-bit RSA private key, the same for every test of a run.
    """
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_private() -> ec.EllipticCurvePrivateKey:
    """
    An EC P-256 private key, the same for every test of a run.
    """
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private: Any) -> bytes:
    """
    The PEM public key of C{private}, as an operator would give it.
    """
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def signed(key: Any, algorithm: str = "HS256", **claims: Any) -> str:
    """
    A token with C{claims}, signed with C{key} by C{algorithm}.
    """
    return jwt.encode(claims, key, algorithm=algorithm)


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forged(algorithm: str, secret: bytes, **claims: Any) -> str:
    """
    A token whose header names C{algorithm}, made by hand as an attacker
    would: HMAC-SHA256 under C{secret} for C{HS256} (whatever C{secret}
    is, a public key too, which PyJWT would not sign with), no signature
    for C{none}.
    """
    header = _segment(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    body = _segment(json.dumps(claims).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = b""
    if algorithm == "HS256":
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{_segment(signature)}"


def key_file(testcase: SynchronousTestCase, data: bytes) -> str:
    """
    The path of a file holding C{data}, removed after the test.
    """
    descriptor, path = tempfile.mkstemp(prefix="xmeet-key-")
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    testcase.addCleanup(os.remove, path)
    return path
