# -*- test-case-name: tests.test_web_paths -*-
"""
Raw HTTP against a real xmeet C{Site} in memory: bytes in through the
site's own channel (so request-line and header parsing are the real
ones), the response bytes out; and a recorder of what the node logs
meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

__all__ = ["InMemoryConnection", "LogRecorder", "Response", "parse_response"]


class Response:
    """
    A parsed HTTP response: status, lowercase headers, de-chunked body.
    """

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """
        The body as JSON.
        """
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


def parse_response(raw: bytes) -> Response:
    """
    The first response in C{raw}.
    """
    head, rest = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, value = line.split(b":", 1)
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        return Response(status, headers, _dechunk(rest))
    length = int(headers.get(b"content-length", len(rest)))
    return Response(status, headers, rest[:length])


class InMemoryConnection:
    """
    One client connection to a site, in memory: bytes in, the response
    bytes out, and whether the server closed it.

    Its transport names its protocol, as TCP transports do: Autobahn's
    WebSocket upgrade hands the transport over by setting it.
    """

    def __init__(self, site: Any) -> None:
        self.transport = StringTransport()
        self.channel = site.buildProtocol(self.transport.getPeer())
        self.transport.protocol = self.channel
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        """
        Hand C{data} to the server's channel.
        """
        self.channel.dataReceived(data)

    @property
    def closed(self) -> bool:
        """
        Whether the server has closed (or is closing) the connection.
        """
        return bool(self.transport.disconnecting)

    def written(self) -> bytes:
        """
        Everything the server wrote so far.
        """
        return self.transport.value()

    def response(self) -> Response:
        """
        The first response the server wrote.
        """
        return parse_response(self.written())

    def status(self) -> int | None:
        """
        The status code of the first response written, if any.
        """
        written = self.written()
        if not written:
            return None
        return int(written.split(b" ", 2)[1])

    def end(self) -> None:
        """
        The connection is gone, as a TCP transport would tell it: its
        producer (the channel, which stops a file being sent) is stopped,
        then whichever protocol holds it now (a WebSocket upgrade takes
        the transport over from the channel) learns the loss.
        """
        producer = self.transport.producer
        if producer is not None:
            producer.stopProducing()
        self.transport.protocol.connectionLost(Failure(ConnectionDone()))


class LogRecorder:
    """
    Every event the node logs while a test runs.
    """

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def clear(self) -> None:
        """
        Forget what was logged so far.
        """
        del self.events[:]

    def errors(self) -> list[LogEvent]:
        """
        Events at error or critical level, or carrying a failure.
        """
        return [
            event
            for event in self.events
            if event.get("log_failure") is not None
            or event.get("isError")
            or event.get("log_level") in (LogLevel.error, LogLevel.critical)
        ]

    def noticed(self) -> list[LogEvent]:
        """
        Events an operator would see: info level and above.
        """
        quiet = (LogLevel.debug,)
        return [event for event in self.events if event.get("log_level") not in quiet]
