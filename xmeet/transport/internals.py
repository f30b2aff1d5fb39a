# -*- test-case-name: tests.test_transport_internals -*-
"""
Every private or undocumented name of Twisted and Autobahn that the
WebSocket fast path relies on, in one place.

The rest of L{xmeet.transport} reaches these libraries' insides only
through this module, and L{tests.test_transport_internals} checks each
name against the installed versions: an upgrade that renames one fails
that test by name, instead of a connection misbehaving quietly.
C{setup.cfg} bounds both libraries at the versions tested.
"""

from __future__ import annotations

from types import MappingProxyType, ModuleType
from typing import Any

import autobahn.twisted.websocket
import autobahn.websocket.protocol
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.tcp import Server

__all__ = [
    "AUTOBAHN_HANDSHAKE_STATE",
    "AUTOBAHN_LOG_HELPERS",
    "AUTOBAHN_OPTION_NAMES",
    "AUTOBAHN_OVERRIDDEN",
    "AUTOBAHN_QUIET_STATE",
    "TWISTED_TCP_SERVER",
    "TWISTED_TRANSPORT_NAMES",
    "UNKNOWN",
    "autobahn_queue_busy",
    "frame_bytes",
    "BUFFER",
    "DROP",
    "SEND",
    "may_batch",
    "parse_incoming",
    "send_prepared_frame",
    "registered_producer",
    "release_requests",
    "send_route",
]

TWISTED_TCP_SERVER = Server
"""
The class of Twisted's accepted TCP connections: only these are written
to with one C{send} per turn, through their C{socket}.
"""

TWISTED_TRANSPORT_NAMES = (
    "_tempDataLen",
    "dataBuffer",
    "_aborting",
    "_writeDisconnected",
    "socket",
    "TLS",
    "producer",
)
"""
Attributes of a Twisted TCP connection read by the fast path.
"""

UNKNOWN = object()
"""
What L{registered_producer} returns for a transport that does not say.
"""


def registered_producer(transport: Any) -> Any:
    """
    The producer registered with C{transport}: C{None} if none is,
    L{UNKNOWN} if the transport does not tell (a test transport).
    """
    return getattr(transport, "producer", UNKNOWN)


def release_requests(channel: Any) -> None:
    """
    Make a twisted.web HTTP channel forget its requests (which refer back
    to it), once a WebSocket has taken its connection over.
    """
    channel.requests = []


def may_batch(transport: Any) -> bool:
    """
    Whether writes to C{transport} may wait for the end of the turn and
    leave in one C{send}: a TCP connection without TLS (whose socket the
    fast path sends on) with nothing left in Twisted's buffer (else new
    bytes would overtake it).
    """
    return (
        type(transport) is Server
        and not transport.TLS
        and not (transport._tempDataLen or transport.dataBuffer)
    )


DROP, BUFFER, SEND = "drop", "buffer", "send"
"""
What L{send_route} says to do with bytes for a connection.
"""


def send_route(transport: Any) -> str:
    """
    How bytes batched for C{transport} leave: L{DROP} when it was aborted,
    L{BUFFER} (through C{transport.write}, which keeps them in order
    before a close and after what waits) when it is closing, half-closed
    or still has bytes in Twisted's buffer, else L{SEND} on its socket.
    """
    if transport._aborting:
        return DROP
    if (
        transport.disconnecting
        or transport._writeDisconnected
        or transport._tempDataLen
        or transport.dataBuffer
    ):
        return BUFFER
    return SEND


def parse_incoming(protocol: Any, data: bytes) -> None:
    """
    Autobahn's handling of received bytes, without the debug log call of
    its public C{dataReceived}.
    """
    protocol._dataReceived(data)


AUTOBAHN_OPTION_NAMES: tuple[str, ...] = tuple(WebSocketServerProtocol.CONFIG_ATTRS)
"""
The names of the protocol options an Autobahn server factory copies onto
each connection it builds, unless the protocol class has them.
"""

AUTOBAHN_OVERRIDDEN = ("_closeConnection", "_fail_connection", "failHandshake", "sendCloseFrame")
"""
Autobahn protocol methods that xmeet's protocols override: the close of
the TCP connection, the failing of a WebSocket, the refusal of a
handshake, the sending of a close frame.
"""

AUTOBAHN_LOG_HELPERS: tuple[tuple[ModuleType, str], ...] = (
    (autobahn.websocket.protocol, "pformat"),
    (autobahn.websocket.protocol, "hltype"),
    (autobahn.websocket.protocol, "hlval"),
    (autobahn.twisted.websocket, "hltype"),
    (autobahn.twisted.websocket, "hlval"),
)
"""
The module globals of Autobahn that format debug log arguments, which
L{xmeet.transport.send.format_lazily} replaces with lazy versions.
"""

AUTOBAHN_QUIET_STATE: MappingProxyType[str, Any] = MappingProxyType(
    {
        "send_state": 0,
        "triggered": False,
        "inside_message": False,
        "current_frame": None,
        "wasMaxFramePayloadSizeExceeded": False,
        "wasMaxMessagePayloadSizeExceeded": False,
        "closedByMe": False,
        "failedByMe": False,
        "droppedByMe": False,
        "wasClean": False,
        "wasNotCleanReason": None,
        "wasServerConnectionDropTimeout": False,
        "wasOpenHandshakeTimeout": False,
        "wasCloseHandshakeTimeout": False,
        "wasServingFlashSocketPolicyFile": False,
        "localCloseCode": None,
        "localCloseReason": None,
        "remoteCloseCode": None,
        "remoteCloseReason": None,
        "openHandshakeTimeoutCall": None,
        "closeHandshakeTimeoutCall": None,
        "autoPingTimeoutCall": None,
        "autoPingPending": None,
        "autoPingPendingSent": None,
        "autoPingPendingSeq": 0,
        "trackedTimings": None,
        "_perMessageCompress": None,
        "websocket_protocol_in_use": None,
        "data": b"",
        "utf8validateIncomingCurrentMessage": True,
    }
)
"""
Autobahn's per-connection state whose value stays the same while an open
connection is quiet (no message half-received, no close, no ping awaiting
its answer).
"""

AUTOBAHN_HANDSHAKE_STATE: MappingProxyType[str, Any] = MappingProxyType(
    {
        "http_request_data": b"",
        "http_status_line": "",
        "http_response_data": "",
        "http_request_uri": "",
        "http_request_path": "",
        "http_request_host": "",
        "websocket_origin": "",
        "_wskey": None,
        "http_headers": MappingProxyType({}),
        "http_request_params": MappingProxyType({}),
    }
)
"""
What is left of Autobahn's opening handshake on an open connection, with
the empty value each reads as once dropped.
"""


def send_prepared_frame(protocol: Any, message: Any) -> None:
    """
    The C{send_frame} method of L{xmeet.transport.send.FastSendProtocol}:
    send C{message} (an Autobahn C{PreparedMessage}) on an open
    connection, and nothing after a close frame, which browsers take as a
    protocol error.

    When no compression was negotiated and nothing waits in Autobahn's
    own (synchronous or chopped) send queue, the prepared frame's bytes
    are written as they are (C{protocol._write}), shared by every
    connection they go to; otherwise Autobahn sends it.
    """
    if protocol.state != WebSocketProtocol.STATE_OPEN:
        return
    if protocol._perMessageCompress is None and not protocol.send_queue:
        protocol._write(message.payloadHybi)
    else:
        protocol.sendPreparedMessage(message)


def autobahn_queue_busy(protocol: Any) -> bool:
    """
    Whether Autobahn's own send queue holds bytes, which must leave before
    anything written after them.
    """
    return bool(protocol.send_queue)


def frame_bytes(message: Any) -> bytes:
    """
    The bytes on the wire of an Autobahn C{PreparedMessage}, unmasked
    (server to client).
    """
    payload: bytes = message.payloadHybi
    return payload
