# -*- test-case-name: tests.test_socketio_clients -*-
"""
The server the published protocol test suites run against.

C{python tests/conformance_server.py --port 3000} serves, with xmeet's
public API and the settings the suites expect (pingInterval 300 ms,
pingTimeout 200 ms, maxPayload 1000000, connect timeout 1000 ms, CORS for
any origin):

  - C{/socket.io/}: Socket.IO with the namespaces C{/} and C{/custom} and
    the echo handlers of the socket.io-protocol test suite;
  - C{/engine.io/}: a bare Engine.IO echo server, for the engine.io-protocol
    test suite;
  - C{/echo}: a WebSocket echo endpoint with xgate's Autobahn settings, but
    xmeet's default heartbeat: Autobahn's auto-ping runs on txaio's batched
    timer, which rounds due times down to whole seconds, so a sub-second
    auto-ping fires at once and drops healthy connections.

The client tests build the same site with L{make_site}.

xmeet sends what a C{connect} handler emits right behind the CONNECT
packet, so both usually reach a WebSocket client in one network read. The
socket.io-protocol suite waits for them with two separate one-shot
listeners on its WebSocket and misses the second packet of such a read;
this server alone therefore emits C{auth} a moment after the connection
(L{CONNECT_PACE}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Run as a script: serve this checkout's xmeet, not an installed copy.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import react
from twisted.web.resource import Resource
from twisted.web.server import Site

from xmeet.config import Settings
from xmeet.engineio import EchoHandler, EngineIOResource, EngineIOServer
from xmeet.socketio import Socket, SocketIOServer
from xmeet.xgate import apply_protocol_options

__all__ = [
    "CONFORMANCE_SETTINGS",
    "CONNECT_PACE",
    "ConformanceSite",
    "Pacer",
    "add_echo_handlers",
    "make_site",
]

CONFORMANCE_SETTINGS = Settings(
    ping_interval=0.3,
    ping_timeout=0.2,
    max_payload=1_000_000,
    max_message_size=1_000_000,
    cors_origins=("*",),
    connect_timeout=1.0,
)

CONNECT_PACE = 0.02
"""
Seconds between a namespace connection and the C{auth} event, so that the
CONNECT packet reaches the protocol suite's client in a read of its own.
"""


@attrs.define
class Pacer:
    """
    Emits events L{CONNECT_PACE} seconds late, and cancels those not yet
    sent when the site closes, so that no timer outlives a test.
    """

    clock: IReactorTime
    _pending: set[IDelayedCall] = attrs.field(factory=set)

    def emit_later(self, socket: Socket, event: str, *args: Any) -> None:
        """
        Emit C{event} on C{socket} after L{CONNECT_PACE} seconds.
        """

        def emit() -> None:
            self._pending.discard(call)
            socket.emit(event, *args)

        call = self.clock.callLater(CONNECT_PACE, emit)
        self._pending.add(call)

    def cancel(self) -> None:
        """
        Forget every event not sent yet.
        """
        pending, self._pending = self._pending, set()
        for call in pending:
            call.cancel()


def add_echo_handlers(sio: SocketIOServer, pacer: Pacer) -> None:
    """
    The handlers the socket.io-protocol test suite expects: C{/} echoes
    C{message} as C{message-back} and acknowledges C{message-with-ack} with
    its arguments; both namespaces emit C{auth} with the auth payload
    through C{pacer}, a moment after the connection.
    """
    main, custom = sio.of("/"), sio.of("/custom")

    def emit_auth(socket: Socket, auth: dict[str, Any]) -> None:
        pacer.emit_later(socket, "auth", auth)

    main.on("connect")(emit_auth)
    custom.on("connect")(emit_auth)

    @main.on("message")
    def message(socket: Socket, *args: Any) -> None:
        socket.emit("message-back", *args)

    @main.on("message-with-ack")
    def message_with_ack(socket: Socket, *args: Any) -> tuple[Any, ...]:
        return args


class _EchoProtocol(WebSocketServerProtocol):
    """
    Send every WebSocket message back as it came.
    """

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def _engine(clock: IReactorTime, settings: Settings, handler: Any) -> EngineIOServer:
    return EngineIOServer(
        clock,
        handler,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_payload=settings.max_payload,
        cors_origins=settings.cors_origins,
    )


@attrs.frozen
class ConformanceSite:
    """
    The site and the servers behind it, for tests to add handlers to.
    """

    site: Site
    sio: SocketIOServer
    engine: EngineIOServer
    echo_engine: EngineIOServer
    pacer: Pacer

    def close_all(self) -> None:
        """
        Close every session of both Engine.IO servers and forget the
        events not sent yet.
        """
        self.pacer.cancel()
        self.engine.close_all()
        self.echo_engine.close_all()


def make_site(clock: IReactorTime, settings: Settings = CONFORMANCE_SETTINGS) -> ConformanceSite:
    """
    Build the conformance site.
    """
    engine = _engine(clock, settings, None)
    sio = SocketIOServer(engine, clock, connect_timeout=settings.connect_timeout)
    pacer = Pacer(clock)
    add_echo_handlers(sio, pacer)
    echo_engine = _engine(clock, settings, EchoHandler())
    factory = WebSocketServerFactory()
    factory.protocol = _EchoProtocol
    defaults = Settings()
    apply_protocol_options(
        factory,
        attrs.evolve(
            settings, ping_interval=defaults.ping_interval, ping_timeout=defaults.ping_timeout
        ),
    )
    root = Resource()
    root.putChild(b"socket.io", EngineIOResource(engine))
    root.putChild(b"engine.io", EngineIOResource(echo_engine))
    root.putChild(b"echo", WebSocketResource(factory))
    return ConformanceSite(Site(root), sio, engine, echo_engine, pacer)


def main(reactor: Any, *argv: str) -> Deferred[None]:
    """
    Serve the conformance site until interrupted; fail at once if the port
    cannot be listened on.
    """
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--interface", default="", help="address to listen on (default: all)")
    parser.add_argument("--verbose", action="store_true", help="log to standard output")
    options = parser.parse_args(argv)
    if options.verbose:
        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    served = make_site(reactor)
    endpoint = TCP4ServerEndpoint(reactor, options.port, interface=options.interface)
    forever: Deferred[None] = Deferred()
    return endpoint.listen(served.site).addCallback(lambda _: forever)


if __name__ == "__main__":
    react(main, sys.argv[1:])
