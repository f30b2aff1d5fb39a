# -*- test-case-name: tests.test_engineio_websocket,tests.test_xgate -*-
"""
Sending a prepared WebSocket message without Autobahn's per-frame cost,
and keeping less per connection.

Autobahn's C{sendData} formats the arguments of a debug log call on every
frame, even with debug logging off; on a broadcast that is most of the
cost. Both WebSocket front ends (xgate and Engine.IO) send through
L{FastSendProtocol.send_frame} instead.
"""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol

__all__ = ["FastSendProtocol"]


class FastSendProtocol(WebSocketServerProtocol):
    """
    An Autobahn server protocol with a cheaper way to send prepared
    messages, and less memory held per open connection.
    """

    def forget_handshake(self) -> None:
        """
        Drop what Autobahn keeps of the opening handshake (the raw request,
        parsed headers and query) once the connection is open and they
        have been read: about 2 KiB per idle connection, for its whole life.
        """
        self.http_request_data = b""
        self.http_status_line = ""
        self.http_headers = {}
        self.http_request_params = {}

    def send_frame(self, message: PreparedMessage) -> None:
        """
        C{sendPreparedMessage}, minus its per-call debug-log formatting.

        When no compression was negotiated and nothing waits in Autobahn's
        own send queue, the prepared frame's bytes go straight to the
        transport, which is all C{sendData} would do with them (minus the
        traffic statistics xmeet does not track).
        """
        transport = self.transport
        if (
            transport is not None
            and self._perMessageCompress is None
            and not self.send_queue
            and self.state == WebSocketProtocol.STATE_OPEN
        ):
            transport.write(message.payloadHybi)
        else:
            self.sendPreparedMessage(message)
