# -*- test-case-name: tests.test_engineio_e2e -*-
"""
Engine.IO server (protocol revisions 4 and 3) on Twisted and Autobahn.

Build an L{EngineIOServer} with an L{IEngineIOHandler}, mount an
L{EngineIOResource} in a twisted.web tree (C{/socket.io/} or
C{/engine.io/}): long-polling and WebSocket are then served on the site's
port, with upgrades, heartbeat, CORS and the official error answers.
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
