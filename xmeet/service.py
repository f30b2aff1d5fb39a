# -*- test-case-name: tests.test_web,tests.test_admission -*-
"""
Wiring one xmeet node: the services, the resource tree, the Site and the
listening endpoint, as one C{MultiService} for twistd.
"""

from __future__ import annotations

import time
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

import xmeet
from xmeet.admission import Admission
from xmeet.config import Settings
from xmeet.core.frames import SendTimeFormatter
from xmeet.core.ids import IdGenerator, new_node_id
from xmeet.engineio import EngineIOResource, EngineIOServer
from xmeet.handlers.im_api import ConversationsResource
from xmeet.handlers.socketio_app import register_socketio_app
from xmeet.im.offline import DEFAULT_OFFLINE_USERS
from xmeet.im.service import IMService
from xmeet.rooms import RoomService
from xmeet.socketio import SocketIOServer
from xmeet.store.im_interfaces import IIMBackend, IMStoreBounds
from xmeet.store.im_memory import MemoryIMBackend
from xmeet.store.im_redis import RedisIMBackend
from xmeet.store.interfaces import IRoomBackend
from xmeet.store.memory import MemoryRoomBackend
from xmeet.store.redis import RedisRoomBackend, parse_redis_url
from xmeet.transport.send import Outbox, format_lazily
from xmeet.web import XmeetSite, build_root
from xmeet.xgate import XgateResource

__all__ = ["CannotListen", "ListeningService", "Node", "build_node", "make_service"]

log = Logger()

_BODY_SLACK = 4096
"""
Bytes of request body allowed beyond the largest message: room for the
JSON or Engine.IO framing around one message of the largest size.
"""


@attrs.define
class Node:
    """
    Everything one xmeet node is made of, for the service and for tests
    that want to look inside.
    """

    node_id: str
    settings: Settings
    rooms: RoomService
    im: IMService
    gate: XgateResource
    engine: EngineIOServer
    outbox: Outbox
    sio: SocketIOServer
    admission: Admission

    started: float = attrs.field(factory=time.monotonic)
    site: XmeetSite = attrs.field(init=False)
    """
    The node's Site, built whole once the node exists (its C{/healthz}
    and C{/metrics} report the node).
    """

    def start(self) -> None:
        """
        Start hearing other nodes, with Autobahn's debug log arguments
        formatted only when rendered.
        """
        format_lazily()
        self.rooms.start()
        self.im.start()

    def health(self) -> dict[str, Any]:
        """
        The C{/healthz} document: C{ok}, or C{degraded} while shared state
        is out of reach (the node still serves from memory).
        """
        backend = self.rooms.backend.status()
        return {
            "status": "ok" if backend["connected"] and self.im.ready else "degraded",
            "version": xmeet.__version__,
            "node": self.node_id,
            "uptime": round(time.monotonic() - self.started, 3),
            "xnests": self.rooms.active_rooms,
            "xgate_connections": self.gate.connections,
            "socketio_sessions": len(self.engine.sockets),
            "im_ready": self.im.ready,
            "backend": backend,
        }

    def numbers(self) -> dict[str, Any]:
        """
        The C{/metrics} numbers, by metric name.
        """
        backend = self.rooms.backend.status()
        return {
            "xmeet_xgate_connections": self.gate.connections,
            "xmeet_socketio_sessions": len(self.engine.sockets),
            "xmeet_xnests_live": self.rooms.active_rooms,
            "xmeet_messages_received": self.rooms.messages_received,
            "xmeet_frames_sent": self.rooms.frames_sent,
            "xmeet_redis_up": 1 if backend["connected"] else 0,
            "xmeet_redis_backlog": backend.get("backlog", 0),
            "xmeet_redis_errors": backend.get("errors", 0),
            "xmeet_redis_latency_seconds": backend.get("latency", 0.0),
            "xmeet_handshakes_refused": dict(self.admission.refused),
            "xmeet_http_request_timeouts": self.site.request_timeouts,
        }

    def stop(self) -> Deferred[None]:
        """
        Close every Socket.IO session and leave the cluster cleanly.
        """
        self.engine.close_all()
        self.outbox.stop()
        leaving = self.im.stop()
        leaving.addBoth(lambda _: self.rooms.stop())
        return leaving


def _im_backend(settings: Settings, rooms: IRoomBackend) -> IIMBackend:
    """
    The IM backend beside the rooms' one: in Redis, it shares its link.
    """
    if isinstance(rooms, RedisRoomBackend):
        bounds = IMStoreBounds(
            history_size=settings.history_size,
            history_bytes=settings.history_bytes,
            offline_limit=settings.offline_limit,
            offline_bytes=settings.offline_bytes,
            offline_users=DEFAULT_OFFLINE_USERS,
        )
        return RedisIMBackend(rooms.link, bounds)
    return MemoryIMBackend(rooms.node_id)


def _backend(reactor: Any, settings: Settings, node_id: str) -> IRoomBackend:
    if settings.redis_url is None:
        return MemoryRoomBackend(
            node_id, settings.max_idle_rooms, settings.history_bytes, settings.history_memory
        )
    formatter = SendTimeFormatter(ZoneInfo(settings.timezone))
    address = parse_redis_url(settings.redis_url)
    if settings.redis_password is not None:
        address = attrs.evolve(address, password=settings.redis_password)
    return RedisRoomBackend(
        reactor,
        reactor,
        address,
        settings.redis_prefix,
        node_id,
        settings.history_size,
        settings.node_timeout,
        lambda: formatter.format(reactor.seconds()),
        history_bytes=settings.history_bytes,
        history_memory=settings.history_memory,
    )


class NodeService(Service):
    """
    Runs a node: connects it to its backend while the service runs, and
    takes it out of the cluster cleanly when the service stops.
    """

    def __init__(self, node: Node) -> None:
        self._node = node

    def startService(self) -> None:
        """
        Start the node.
        """
        super().startService()
        self._node.start()

    def stopService(self) -> Deferred[None]:
        """
        Stop the node.
        """
        super().stopService()
        return self._node.stop()


def build_node(reactor: Any, settings: Settings, node_id: str | None = None) -> Node:
    """
    Build a node's services and its C{Site}, without listening anywhere.
    """
    node_id = node_id or new_node_id()
    ids = IdGenerator(node_id)
    backend = _backend(reactor, settings, node_id)
    rooms = RoomService(reactor, settings, ids, backend, Random())
    im = IMService(
        reactor,
        settings,
        ids,
        auth_secret=settings.auth_secret,
        offline_limit=settings.offline_limit,
        backend=_im_backend(settings, backend),
    )
    outbox = Outbox(reactor, settings.write_delay)
    admission = Admission.of(settings, reactor)
    gate = XgateResource(rooms, settings, reactor, outbox, admission)
    sio = SocketIOServer(None, reactor, connect_timeout=settings.connect_timeout)
    engine = EngineIOServer(
        reactor,
        sio,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_payload=settings.max_payload,
        cors_origins=settings.cors_origins,
        max_buffered_packets=settings.max_send_queue,
        max_buffered_bytes=settings.max_send_buffer,
        outbox=outbox,
    )
    sio.attach(engine)
    register_socketio_app(sio.of("/"), im, rooms, settings, reactor)
    max_body = max(settings.max_payload, settings.max_message_size) + _BODY_SLACK
    node = Node(
        node_id=node_id,
        settings=settings,
        rooms=rooms,
        im=im,
        gate=gate,
        engine=engine,
        outbox=outbox,
        sio=sio,
        admission=admission,
    )
    root = build_root(
        rooms,
        gate,
        EngineIOResource(engine, admission),
        ConversationsResource(im, settings.max_message_size),
        node.health,
        node.numbers,
    )
    node.site = XmeetSite(
        root,
        max_body,
        settings.access_log,
        header_timeout=settings.header_timeout,
        body_min_rate=settings.body_min_rate,
        reactor=reactor,
    )
    return node


def _address(address: Any) -> str:
    """
    C{HOST:PORT} for an IP address, the address as it prints otherwise.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return f"{address.host}:{address.port}"
    return str(address)


class CannotListen(SystemExit, Exception):
    """
    The port could not be opened while twistd was starting.

    Both kinds on purpose, for twistd's start-up: as an C{Exception} it
    takes twistd's own path for a service that fails to start (a daemon's
    parent process is told and exits with status 1, the pid file is
    removed), which then raises it again; as a C{SystemExit} it ends the
    process there with status 1 and no traceback. Its text, which the
    daemon's parent prints, says which port and why.
    """

    def __init__(self, port: str, reason: str) -> None:
        super().__init__(1)
        self.port = port
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot listen on {self.port}: {self.reason}"


class ListeningService(Service):
    """
    Serves C{factory} on an endpoint, and says so once it really listens.

    A port that cannot be opened (in use, out of range, not allowed) must
    not leave a process that runs and serves nothing, which is what
    Twisted's C{StreamServerEndpointService} does (it logs a traceback and
    goes on). twistd opens ports before its reactor runs, and the TCP, TLS
    and UNIX endpoints fail at once: the failure is one log line and
    L{CannotListen}, which stops twistd with status 1. An endpoint that
    fails later is logged the same way and stops the reactor (twistd then
    has no public way to exit with a failure status).
    """

    def __init__(
        self, reactor: Any, endpoint: IStreamServerEndpoint, description: str, factory: Any
    ) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self._description = description
        self._factory = factory
        self._port: Deferred[Any] | None = None
        self._starting = False
        self._failure: str | None = None

    def privilegedStartService(self) -> None:
        """
        Listen (twistd calls this before its reactor runs, with privileges).
        """
        super().privilegedStartService()
        self._starting = True
        self._port = self._endpoint.listen(self._factory)
        self._port.addCallbacks(self._listening, self._cannot_listen)
        self._starting = False
        if self._failure is not None:
            raise CannotListen(self._description, self._failure)

    def startService(self) -> None:
        """
        Listen, unless L{privilegedStartService} did.
        """
        super().startService()
        if self._port is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None] | None:
        """
        Stop listening, or stop trying to.
        """
        super().stopService()
        port, self._port = self._port, None
        if port is None:
            return None
        port.cancel()
        return port.addCallback(lambda listening: listening and listening.stopListening())

    def _listening(self, port: IListeningPort) -> IListeningPort:
        log.info("listening on {address}", address=_address(port.getHost()))
        return port

    def _cannot_listen(self, reason: Failure) -> None:
        if reason.check(CancelledError):
            return
        self._failure = reason.getErrorMessage()
        log.critical(
            "cannot listen on {port}: {reason}", port=self._description, reason=self._failure
        )
        if not self._starting:
            self._reactor.callWhenRunning(self._reactor.stop)


def make_service(reactor: Any, settings: Settings, port: str) -> MultiService:
    """
    The twistd service: one node listening on the endpoint description
    C{port}.
    """
    node = build_node(reactor, settings)
    log.info("xmeet node {node} starting", node=node.node_id)
    top = MultiService()
    NodeService(node).setServiceParent(top)
    ListeningService(reactor, serverFromString(reactor, port), port, node.site).setServiceParent(
        top
    )
    return top
