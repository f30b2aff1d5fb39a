# -*- test-case-name: tests.test_store,tests.test_cluster -*-
"""
Removing the members of dead nodes, for the Redis room backend
(L{xmeet.store.redis}): a node that stops without saying so (killed,
partitioned) leaves its members in Redis; the nodes still alive notice its
heartbeat expire, and one of them, holding a lock, removes those members
and tells every room's listeners that they left. Apart from the backend
because it runs on its own timer and touches rooms the node may not hear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmeet.core.events import RoomEvent, encode_event
from xmeet.store.redis_link import RedisLink
from xmeet.store.room_layout import remote_members
from xmeet.store.room_writer import RoomWriter

__all__ = ["NodeReaper"]

log = Logger()


class NodeReaper:
    """
    Looks for dead nodes every half node timeout and removes their members.

    @param now_text: the current C{send_time}, for the C{leave} events of
        members of dead nodes.
    @param node_timeout: seconds of silence after which a node is dead.
    """

    def __init__(
        self,
        clock: IReactorTime,
        link: RedisLink,
        writer: RoomWriter,
        node_id: str,
        node_timeout: float,
        now_text: Callable[[], str],
    ) -> None:
        self._link = link
        self._writer = writer
        self._node_id = node_id
        self._node_timeout = node_timeout
        self._now_text = now_text
        self._looking = LoopingCall(self._reap)
        self._looking.clock = clock

    def start(self) -> None:
        """
        Look for dead nodes from now on.
        """
        self._looking.start(self._node_timeout / 2, now=False)

    def stop(self) -> None:
        """
        Look no more.
        """
        if self._looking.running:
            self._looking.stop()

    @inlineCallbacks
    def _reap(self) -> Any:
        """
        Remove the members of nodes whose heartbeat expired; a lock makes
        one node do it.
        """
        if self._link.connection is None:
            return
        try:
            nodes = yield self._link.connection.execute_command("SMEMBERS", self._link.key("nodes"))
            for node in nodes or ():
                if node == self._node_id:
                    continue
                alive = yield self._link.connection.execute_command(
                    "EXISTS", self._link.key("node", node, "alive")
                )
                if alive:
                    continue
                reaper = self._link.key("node", node, "reaper")
                timeout_ms = int(self._node_timeout * 1000)
                claimed = yield self._link.connection.execute_command(
                    "SET", reaper, self._node_id, "NX", "PX", timeout_ms
                )
                if claimed:
                    log.info("node {node} is silent: removing its members", node=node)
                    yield self.remove_node(node)
        except Exception:
            self._link.failed(Failure(), "search for dead nodes")

    @inlineCallbacks
    def remove_node(self, node: str) -> Any:
        """
        Remove a node's members from every room it had members in, telling
        each room that they left, then the node itself.
        """
        key = self._link.key
        xnests = yield self._link.connection.execute_command(
            "SMEMBERS", key("node", node, "xnests")
        )
        for xnest_id in xnests or ():
            fields = yield self._link.connection.hgetall(key("xnest", xnest_id, "members"))
            for member in remote_members(fields):
                if member.node != node:
                    continue
                self._writer.remove_member(xnest_id, member.id)
                event = RoomEvent(
                    "leave", node, xnest_id, member.id, member.nickname, self._now_text()
                )
                self._writer.send("PUBLISH", self._writer.channel(xnest_id), encode_event(event))
        self._writer.send("DEL", key("node", node, "xnests"), key("node", node, "alive"))
        yield self._link.connection.execute_command("SREM", key("nodes"), node)
