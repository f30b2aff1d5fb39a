# -*- test-case-name: tests.test_xgate -*-
"""
The xgate WebSocket protocol: one Autobahn connection is one member of one
xnest (PROTOCOL.md section 1).

The protocol only translates: the handshake into a nickname and a join,
text frames into calls on the L{RoomService}, frames from the service into
prepared WebSocket messages. Limits and bad frames close the connection
with the close codes of the contract.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from xmeet.config import Settings
from xmeet.core.commands import ChangeName, parse_command
from xmeet.core.frames import Frame, dumps, frame_json
from xmeet.core.limits import SenderPolicy, Verdict
from xmeet.core.room import Member
from xmeet.core.rules import InvalidName
from xmeet.core.tokens import XnestGrant
from xmeet.rooms import Greeting, IMemberSink, RoomService
from xmeet.transport.internals import UNKNOWN, registered_producer
from xmeet.transport.lean import compact
from xmeet.transport.lease import LeasedConnection

__all__ = [
    "CLOSE_BINARY",
    "CLOSE_POLICY",
    "NICKNAME_COOKIE_MAX_AGE",
    "XgateProtocol",
    "XnestFactory",
    "XnestOwner",
    "apply_protocol_options",
    "greeting_frames",
    "prepare_text",
]

log = Logger()

CLOSE_BINARY = 1003
CLOSE_POLICY = 1008
NICKNAME_COOKIE_MAX_AGE = 31536000

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def prepare_text(text: str) -> PreparedMessage:
    """
    A server-to-client text message framed once, for any number of
    connections.
    """
    return PreparedMessage(text.encode("utf-8"), False, False, True)


def apply_protocol_options(factory: WebSocketServerFactory, settings: Settings) -> None:
    """
    The Autobahn options every xmeet WebSocket endpoint shares.

    C{failByDrop=False}: when Autobahn fails a connection (message too big,
    invalid UTF-8) it sends the close frame with its code instead of
    dropping TCP, so the client learns why. The heartbeat is Autobahn's
    auto-ping, whose timers Autobahn batches. C{webStatus=False}: a plain
    HTTP request gets 426 instead of Autobahn's status page, whose
    C{?redirect=URL} would make every room URL an open redirect.
    """
    factory.setProtocolOptions(
        maxMessagePayloadSize=settings.max_message_size,
        maxFramePayloadSize=settings.max_message_size,
        failByDrop=False,
        autoPingInterval=settings.ping_interval,
        autoPingTimeout=settings.ping_timeout,
        openHandshakeTimeout=10,
        closeHandshakeTimeout=5,
        utf8validateIncoming=True,
        echoCloseCodeReason=False,
        webStatus=False,
    )


def greeting_frames(greeting: Greeting) -> list[Frame]:
    """
    The greeting as the frames a new member gets first, in this order:
    C{self}, C{member_count}, C{members}, C{history}.
    """
    sender = greeting.member.id
    return [
        Frame(frame_json(sender, greeting.xnest_json, frame_type, payload_json, greeting.send_time))
        for frame_type, payload_json in (
            ("self", dumps(sender)),
            ("member_count", str(greeting.member_count)),
            ("members", greeting.members_json),
            ("history", greeting.history_json),
        )
    ]


def _cookie_nickname(cookie_header: str) -> str | None:
    """
    The first C{nickname} cookie, URL-decoded; C{None} if there is none or
    it is not UTF-8.
    """
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "nickname":
            try:
                return unquote(value, errors="strict")
            except UnicodeDecodeError:
                return None
    return None


def _query(request: ConnectionRequest, uri: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(urlsplit(uri).query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ConnectionDeny(400, "query string is not valid UTF-8") from None
    return dict(pairs)


def _store_history(query: dict[str, str]) -> bool:
    value = query.get("is_store_history", "true").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConnectionDeny(400, "is_store_history must be true or false")


@implementer(IMemberSink)
class XgateProtocol(LeasedConnection):
    """
    One member's WebSocket connection, counted for its client address
    until its TCP connection is lost.

    @ivar member: the membership, from C{onOpen} until the connection ends.
    @ivar grant: what the connection's JWT allows (with C{--xgate-jwt}):
        the connection closes with 1008 when it expires.
    """

    factory: XnestFactory
    member: Member | None = None
    grant: XnestGrant | None = None
    _expiry: IDelayedCall | None = None
    _nickname = ""
    _store_history = True
    _ended = False
    _policy: SenderPolicy
    _early: list[str] | None = None

    def onConnect(self, request: ConnectionRequest) -> tuple[None, dict[str, str]]:
        """
        Choose the nickname (the token's, else the query's, else the
        cookie's, else random) and hand the cookie back on the 101
        response; refuse bad input with 400.
        """
        query = _query(request, self.http_request_uri)
        self._store_history = _store_history(query)
        if self.grant is not None and self.grant.nickname is not None:
            nickname = self.grant.nickname
        else:
            remembered = _cookie_nickname(request.headers.get("cookie", ""))
            try:
                nickname = self.factory.rooms.choose_nickname(query.get("nickname"), remembered)
            except InvalidName as error:
                raise ConnectionDeny(400, str(error)) from None
        self._nickname = nickname
        cookie = (
            f"nickname={quote(nickname, safe='')}; Path=/xgate/; "
            f"Max-Age={NICKNAME_COOKIE_MAX_AGE}; SameSite=Lax"
        )
        return None, {"Set-Cookie": cookie}

    def onOpen(self) -> None:
        """
        Join the xnest: the service tells the others, and this member gets
        the service's greeting before anything else. Messages that arrive
        while the xnest is being taken live are kept and handled, in order,
        once the member is in.
        """
        factory = self.factory
        self._policy = SenderPolicy(
            factory.settings.rate, factory.settings.burst, factory.clock.seconds()
        )
        self._early = []
        self._take_over_producer()
        if self.grant is not None:
            delay = max(0.0, self.grant.expires_at / 1000 - factory.clock.seconds())
            self._expiry = factory.clock.callLater(
                delay, self.close_with, CLOSE_POLICY, "token expired"
            )
        joining = factory.rooms.join(factory.xnest_id, self._nickname, self, self._store_history)
        joining.addCallback(self._joined)

    def _joined(self, greeting: Greeting) -> None:
        member = greeting.member
        if self._ended:
            self.factory.rooms.leave(member)
            return
        for frame in greeting_frames(greeting):
            self.deliver(frame)
        self.member = member
        early, self._early = self._early or [], None
        for text in early:
            self.factory.rooms.receive(member, text)
        compact(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        A complete message from the client (Autobahn has already checked
        its size and UTF-8).
        """
        if self._ended:
            return
        if isBinary:
            self.close_with(CLOSE_BINARY, "binary messages are not accepted")
            return
        if not self._allowed():
            return
        text = payload.decode("utf-8")
        if self._nickname_fixed(text):
            return
        if self.member is not None:
            self.factory.rooms.receive(self.member, text)
        elif self._early is not None:
            self._early.append(text)

    def _allowed(self) -> bool:
        """
        Whether the sender policy lets this message through; if not, the
        client is told (an C{error} frame) or closed (1008) as it says.
        """
        member = self.member
        verdict = self._policy.judge(self.factory.clock.seconds(), can_tell=member is not None)
        if verdict is Verdict.CLOSE:
            self.close_with(CLOSE_POLICY, "sending far above the rate limit")
        elif verdict is Verdict.DROP_AND_TELL and member is not None:
            self.factory.rooms.send_error(member, "rate limit exceeded: message dropped")
        return verdict is Verdict.ACCEPT

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        However the connection ended, the member leaves and the others are
        told.

        Autobahn leaves its closing handshake timer running when it drops
        the connection itself before the handshake ends (a second UTF-8
        error in the message that failed it); it is cancelled here, so a
        closed connection holds no timer. The connection is counted out
        even if leaving fails, so the xnest's factory is still released.
        """
        timer, self.closeHandshakeTimeoutCall = self.closeHandshakeTimeoutCall, None
        if timer is not None:
            timer.cancel()
        expiry, self._expiry = self._expiry, None
        if expiry is not None and expiry.active():
            expiry.cancel()
        try:
            self._leave()
        finally:
            self.factory.connection_ended(self)

    def _nickname_fixed(self, text: str) -> bool:
        """
        Refuse C{@changename} with an C{error} frame when the token gave
        the nickname: it names the holder, who may not pose as another.
        """
        if self.grant is None or self.grant.nickname is None:
            return False
        if not isinstance(parse_command(text), ChangeName):
            return False
        if self.member is not None:
            self.factory.rooms.send_error(self.member, "your token sets your nickname")
        return True

    def close_with(self, code: int, reason: str) -> None:
        """
        Leave the room now and start the closing handshake with C{code}:
        the close frame reaches the client, nothing more is processed.
        """
        log.info(
            "closing xgate connection {peer} with {code}: {reason}",
            peer=self.peer,
            code=code,
            reason=reason,
        )
        self._leave()
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)

    def _fail_connection(self, code: int = 1001, reason: str = "going away") -> None:
        """
        Autobahn fails the connection (too big, invalid UTF-8, protocol
        error): leave the room at once rather than after the closing
        handshake, then let Autobahn send its close frame.
        """
        self._leave()
        super()._fail_connection(code, reason)

    def _leave(self) -> None:
        self._ended = True
        member, self.member = self.member, None
        if member is not None:
            self.factory.rooms.leave(member)

    def _take_over_producer(self) -> None:
        """
        Become the push producer of the TCP connection, in place of the
        HTTP channel that accepted the upgrade, to learn when the client
        stops reading.
        """
        transport: Any = self.transport
        unregister = None
        if registered_producer(transport) not in (None, UNKNOWN):
            unregister = transport.unregisterProducer
        self.become_producer(unregister)

    def deliver(self, frame: Frame) -> None:
        """
        Send C{frame}: its prepared message is built once per frame and
        shared by every xgate member. While the client does not read, the
        shared messages wait in a queue bounded in frames
        (C{max_send_queue}) and in bytes on the wire (C{max_send_buffer});
        a client that goes past either is dropped, so a stalled reader
        cannot grow the server's memory.
        """
        prepared = frame.prepared(prepare_text, prepare_text)
        if not (self._paused or self._queue):
            self.send_frame(prepared)
        elif not self._ended:
            self.send_bounded(prepared)

    def send_queue_full(self, frames: int, size: int) -> None:
        """
        The client stopped reading: it leaves, and its connection is
        dropped.
        """
        log.info(
            "dropping xgate connection {peer}: it stopped reading "
            "({frames} frames, {size} bytes waiting)",
            peer=self.peer,
            frames=frames,
            size=size,
        )
        self._leave()
        transport: Any = self.transport
        transport.abortConnection()


class XnestOwner(Protocol):
    """
    What an xnest's factory needs from the gate that keeps it: what every
    xnest shares, and to be told when connections start and end.
    """

    rooms: RoomService
    settings: Settings
    clock: IReactorTime

    def protocol_class(self, factory: XnestFactory) -> type[XgateProtocol]:
        """
        The protocol class of every xnest's factory.
        """

    def connection_started(self) -> None:
        """
        A connection of one of the gate's xnests starts its handshake.
        """

    def connection_ended(self, factory: XnestFactory) -> None:
        """
        A connection of C{factory} ended; C{factory} has none left when
        its C{connections} is 0.
        """


class XnestFactory(WebSocketServerFactory):
    """
    The Autobahn factory of one xnest, created for its first connection and
    released by its gate when its last connection ends.
    """

    protocol = XgateProtocol  # type: ignore[assignment]

    def __init__(self, xnest_id: str, gate: XnestOwner) -> None:
        super().__init__()
        self.xnest_id = xnest_id
        self.gate = gate
        self.rooms = gate.rooms
        self.settings = gate.settings
        self.clock = gate.clock
        self.connections = 0
        self.next_grant: XnestGrant | None = None
        apply_protocol_options(self, gate.settings)
        self.protocol = gate.protocol_class(self)

    def buildProtocol(self, addr: Any) -> Any:
        """
        Count connections from the start of the handshake, so the factory
        outlives every connection that uses it.
        """
        self.connections += 1
        self.gate.connection_started()
        protocol: Any = super().buildProtocol(addr)
        protocol.grant = self.next_grant
        return protocol

    def connection_ended(self, protocol: XgateProtocol) -> None:
        """
        One connection of this factory is over; the gate releases the
        factory after its last one.
        """
        self.connections -= 1
        self.gate.connection_ended(self)
