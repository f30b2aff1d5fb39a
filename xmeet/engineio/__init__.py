# -*- test-case-name: tests.test_engineio_e2e -*-
"""
Engine.IO server (protocol revisions 4 and 3) on Twisted and Autobahn.

Build an L{EngineIOServer} with an L{IEngineIOHandler}, mount an
L{EngineIOResource} in a twisted.web tree (C{/socket.io/} or
C{/engine.io/}): long-polling and WebSocket are then served on the site's
port, with upgrades, heartbeat, CORS and the official error answers::

    server = EngineIOServer(reactor, EchoHandler(), ping_interval=25,
                            ping_timeout=20, max_payload=1_000_000,
                            cors_origins=("*",))
    root.putChild(b"engine.io", EngineIOResource(server))

Broadcast with C{packet = server.prepare(data)} then
C{socket.send_prepared(packet)} for each socket: the packet is encoded once
per wire form, not once per socket.

One deliberate difference from the official server: a request without
C{EIO=4} (or C{EIO=3} when C{allow_eio3}) is refused with code 5, where the
official server would assume revision 3; the published test suite requires
it and every real client sends C{EIO}.
"""

from .echo import EchoHandler
from .interfaces import IEngineIOHandler
from .packets import Packet, PacketDecodeError, PacketType
from .prepared import PreparedPacket
from .resource import EngineIOResource
from .server import EngineIOServer, ErrorCode
from .socket import EngineIOSocket

__all__ = [
    "EchoHandler",
    "EngineIOResource",
    "EngineIOServer",
    "EngineIOSocket",
    "ErrorCode",
    "IEngineIOHandler",
    "Packet",
    "PacketDecodeError",
    "PacketType",
    "PreparedPacket",
]
