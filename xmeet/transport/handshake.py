# -*- test-case-name: tests.test_web_paths -*-
"""
Refused WebSocket opening handshakes, answered like every other refusal
and logged quietly.

Autobahn answers a refused handshake (no C{Upgrade} header, a bad key, a
C{ConnectionDeny} from C{onConnect}) with a bare status line, and logs an
info line and a warning for it: two log lines for any request a client
cares to send to a WebSocket endpoint. L{refuse_handshake} replaces its
C{failHandshake} in both WebSocket front ends (see
L{xmeet.transport.lean.lean_protocol}): the same status line, the JSON error
object as body, and one debug line.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.logger import Logger

from xmeet.web_errors import error_body

__all__ = ["refuse_handshake"]

log = Logger()


def refuse_handshake(
    protocol: WebSocketServerProtocol,
    reason: str,
    code: int = 400,
    responseHeaders: Any = None,  # noqa: N803 (Autobahn's name)
) -> None:
    """
    Answer the handshake with status C{code} (C{reason} as its phrase,
    as Autobahn does), C{responseHeaders} and the JSON error object, then
    close the connection.

    The connection counts as closed cleanly: the server ended it on
    purpose after a complete answer, and Autobahn logs a warning for
    connections it drops uncleanly.
    """
    log.debug("refused WebSocket handshake: {code} {reason}", code=code, reason=reason)
    body = error_body(code, reason)
    phrase = " ".join(reason.split()) or "refused"
    head = [f"HTTP/1.1 {code} {phrase}"]
    head += [f"{name}: {value}" for name, value in responseHeaders or ()]
    head += [
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    protocol.wasNotCleanReason = reason
    protocol.sendData(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body)
    protocol.wasClean = True
    protocol.dropConnection(abort=False)
