# -*- test-case-name: tests.test_http_api -*-
"""
The HTTP API of Xmeet rooms (PROTOCOL.md section 4): C{/api/xnests/...}
and the original query API C{POST /xgate/http}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from xmeet.core.commands import CommandError, parse_cursor
from xmeet.core.rules import InvalidName, decode_xnest_segment, validate_xnest_id
from xmeet.handlers.http_json import HTTPError, JSONResource, read_json
from xmeet.rooms import RoomService, RoomView

__all__ = ["XgateHTTPResource", "XnestsResource"]


def _members_body(xnest_id: str, view: RoomView) -> dict[str, Any]:
    return {"xnest": xnest_id, "member_count": len(view.members), "members": view.members}


def _history_body(xnest_id: str, cursor: int, view: RoomView) -> dict[str, Any]:
    return {"xnest": xnest_id, "cursor": cursor, "history": json.loads(view.history_page(cursor))}


def _ok(body: Any) -> tuple[int, Any]:
    return 200, {"statusCode": 200, "body": body}


def _result(method: str, view: RoomView, cursor: int) -> Any:
    if method == "members":
        return view.members
    if method == "member_count":
        return len(view.members)
    return json.loads(view.history_page(cursor))


class XnestsResource(JSONResource):
    """
    C{GET /api/xnests/{xnest_id}} and C{GET /api/xnests/{xnest_id}/history?cursor=N}.

    The path is read undecoded, like the WebSocket endpoint, so both accept
    and refuse exactly the same room ids.
    """

    def __init__(self, rooms: RoomService) -> None:
        super().__init__()
        self._rooms = rooms

    def _target(self, request: Request) -> tuple[str, bool]:
        path = request.uri.split(b"?", 1)[0]
        rest = path.split(b"/")[3:]
        if len(rest) == 2 and rest[1] == b"history":
            rest = rest[:1]
            wants_history = True
        elif len(rest) == 1:
            wants_history = False
        else:
            raise HTTPError(404, "no such resource: use /api/xnests/{xnest_id}[/history]")
        try:
            return decode_xnest_segment(rest[0]), wants_history
        except InvalidName as error:
            raise HTTPError(400, str(error)) from None

    def handle_GET(self, request: Request) -> Deferred[tuple[int, Any]]:
        """
        The room's members, or one page of its history.
        """
        xnest_id, wants_history = self._target(request)
        view = self._rooms.view(xnest_id)
        if wants_history:
            raw = (request.args or {}).get(b"cursor", [b"0"])[-1]
            try:
                cursor = parse_cursor(raw.decode("utf-8", "replace"))
            except CommandError as error:
                raise HTTPError(400, str(error)) from None
            view.addCallback(lambda found: _history_body(xnest_id, cursor, found))
        else:
            view.addCallback(lambda found: _members_body(xnest_id, found))
        return view.addCallback(_ok)


class XgateHTTPResource(JSONResource):
    """
    C{POST /xgate/http}: the original Xmeet query API,
    C{{"request_id", "method", "params": {"xnest", "cursor"}}} answered with
    C{{"request_id", "result"}}; an unknown method's result is C{"404"}.
    """

    def __init__(self, rooms: RoomService, body_limit: int) -> None:
        super().__init__()
        self._rooms = rooms
        self._limit = body_limit

    def handle_POST(self, request: Request) -> tuple[int, Any] | Deferred[tuple[int, Any]]:
        """
        Answer one query; nothing lies below C{/xgate/http} (a trailing
        slash is forgiven).
        """
        if request.postpath not in ([], [b""]):
            raise HTTPError(404, "no such resource: use POST /xgate/http")
        query = read_json(request, self._limit)
        if not isinstance(query, dict):
            raise HTTPError(400, "request must be a JSON object")
        request_id = query.get("request_id")
        params = query.get("params")
        if not isinstance(params, dict):
            params = {}
        method = query.get("method")
        if method not in ("members", "member_count", "history"):
            return 200, {"request_id": request_id, "result": "404"}
        xnest_id = params.get("xnest")
        try:
            if not isinstance(xnest_id, str):
                raise InvalidName("params.xnest must be a string")
            validate_xnest_id(xnest_id)
            cursor = self._cursor(params.get("cursor", 0))
        except (InvalidName, CommandError) as error:
            raise HTTPError(400, str(error)) from None
        return self._rooms.view(xnest_id).addCallback(
            lambda view: (200, {"request_id": request_id, "result": _result(method, view, cursor)})
        )

    @staticmethod
    def _cursor(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise CommandError("params.cursor must be a non-negative integer")
        return parse_cursor(str(value))
