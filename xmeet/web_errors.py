# -*- test-case-name: tests.test_web -*-
"""
Error answers over HTTP, in the error object of PROTOCOL.md section 3:
C{{"statusCode": N, "error": {"code": str, "message": str}}}.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from xmeet.core.errors import ERROR_CODES, error_code
from xmeet.core.frames import dumps

__all__ = ["ERROR_CODES", "ErrorPage", "ExactResource", "error_body"]


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """
    The JSON error object for HTTP status C{status}, with its standard
    C{code} unless another is given.
    """
    error = {"code": code or error_code(status), "message": message}
    return dumps({"statusCode": status, "error": error}).encode("utf-8")


class ErrorPage(Resource):
    """
    Answers any request under it with one JSON error.
    """

    isLeaf = True

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__()
        self._status = status
        self._message = message
        self._code = code

    def render(self, request: Request) -> bytes:
        """
        The error, whatever the method.
        """
        request.setResponseCode(self._status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return error_body(self._status, self._message, self._code)


class ExactResource(Resource):
    """
    A resource served at its own path only: anything below it (C{/healthz/x},
    even C{/healthz/}) is not found, rather than the resource again.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        """
        No children.
        """
        return ErrorPage(404, "no such resource")
