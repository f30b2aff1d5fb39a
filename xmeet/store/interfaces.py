# -*- test-case-name: tests.test_store -*-
"""
What the room service needs from the world outside its process: somewhere
to keep rooms that have no local members, and a way to hear and tell the
other nodes of the cluster.

L{xmeet.store.memory} keeps everything in this process (one node);
L{xmeet.store.redis} mirrors to Redis and fans out through its pub/sub.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from xmeet.core.events import RoomEvent
from xmeet.core.history import History
from xmeet.core.room import Room

__all__ = ["IRoomBackend", "IRoomListener", "RemoteMember", "RoomState"]


@attrs.frozen
class RemoteMember:
    """
    A member connected to another node.
    """

    id: str
    nickname: str
    node: str


@attrs.frozen
class RoomState:
    """
    What a node needs to take a room live: whether it keeps history, its
    history, and the members connected to other nodes.
    """

    store_history: bool
    history: History | None = None
    members: Sequence[RemoteMember] = ()


class IRoomListener(Interface):
    """
    The room service, as its backend sees it.
    """

    def room_event(event: RoomEvent) -> None:
        """
        An event of another node, for a room this node has live.
        """

    def room_resync(xnest_id: str, state: RoomState) -> None:
        """
        The stored state of live room C{xnest_id} as it is now: after an
        outage, events may have been missed. Its history replaces the
        node's; its members are those of other nodes.
        """


class IRoomBackend(Interface):
    """
    Keeps rooms and tells other nodes what happens in them.
    """

    node_id = Attribute("This node's id, unique across the cluster and restarts.")
    history_budget = Attribute(
        "The L{xmeet.core.history.HistoryBudget} of every history this node keeps"
        " in memory: the room service counts its live rooms' there."
    )

    def start(listener: IRoomListener) -> None:
        """
        Deliver other nodes' events to C{listener} from now on.
        """

    def load(xnest_id: str, store_history: bool, history_size: int) -> Deferred[RoomState]:
        """
        Take room C{xnest_id} live on this node: start hearing its events
        and fetch its state. C{store_history} is used when the room is new.
        Never fails: when the shared state cannot be had, the room starts
        from what this node knows.
        """

    def unload(room: Room) -> None:
        """
        C{room} has no local member any more: stop hearing its events and
        keep what must outlive it.
        """

    def publish(event: RoomEvent, history_entry: str | None) -> None:
        """
        Store the effect of C{event} (the member lists, and
        C{history_entry} when given) and pass the event to other nodes.
        """

    def stored() -> Deferred[None]:
        """
        Fires once what this node has published so far is where every
        node reads it, so that a member's greeting can wait for its
        membership; it never fails, and when the shared state cannot be
        reached it does not wait long (the node then serves from memory).
        """

    def peek(xnest_id: str, history_size: int) -> Deferred[RoomState | None]:
        """
        The state of a room that is not live on this node, without taking
        it live; C{None} when nothing is known of it.
        """

    def stop() -> Deferred[None]:
        """
        Leave the cluster cleanly.
        """

    def status() -> dict[str, object]:
        """
        What C{/healthz} and C{/metrics} show of the backend: at least
        C{backend} (its kind) and C{connected} (whether shared state is
        reachable now).
        """
