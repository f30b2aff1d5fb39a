# -*- test-case-name: tests.test_http_api,tests.test_lone_surrogates -*-
"""
The plumbing every JSON endpoint shares: reading a bounded JSON body,
checking method and content type, writing C{{statusCode, body}} answers.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from xmeet.core.frames import dumps
from xmeet.core.rules import has_lone_surrogate, not_unicode
from xmeet.web_errors import error_body

__all__ = ["HTTPError", "JSONResource", "read_json", "write_json"]

_JSON_TYPES = (b"application/json", b"text/json")

log = Logger()


class HTTPError(Exception):
    """
    An error answer: HTTP C{status} and the error object's message.
    """

    def __init__(self, status: int, message: str, headers: dict[bytes, bytes] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def write_json(request: Request, status: int, document: Any) -> bytes:
    """
    Set the status and JSON headers; return the encoded body.
    """
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return dumps(document).encode("utf-8")


def read_json(request: Request, limit: int) -> Any:
    """
    The request body as JSON: at most C{limit} bytes, with a JSON content
    type (or none).

    @raise HTTPError: 413, 415 or 400 with what was wrong.
    """
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES:
        raise HTTPError(415, "request body must be application/json")
    assert request.content is not None
    body = request.content.read(limit + 1)
    if len(body) > limit:
        raise HTTPError(413, f"request body is larger than {limit} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HTTPError(400, "request body is not valid JSON") from None
    if has_lone_surrogate(document):
        raise HTTPError(400, not_unicode("request body"))
    return document


class JSONResource(Resource):
    """
    A leaf resource whose C{handle_METHOD(request)} methods return a
    C{(status, document)} pair, or a L{Deferred} of one, or raise
    L{HTTPError}; other methods get 405 with an C{Allow} header. C{HEAD} is
    answered as C{GET} (twisted.web leaves the body out).
    """

    isLeaf = True

    def render(self, request: Request) -> int:
        """
        Dispatch on the method; every error becomes the JSON error object.
        """
        method = (request.method or b"").decode("ascii", "replace")
        handler = getattr(self, f"handle_{'GET' if method == 'HEAD' else method}", None)
        if handler is None:
            allow = ", ".join(self._allowed()).encode("ascii")
            answer: Deferred[Any] = Deferred()
            answer.errback(
                HTTPError(405, f"method {method} is not allowed here", {b"allow": allow})
            )
        else:
            answer = maybeDeferred(handler, request)
        answer.addCallback(self._answer, request).addErrback(self._fail, request)
        return NOT_DONE_YET

    def _answer(self, result: tuple[int, Any], request: Request) -> None:
        status, document = result
        self._finish(request, write_json(request, status, document))

    def _fail(self, failure: Failure, request: Request) -> None:
        if failure.check(HTTPError):
            error: HTTPError = failure.value  # type: ignore[assignment]
        else:
            log.failure("{uri} failed", failure, uri=request.uri)
            error = HTTPError(500, "internal error")
        for name, value in error.headers.items():
            request.setHeader(name, value)
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        self._finish(request, error_body(error.status, error.message))

    @staticmethod
    def _finish(request: Request, body: bytes) -> None:
        if request.finished or request.channel is None:
            return
        request.write(body)
        request.finish()

    def _allowed(self) -> list[str]:
        methods = {name[len("handle_") :] for name in dir(self) if name.startswith("handle_")}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)
