# -*- test-case-name: tests.test_engineio_session -*-
"""
The HTTP long-polling transport of one session.

Packets wait in a bounded buffer until the client's pending C{GET} takes
them all as one payload; C{POST} bodies are decoded and handed to the
session. One C{GET} at a time, as the protocol requires: an overlapping
poll is a transport error, exactly as the official server treats it.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from .interfaces import TransportOwner
from .packets import (
    RECORD_SEPARATOR,
    Packet,
    PacketDecodeError,
    PacketType,
    decode_payload_v3,
    decode_payload_v4,
)
from .prepared import PreparedPacket

__all__ = ["PollingTransport", "bad_request"]

log = Logger()

NOOP = PreparedPacket(Packet(PacketType.NOOP))
CLOSE = PreparedPacket(Packet(PacketType.CLOSE))

#: Content codings for polling answers, preferred first, with their zlib
#: window settings (31: gzip wrapper, 15: zlib wrapper, i.e. HTTP "deflate").
_COMPRESSIONS = ((b"gzip", 31), (b"deflate", 15))

#: How long a server-closed session waits for the poll that carries its close
#: packet, as the official server does.
CLOSE_TIMEOUT = 30.0


def bad_request(request: Request, code: int, message: str, status: int = 400) -> bytes:
    """
    Write the official JSON error answer and return its body.
    """
    body = json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return body


def encode_payload(packets: list[PreparedPacket], revision: int, binary: bool) -> str | bytes:
    """
    Encode a poll's answer from prepared packets, reusing their cached forms.
    """
    if revision == 4:
        return RECORD_SEPARATOR.join([p.polling_v4() for p in packets])
    if binary and any(p.is_binary for p in packets):
        return b"".join([p.v3_binary_segment() for p in packets])
    return "".join([p.v3_text_segment() for p in packets])


class PollingTransport:
    """
    Long-polling transport: a packet buffer and at most one pending poll.

    @ivar name: C{"polling"}.
    """

    name = "polling"

    def __init__(
        self,
        revision: int,
        supports_binary: bool,
        *,
        clock: IReactorTime,
        max_payload: int,
        max_buffered: int,
        max_buffered_bytes: int,
        compression_threshold: int | None,
    ) -> None:
        self._revision = revision
        self._clock = clock
        self._supports_binary = supports_binary
        self._max_payload = max_payload
        self._max_buffered = max_buffered
        self._max_buffered_bytes = max_buffered_bytes
        self._buffered_bytes = 0
        self._compression_threshold = compression_threshold
        self._socket: TransportOwner | None = None
        self._buffer: list[PreparedPacket] = []
        self._poll: Request | None = None
        self._upgrading = False
        self._on_drained: Callable[[], None] | None = None
        self._close_timer: IDelayedCall | None = None
        self._done = False

    def take_over(self, owner: TransportOwner) -> None:
        """
        Report this transport's packets and failures to C{owner}.
        """
        self._socket = owner

    # --- the session's side -------------------------------------------------

    def write(self, packet: PreparedPacket) -> None:
        """
        Buffer a packet and answer the pending poll, if any.
        """
        if self._done:
            return
        size = self._size(packet)
        if (
            len(self._buffer) >= self._max_buffered
            or self._buffered_bytes + size > self._max_buffered_bytes
        ):
            self._error("send buffer full: client does not poll")
            return
        self._buffer.append(packet)
        self._buffered_bytes += size
        if self._poll is not None:
            self._flush()

    def _size(self, packet: PreparedPacket) -> int:
        """
        What C{packet} adds to a poll's answer (before compression): its
        bytes in revision 4; in revision 3, the length of its segment
        (characters for a text segment).
        """
        if self._revision == 4:
            return packet.polling_v4_size()
        if self._supports_binary and packet.is_binary:
            return len(packet.v3_binary_segment())
        return len(packet.v3_text_segment())

    def drain_and_close(self, done: Callable[[], None]) -> None:
        """
        Queue a close packet; call C{done} once a poll carried it, or after
        L{CLOSE_TIMEOUT} if no poll comes.
        """
        self._buffer.append(CLOSE)
        self._on_drained = done
        if self._poll is not None:
            self._flush()
        elif self._socket is not None:
            self._close_timer = self._clock.callLater(CLOSE_TIMEOUT, self._drained)

    def _drained(self) -> None:
        done = self._forget_close()
        if done is not None:
            done()

    def _forget_close(self) -> Callable[[], None] | None:
        done, self._on_drained = self._on_drained, None
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        self._close_timer = None
        return done

    def shutdown(self, polite: bool) -> None:
        """
        Drop the buffer; answer a pending poll with a close packet (polite)
        or a noop (the client closed or left).
        """
        if self._done:
            return
        self._done = True
        self._buffer = []
        self._buffered_bytes = 0
        self._forget_close()
        if self._poll is not None:
            self._respond(self._poll, [CLOSE if polite else NOOP])
            self._poll = None

    def prompt_upgrade(self) -> None:
        """
        Answer polls at once with a noop while a WebSocket completes the
        upgrade, so the client can pause polling.
        """
        self._upgrading = True
        if self._poll is not None:
            self._flush_or_noop()

    def cancel_upgrade(self) -> None:
        """
        The upgrade failed: polls wait for data again.
        """
        self._upgrading = False

    def hand_over(self) -> list[PreparedPacket]:
        """
        Stop polling for good; return the undelivered packets.
        """
        packets, self._buffer = self._buffer, []
        self._buffered_bytes = 0
        if self._poll is not None:
            self._respond(self._poll, [NOOP])
            self._poll = None
        self._done = True
        return packets

    # --- the HTTP side ------------------------------------------------------

    def handle_get(self, request: Request) -> bytes | int:
        """
        A poll: answer now if packets wait, else hold the request.
        """
        if self._done:
            return bad_request(request, 3, "Bad request")
        if self._poll is not None:
            self._error("overlap from client")
            return bad_request(request, 3, "Bad request")
        self._poll = request
        request.notifyFinish().addErrback(self._poll_lost, request)
        if self._buffer:
            self._flush()
        elif self._upgrading:
            self._flush_or_noop()
        return NOT_DONE_YET

    def handle_post(self, request: Request) -> bytes:
        """
        A payload from the client: decode it and hand its packets over.
        """
        content = request.content
        assert content is not None
        if content.seek(0, os.SEEK_END) > self._max_payload:
            request.setResponseCode(413)
            return b""
        content.seek(0)
        body = content.read()
        binary = _content_type(request) == "application/octet-stream"
        if binary and self._revision == 4:
            self._error("invalid content")
            return bad_request(request, 3, "Bad request")
        try:
            packets = self._decode(body, binary)
        except PacketDecodeError as e:
            self._deliver(list(e.decoded))
            if self._socket is not None:
                self._socket.parse_error(self)
            return bad_request(request, 3, "Bad request")
        self._deliver(packets)
        request.setHeader(b"content-type", b"text/html")
        return b"ok"

    def _decode(self, body: bytes, binary: bool) -> list[Packet]:
        if binary:
            return decode_payload_v3(body)
        text = body.decode("utf-8", "replace")
        if self._revision == 4:
            return decode_payload_v4(text)
        return decode_payload_v3(text)

    def _deliver(self, packets: list[Packet]) -> None:
        for packet in packets:
            if self._socket is None or self._done:
                return
            self._socket.packet_received(self, packet)

    def _poll_lost(self, reason: Failure, request: Request) -> None:
        if request is self._poll:
            self._poll = None
            self._error("poll connection closed prematurely")

    def _error(self, description: str) -> None:
        if self._socket is not None:
            self._socket.transport_error(self, description)

    def _flush_or_noop(self) -> None:
        if not self._buffer:
            self._buffer.append(NOOP)
        self._flush()

    def _flush(self) -> None:
        request, self._poll = self._poll, None
        packets, self._buffer = self._buffer, []
        self._buffered_bytes = 0
        assert request is not None
        self._respond(request, packets)
        if self._on_drained is not None:
            self._drained()

    @property
    def polling(self) -> bool:
        """
        Whether a poll is waiting for packets now.
        """
        return self._poll is not None

    def answer_late_poll(self, request: Request) -> int:
        """
        Answer a poll that arrived just after the client closed the
        session: a noop, as a pending poll gets when the session closes.
        """
        self._respond(request, [NOOP])
        return NOT_DONE_YET

    def _respond(self, request: Request, packets: list[PreparedPacket]) -> None:
        payload = encode_payload(packets, self._revision, self._supports_binary)
        if isinstance(payload, str):
            body = payload.encode("utf-8")
            request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        else:
            body = payload
            request.setHeader(b"content-type", b"application/octet-stream")
        threshold = self._compression_threshold
        if threshold is not None and len(body) >= threshold:
            body = _compress(request, body)
        request.setHeader(b"content-length", b"%d" % len(body))
        request.setHeader(b"cache-control", b"no-store")
        request.write(body)
        request.finish()


def _accepted_encodings(request: Request) -> set[bytes]:
    """
    The content codings a request accepts (those given C{q=0} excluded).
    """
    accepted = set()
    for item in (request.getHeader(b"accept-encoding") or b"").lower().split(b","):
        name, _, params = item.partition(b";")
        quality = params.strip()
        refused = quality.startswith(b"q=") and not quality[2:].strip(b"0.")
        if name.strip() and not refused:
            accepted.add(name.strip())
    return accepted


def _compress(request: Request, body: bytes) -> bytes:
    """
    Compress a poll's answer with gzip or deflate if the client accepts
    either, as the official server does for answers over its threshold.
    """
    accepted = _accepted_encodings(request)
    for name, wbits in _COMPRESSIONS:
        if name in accepted:
            compressor = zlib.compressobj(wbits=wbits)
            request.setHeader(b"content-encoding", name)
            return compressor.compress(body) + compressor.flush()
    return body


def _content_type(request: Request) -> str:
    value = request.getHeader(b"content-type") or b""
    return value.split(b";", 1)[0].strip().decode("latin-1").lower()
