"""
Guards of L{xmeet.transport.internals}: every private or undocumented
Twisted and Autobahn name the WebSocket fast path relies on exists in the
installed versions, with the meaning the fast path gives it. A failure
here names what an upgrade renamed.
"""

from __future__ import annotations

import socket
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import HTTPChannel

from tests.support import upgrade_request
from xmeet.transport import internals
from xmeet.transport.producer import BoundedSendProtocol
from xmeet.transport.send import FastSendProtocol

HANDSHAKE = upgrade_request(b"/room")


def _tcp_server(case: SynchronousTestCase) -> Any:
    """
    A real Twisted TCP server connection over a socket pair, on a memory
    reactor (so no real reactor ever watches the pair).
    """
    ours, theirs = socket.socketpair()
    case.addCleanup(ours.close)
    case.addCleanup(theirs.close)
    port: Any = None
    return internals.TWISTED_TCP_SERVER(
        ours, Protocol(), ("127.0.0.1", 1), port, 1, MemoryReactorClock()
    )


def _open_autobahn(case: SynchronousTestCase) -> WebSocketServerProtocol:
    """
    A plain Autobahn server connection, open over a memory transport.
    """
    factory = WebSocketServerFactory(reactor=Clock())
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    factory.protocol = WebSocketServerProtocol
    protocol: Any = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(HANDSHAKE)
    case.assertEqual(protocol.state, WebSocketProtocol.STATE_OPEN)
    return protocol  # type: ignore[no-any-return]


class TwistedNamesTests(SynchronousTestCase):
    """
    Twisted's TCP connections.
    """

    def test_attributes(self) -> None:
        """
        A TCP server connection has every attribute the fast path reads.
        """
        transport = _tcp_server(self)
        for name in internals.TWISTED_TRANSPORT_NAMES:
            self.assertTrue(hasattr(transport, name), f"twisted tcp.Server lost {name!r}")

    def test_http_channel(self) -> None:
        """
        A twisted.web HTTP channel keeps its requests where
        L{internals.release_requests} empties them, and a transport tells
        its registered producer.
        """
        channel = HTTPChannel()
        self.assertIsInstance(channel.requests, list)
        channel.requests.append(object())
        internals.release_requests(channel)
        self.assertEqual(channel.requests, [])
        transport = _tcp_server(self)
        self.assertIsNone(internals.registered_producer(transport))
        transport.registerProducer(channel, True)
        self.assertIs(internals.registered_producer(transport), channel)
        self.assertIs(internals.registered_producer(object()), internals.UNKNOWN)

    def test_meanings(self) -> None:
        """
        A fresh connection may batch and is sent on; once Twisted holds
        bytes of it, or it is closing or half-closed, bytes go through
        Twisted's buffer; once aborted, they are dropped. A transport that
        is not plain TCP never batches.
        """
        fresh = _tcp_server(self)
        self.assertTrue(internals.may_batch(fresh))
        self.assertIs(internals.send_route(fresh), internals.SEND)
        fresh.write(b"x")
        self.assertFalse(internals.may_batch(fresh))
        self.assertIs(internals.send_route(fresh), internals.BUFFER)
        closing = _tcp_server(self)
        closing.loseConnection()
        self.assertIs(internals.send_route(closing), internals.BUFFER)
        half = _tcp_server(self)
        half.loseWriteConnection()
        half.doWrite()
        self.assertIs(internals.send_route(half), internals.BUFFER)
        aborted = _tcp_server(self)
        aborted.abortConnection()
        self.assertIs(internals.send_route(aborted), internals.DROP)
        self.assertFalse(internals.may_batch(StringTransport()))


class AutobahnNamesTests(SynchronousTestCase):
    """
    Autobahn's protocol, messages and modules.
    """

    def test_overridden_methods(self) -> None:
        """
        The methods xmeet's protocols override exist on Autobahn's server
        protocol, so the overrides are called.
        """
        for name in internals.AUTOBAHN_OVERRIDDEN:
            self.assertTrue(
                callable(getattr(WebSocketServerProtocol, name, None)),
                f"Autobahn's WebSocketServerProtocol lost {name!r}",
            )

    def test_options_copied(self) -> None:
        """
        A factory copies each option onto the connections it builds, as an
        instance attribute (which a lean class makes unnecessary).
        """
        protocol = _open_autobahn(self)
        for name in internals.AUTOBAHN_OPTION_NAMES:
            self.assertIn(name, protocol.__dict__, f"Autobahn no longer copies {name!r}")
        self.assertIn("maxMessagePayloadSize", internals.AUTOBAHN_OPTION_NAMES)
        self.assertIn("autoPingInterval", internals.AUTOBAHN_OPTION_NAMES)

    def test_our_names_are_ours(self) -> None:
        """
        The attributes the fast path adds to Autobahn's protocol are not
        Autobahn's: only the methods it means to override are.
        """
        ours = set(vars(FastSendProtocol)) | set(vars(BoundedSendProtocol))
        ours -= {"__doc__", "__module__", "__annotations__", "__provides__"}
        ours -= {"__implemented__", "__providedBy__", "__dict__", "__weakref__"}
        overridden = {name for name in ours if hasattr(WebSocketServerProtocol, name)}
        self.assertEqual(
            overridden, {"_closeConnection", "sendCloseFrame", "dataReceived", "sendData"}
        )
        self.assertLessEqual(
            overridden, {*internals.AUTOBAHN_OVERRIDDEN, "dataReceived", "sendData"}
        )

    def test_log_helpers(self) -> None:
        """
        The debug log helpers replaced by C{format_lazily} are module
        globals of Autobahn.
        """
        for module, name in internals.AUTOBAHN_LOG_HELPERS:
            self.assertTrue(callable(getattr(module, name, None)), f"{module.__name__}.{name}")

    def test_quiet_state(self) -> None:
        """
        An open connection, quiet again after a message, holds each quiet
        attribute with exactly its quiet value (which the lean class then
        holds for it).
        """
        protocol = _open_autobahn(self)
        protocol.dataReceived(b"\x81\x82\0\0\0\0hi")
        for name, value in internals.AUTOBAHN_QUIET_STATE.items():
            self.assertIn(name, protocol.__dict__, f"Autobahn no longer sets {name!r}")
            self.assertEqual(protocol.__dict__[name], value, name)

    def test_handshake_state(self) -> None:
        """
        An open connection holds each handshake leftover.
        """
        protocol = _open_autobahn(self)
        for name in internals.AUTOBAHN_HANDSHAKE_STATE:
            self.assertIn(name, protocol.__dict__, f"Autobahn no longer sets {name!r}")

    def test_sending(self) -> None:
        """
        An open connection allows plain frames while its own queue is empty, a
        prepared message's wire bytes are its unmasked frame, and received
        bytes are parsed by the private method the fast path calls.
        """
        protocol = _open_autobahn(self)
        self.assertFalse(internals.autobahn_queue_busy(protocol))
        message = PreparedMessage(b"hi", False, False, True)
        self.assertEqual(internals.frame_bytes(message), b"\x81\x02hi")
        written: list[bytes] = []
        protocol._write = written.append  # type: ignore[attr-defined]
        internals.send_prepared_frame(protocol, message)
        self.assertEqual(written, [b"\x81\x02hi"])
        protocol.send_queue.append((b"waiting", False))
        self.assertTrue(internals.autobahn_queue_busy(protocol))
        internals.send_prepared_frame(protocol, message)
        self.assertEqual(written, [b"\x81\x02hi"], "written past Autobahn's queue")
        received: list[bytes] = []
        protocol.onMessage = lambda payload, binary: received.append(payload)  # type: ignore[method-assign]
        internals.parse_incoming(protocol, b"\x81\x82\0\0\0\0hi")
        self.assertEqual(received, [b"hi"])
