# -*- test-case-name: tests.test_im,tests.test_im_events -*-
"""
The IM service's values on the wire (PROTOCOL.md section 3): every call's
result as its acknowledgement, C{{statusCode, body}} (a C{logIn}'s as the
bare object), and every refusal as C{{statusCode, error}}. Both front ends
(Socket.IO events and the HTTP API) answer with exactly these objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xmeet.core.im import IMError
from xmeet.im.values import (
    ConversationCreated,
    ConversationList,
    ConversationSent,
    ConversationShown,
    DirectSent,
    HistoryPage,
    LoggedIn,
    LoggedOut,
    Refreshed,
)

__all__ = ["error_ack", "render"]


def _ok(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _logged_in(result: LoggedIn) -> dict[str, Any]:
    ack: dict[str, Any] = {
        "userId": result.user_id,
        "socketId": result.socket_id,
        "sessionToken": result.session_token,
    }
    if result.expires_at is not None:
        ack["expiresAt"] = result.expires_at
    return ack


def _refreshed(result: Refreshed) -> dict[str, Any]:
    return _ok({"expiresAt": result.expires_at})


def _logged_out(result: LoggedOut) -> dict[str, Any]:
    return _ok({})


def _direct_sent(result: DirectSent) -> dict[str, Any]:
    body = {
        "id": result.id,
        "sent": list(result.sent),
        "online": list(result.online),
        "offline": list(result.offline),
    }
    return _ok(body, 201)


def _conversation_sent(result: ConversationSent) -> dict[str, Any]:
    sent = {"online": list(result.online), "offline": list(result.offline)}
    return _ok({"id": result.id, "sent": sent}, 201)


def _created(result: ConversationCreated) -> dict[str, Any]:
    conversation = result.conversation
    return _ok({"id": conversation.id, "conversation": conversation.as_json()}, 201)


def _shown(result: ConversationShown) -> dict[str, Any]:
    return _ok({"conversation": result.conversation.as_json()})


def _listed(result: ConversationList) -> dict[str, Any]:
    return _ok({"conversations": [c.as_json() for c in result.conversations]})


def _page(result: HistoryPage) -> dict[str, Any]:
    return _ok({"messages": list(result.messages)})


_RENDERERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    LoggedIn: _logged_in,
    Refreshed: _refreshed,
    LoggedOut: _logged_out,
    DirectSent: _direct_sent,
    ConversationSent: _conversation_sent,
    ConversationCreated: _created,
    ConversationShown: _shown,
    ConversationList: _listed,
    HistoryPage: _page,
}


def render(result: object) -> dict[str, Any]:
    """
    The acknowledgement of a call's C{result}.
    """
    return _RENDERERS[type(result)](result)


def error_ack(error: IMError) -> dict[str, Any]:
    """
    The error object of a refused call, as its acknowledgement, the
    payload of an C{error} event, or an HTTP response's body.
    """
    return error.as_ack()
