# -*- test-case-name: tests.test_im_http,tests.test_im_events -*-
"""
The HTTP API of conversations (PROTOCOL.md section 4): the calls of the IM
protocol as JSON requests authenticated by C{Authorization: Bearer
<sessionToken>}, answered with the same C{{statusCode, body}} or
C{{statusCode, error}} objects (L{xmeet.handlers.im_wire}) and the
matching HTTP status. The bearer token alone names the session: a
C{sessionToken} in the body is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.server import Request

from xmeet.core.im import IMError
from xmeet.handlers.http_json import HTTPError, JSONResource, read_json
from xmeet.handlers.im_wire import error_ack, render
from xmeet.im.client import Caller
from xmeet.im.service import IMService

__all__ = ["ConversationsResource"]


def _bearer(request: Request) -> str | None:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _query_int(request: Request, name: bytes) -> int | None:
    values = (request.args or {}).get(name)
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise HTTPError(400, f"{name.decode()} must be an integer") from None


class ConversationsResource(JSONResource):
    """
    C{/api/conversations}, C{/api/conversations/{id}},
    C{/api/conversations/{id}/members} and
    C{/api/conversations/{id}/messages}.
    """

    def __init__(self, im: IMService, body_limit: int) -> None:
        super().__init__()
        self._im = im
        self._limit = body_limit

    def _call(
        self, request: Request, method: Callable[[Caller, Any], object], payload: Any
    ) -> tuple[int, Any]:
        try:
            ack = render(method(Caller.bearer(_bearer(request)), payload))
        except IMError as error:
            return error.status_code, error_ack(error)
        return ack["statusCode"], ack

    def _path(self, request: Request) -> list[str]:
        try:
            return [segment.decode("utf-8") for segment in request.postpath or []]
        except UnicodeDecodeError:
            raise HTTPError(400, "conversation id is not valid UTF-8") from None

    def handle_POST(self, request: Request) -> tuple[int, Any]:
        """
        Create a conversation, or add a member to one.
        """
        path = self._path(request)
        body = read_json(request, self._limit)
        if path in ([], [""]):
            return self._call(request, self._im.conversation_add, body)
        if len(path) == 2 and path[1] == "members":
            if not isinstance(body, dict):
                raise HTTPError(400, "request must be a JSON object")
            return self._call(
                request, self._im.conversation_join, {**body, "conversationId": path[0]}
            )
        raise HTTPError(404, "no such resource")

    def handle_GET(self, request: Request) -> tuple[int, Any]:
        """
        A conversation, or a page of its messages.
        """
        path = self._path(request)
        if len(path) == 1 and path[0]:
            return self._call(request, self._im.conversation_get, {"conversationId": path[0]})
        if len(path) == 2 and path[1] == "messages":
            payload: dict[str, Any] = {"conversationId": path[0]}
            limit = _query_int(request, b"limit")
            if limit is not None:
                payload["limit"] = limit
            before = (request.args or {}).get(b"before")
            if before:
                payload["before"] = before[-1].decode("utf-8", "replace")
            return self._call(request, self._im.conversation_history, payload)
        raise HTTPError(404, "no such resource")
