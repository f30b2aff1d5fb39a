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
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import react
from twisted.web.resource import Resource
from twisted.web.server import Site

from xmeet.config import Settings
from xmeet.engineio import EchoHandler, EngineIOResource, EngineIOServer
from xmeet.socketio import Socket, SocketIOServer
from xmeet.xgate import apply_protocol_options

__all__ = ["CONFORMANCE_SETTINGS", "ConformanceSite", "add_echo_handlers", "make_site"]

CONFORMANCE_SETTINGS = Settings(
    ping_interval=0.3,
    ping_timeout=0.2,
    max_payload=1_000_000,
    max_message_size=1_000_000,
    cors_origins=("*",),
    connect_timeout=1.0,
)


def add_echo_handlers(sio: SocketIOServer) -> None:
    """
    The handlers the socket.io-protocol test suite expects: C{/} echoes
    C{message} as C{message-back} and acknowledges C{message-with-ack} with
    its arguments; both namespaces emit C{auth} with the auth payload on
    connection.
    """
    main, custom = sio.of("/"), sio.of("/custom")

    def emit_auth(socket: Socket, auth: dict[str, Any]) -> None:
        socket.emit("auth", auth)

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


def make_site(clock: IReactorTime, settings: Settings = CONFORMANCE_SETTINGS) -> ConformanceSite:
    """
    Build the conformance site.
    """
    engine = _engine(clock, settings, None)
    sio = SocketIOServer(engine, clock, connect_timeout=settings.connect_timeout)
    add_echo_handlers(sio)
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
    return ConformanceSite(Site(root), sio, engine, echo_engine)


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
