# -*- test-case-name: tests.test_im_backend,tests.test_im_cluster -*-
"""
The IM backend of a cluster node: IM state stored in Redis, changes fanned
out on one pub/sub channel, over the node's shared L{RedisLink}.

Key layout, every key and channel under the configured prefix C{P}:

  - C{P im:conversations}: hash, conversation id to C{"VERSION NODE JSON"}:
    the conversation document and its version (L{xmeet.store.im_interfaces.Stamp}); a Lua script
    writes a version only if it was made on the stored one or a newer one,
    else answers the stored one, on which the node makes its change again
    (L{xmeet.store.im_interfaces.IIMListener.im_rebase}): concurrent changes on several nodes all
    end up in one version, kept by Redis and every replica; only stored
    versions are published;
  - C{P im:history:CONVERSATION}: list of message events (JSON), newest
    first, trimmed to the history size and the history bytes (each entry
    counted as its UTF-8 size plus L{xmeet.core.history.ENTRY_OVERHEAD}, as in memory),
    keeping at least the newest;
  - C{P im:history-bytes:CONVERSATION}: what that list's entries cost;
  - C{P im:offline:USER}: list of C{"ID JSON"} entries, oldest first,
    trimmed to the offline limit and the offline bytes (each entry counted
    as its JSON, without the id, plus L{xmeet.core.history.ENTRY_OVERHEAD}), where JSON is
    C{[event, data]};
  - C{P im:offline-bytes:USER}: what that queue's entries cost;
  - C{P im:offline}: sorted set of the users with a queue, scored by the
    time of their last queued message (epoch milliseconds, made strictly
    increasing by each node); beyond the
    offline users limit, the queues written to least recently are deleted,
    so messages to invented user ids cannot fill Redis;
  - C{P im:presence:NODE}: set of users with a logged-in socket on NODE;
  - C{P im:sessions:NODE}: hash, SHA-256 (hex) of a session token of NODE
    to its user: any node accepts the token on the HTTP API, and no token
    is stored;
  - C{P im:expiries:NODE}: hash, the same digests (of JWT logins' sessions
    only) to when the session ends, in epoch milliseconds: no node accepts
    the token after it, even should the session's node not have told yet;
  - C{P im:nodes}: set of nodes that may have users online;
  - C{P im:reaper:NODE}: who is removing a dead NODE's users;
  - channel C{P im}: every change, as JSON with the node that made it.

A node loads the replica (conversations, histories, offline queues,
presence) once subscribed, so that nothing published meanwhile is missed;
events heard while it reads are applied after, those already read
skipped. After an outage it reads again, and tells the others to read
again when it wrote while Redis was away.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from xmeet.store.im_codec import IMEventError, ReadAgain, decode_im_event, parse_stored
from xmeet.store.im_interfaces import (
    ConversationChanged,
    ConversationState,
    IIMBackend,
    IIMListener,
    IMEvent,
    IMSnapshot,
    IMStoreBounds,
    MessageSent,
    NodeGone,
)
from xmeet.store.im_snapshot import read_snapshot
from xmeet.store.im_writer import IMWriter
from xmeet.store.redis_link import READ_TIMEOUT, ILinkClient, RedisLink

__all__ = ["RedisIMBackend"]

log = Logger()

LOAD_TIMEOUT = 30.0
"""
Seconds a node waits for the whole stored state before giving up on this
read (a later reconnect reads again).
"""


@implementer(IIMBackend, ILinkClient)
class RedisIMBackend:
    """
    IM state in Redis, shared by every node using the same Redis and
    prefix.

    @param link: the node's link to Redis, shared with the room backend.
    @param bounds: what is kept at most.
    """

    def __init__(self, link: RedisLink, bounds: IMStoreBounds) -> None:
        self.node_id = link.node_id
        self._link = link
        self._clock = link.clock
        self._bounds = bounds
        self._writer = IMWriter(link, bounds)
        self._channel = link.key("im")
        self._listener: IIMListener | None = None
        self._serving: Deferred[None] = Deferred()
        self._patience: IDelayedCall | None = None
        self._subscribed_on: Any = None
        self._buffer: list[IMEvent] | None = None
        self._own_during_read: list[MessageSent] = []
        self._read_again = False
        self._reaper = LoopingCall(self._reap)
        self._reaper.clock = self._clock

    @property
    def connected(self) -> bool:
        """
        Whether the other nodes hear this one: commands reach Redis and the
        IM channel is subscribed.
        """
        return self._link.fully_connected and self._subscribed_on is self._link.subscriber

    def _key(self, *parts: str) -> str:
        return self._link.key("im", *parts)

    def start(self, listener: IIMListener) -> Deferred[None]:
        """
        Hear the IM channel and load the stored state; the node serves once
        it is loaded, or after L{READ_TIMEOUT} without Redis (it loads the
        state when Redis answers), or when reading it failed.
        """
        self._listener = listener
        self._patience = self._clock.callLater(READ_TIMEOUT, self._impatient)
        self._link.attach(self)
        self._link.start()
        self._reaper.start(self._link.node_timeout / 2, now=False)
        return self._serving

    def _impatient(self) -> None:
        """
        Redis did not answer in time: serve from memory, unless the state is
        being read (that read ends within L{LOAD_TIMEOUT}).
        """
        self._patience = None
        if self._buffer is None:
            log.warn("Redis is away: serving IM from memory until it returns")
            self._serve()

    def _serve(self) -> None:
        if self._patience is not None and self._patience.active():
            self._patience.cancel()
        self._patience = None
        if not self._serving.called:
            self._serving.callback(None)

    def link_up(self) -> None:
        """
        Register this node's users again (a node that was silent too long
        was removed by the others), ask the others to read again what this
        node wrote while away, and read the state again.
        """
        self._writer.register()
        self._read()

    def subscriber_up(self, subscriber: Any) -> None:
        """
        Subscribe to the IM channel, then read the state: what was
        published while the subscriber was away is in it.
        """
        subscribing: Deferred[Any] = subscriber.subscribe(self._channel)
        subscribing.addCallback(self._subscribed, subscriber)
        subscribing.addErrback(self._link.failed, "subscribe to the IM channel")

    def _subscribed(self, ignored: object, subscriber: Any) -> None:
        self._subscribed_on = subscriber
        self._read()

    def channel_message(self, channel: str, message: str) -> None:
        """
        An event of another node on the IM channel: applied now, or after
        the state being read.
        """
        if channel != self._channel or self._listener is None:
            return
        try:
            event = decode_im_event(message)
        except IMEventError as error:
            log.warn("ignoring a malformed IM event: {error}", error=error)
            return
        if event.node == self.node_id:
            return
        if isinstance(event, ReadAgain):
            self._read()
        elif self._buffer is not None:
            self._buffer.append(event)
        else:
            self._listener.im_event(event)

    def _read(self) -> None:
        """
        Read the stored state, once connected and subscribed; a read asked
        for during another one happens after it.
        """
        if not self.connected:
            return
        if self._buffer is not None:
            self._read_again = True
            return
        self._buffer = []
        reading: Deferred[IMSnapshot] = read_snapshot(
            self._link, self._bounds.history_size, self._bounds.offline_limit
        )
        reading.addTimeout(LOAD_TIMEOUT, self._clock)
        reading.addCallbacks(self._loaded, self._load_failed)

    def _loaded(self, snapshot: IMSnapshot) -> None:
        """
        Apply the state read, then the events heard meanwhile: a message
        the state holds already is only pushed, not stored again. This
        node's own messages of that time are stored in the replica again if
        the state missed them.
        """
        buffered, self._buffer = self._buffer or [], None
        own, self._own_during_read = self._own_during_read, []
        known = {entry["id"] for state in snapshot.conversations for entry in state.history}
        known.update(data["id"] for queue in snapshot.offline.values() for _, data in queue)
        assert self._listener is not None
        self._listener.im_snapshot(snapshot)
        log.info(
            "IM state loaded: {conversations} conversations, {queues} offline queues",
            conversations=len(snapshot.conversations),
            queues=len(snapshot.offline),
        )
        restored = {state.conversation.id for state in snapshot.conversations}
        for message in own:
            if message.data["id"] not in known:
                if message.conversation_id not in restored:
                    message = attrs.evolve(message, conversation_id=None)
                self._listener.im_event(attrs.evolve(message, deliver=()))
        for event in buffered:
            if isinstance(event, MessageSent) and event.data.get("id") in known:
                event = attrs.evolve(event, queue=(), conversation_id=None)
            self._listener.im_event(event)
        self._serve()
        if self._read_again:
            self._read_again = False
            self._read()

    def _load_failed(self, failure: Failure) -> None:
        buffered, self._buffer = self._buffer or [], None
        self._own_during_read = []
        self._link.failed(failure, "read of the IM state")
        assert self._listener is not None
        for event in buffered:
            self._listener.im_event(event)
        self._serve()
        if self._read_again:
            self._read_again = False
            self._read()

    def publish(self, event: IMEvent) -> None:
        """
        Store the effect of C{event} and publish it on the IM channel, in
        order, without waiting for Redis; a conversation change is
        published by the script that stores it, only if it was made on the
        stored version.
        """
        if (
            isinstance(event, MessageSent)
            and self._buffer is not None
            and (event.queue or event.conversation_id)
        ):
            self._own_during_read.append(event)
        storing = self._writer.write(event)
        if isinstance(event, ConversationChanged) and storing is not None:
            storing.addCallback(self._stored, event)

    def _stored(self, reply: object, change: ConversationChanged) -> None:
        """
        A newer version was stored first: have the change made again on it.
        """
        if not isinstance(reply, str) or self._listener is None:
            return
        try:
            stamp, conversation = parse_stored(reply)
        except (ValueError, IMEventError):
            log.warn("ignoring a malformed stored conversation")
            return
        self._listener.im_rebase(change, ConversationState(stamp, conversation))

    @inlineCallbacks
    def _reap(self) -> Any:
        """
        Take the users of nodes whose heartbeat expired offline, on every
        node; a lock makes one node do it.
        """
        connection = self._link.connection
        if connection is None:
            return
        try:
            nodes = yield connection.execute_command("SMEMBERS", self._key("nodes"))
            for node in nodes or ():
                if node == self.node_id:
                    continue
                alive = yield connection.execute_command(
                    "EXISTS", self._link.key("node", node, "alive")
                )
                if alive:
                    continue
                timeout_ms = int(self._link.node_timeout * 1000)
                claimed = yield connection.execute_command(
                    "SET", self._key("reaper", node), self.node_id, "NX", "PX", timeout_ms
                )
                if claimed:
                    log.info("node {node} is silent: its IM users are offline", node=node)
                    self._writer.remove_node(node)
                    if self._listener is not None:
                        self._listener.im_event(NodeGone(node))
        except Exception:
            self._link.failed(Failure(), "search for dead IM nodes")

    @inlineCallbacks
    def stop(self) -> Any:
        """
        Take this node's users offline on the others, waiting a bounded
        time for Redis to take note.
        """
        if self._reaper.running:
            self._reaper.stop()
        if self._patience is not None and self._patience.active():
            self._patience.cancel()
        if self._link.connected:
            removed = self._writer.remove_node(self.node_id)
            if removed is not None:
                removed.addTimeout(READ_TIMEOUT, self._clock)
                try:
                    yield removed
                except Exception:
                    self._link.failed(Failure(), "removing this node's IM users")
