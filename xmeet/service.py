# -*- test-case-name: tests.test_service -*-
"""
Wiring one xmeet node: the services, the resource tree, the Site and the
listening endpoint, as one C{MultiService} for twistd.
"""

from __future__ import annotations

from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from xmeet.config import Settings
from xmeet.core.frames import SendTimeFormatter
from xmeet.core.ids import IdGenerator, new_node_id
from xmeet.rooms import RoomService
from xmeet.store.interfaces import IRoomBackend
from xmeet.store.memory import MemoryRoomBackend
from xmeet.store.redis import RedisRoomBackend, parse_redis_url
from xmeet.web import XmeetSite, build_root
from xmeet.xgate import XgateResource

__all__ = ["Node", "build_node", "make_service"]

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
    gate: XgateResource
    site: XmeetSite


def _backend(reactor: Any, settings: Settings, node_id: str) -> IRoomBackend:
    if settings.redis_url is None:
        return MemoryRoomBackend(node_id, settings.max_idle_rooms)
    formatter = SendTimeFormatter(ZoneInfo(settings.timezone))
    return RedisRoomBackend(
        reactor,
        reactor,
        parse_redis_url(settings.redis_url),
        settings.redis_prefix,
        node_id,
        settings.history_size,
        settings.node_timeout,
        lambda: formatter.format(reactor.seconds()),
    )


class RoomsService(Service):
    """
    Connects the room service to its backend while the node runs, and
    leaves the cluster cleanly when it stops.
    """

    def __init__(self, rooms: RoomService) -> None:
        self._rooms = rooms

    def startService(self) -> None:
        """
        Start hearing other nodes.
        """
        super().startService()
        self._rooms.start()

    def stopService(self) -> Deferred[None]:
        """
        Remove this node's members from the cluster.
        """
        super().stopService()
        return self._rooms.stop()


def build_node(reactor: Any, settings: Settings, node_id: str | None = None) -> Node:
    """
    Build a node's services and its C{Site}, without listening anywhere.
    """
    node_id = node_id or new_node_id()
    rooms = RoomService(
        reactor, settings, IdGenerator(node_id), _backend(reactor, settings, node_id)
    )
    gate = XgateResource(rooms, settings, reactor, Random())
    max_body = max(settings.max_payload, settings.max_message_size) + _BODY_SLACK
    site = XmeetSite(build_root(node_id, rooms, gate), max_body)
    return Node(node_id=node_id, settings=settings, rooms=rooms, gate=gate, site=site)


def make_service(reactor: Any, settings: Settings, port: str) -> MultiService:
    """
    The twistd service: one node listening on the endpoint description
    C{port}.
    """
    node = build_node(reactor, settings)
    log.info("xmeet node {node} listening on {port}", node=node.node_id, port=port)
    top = MultiService()
    RoomsService(node.rooms).setServiceParent(top)
    listener = StreamServerEndpointService(serverFromString(reactor, port), node.site)
    listener.setServiceParent(top)
    return top
