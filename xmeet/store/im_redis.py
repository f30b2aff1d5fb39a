# -*- test-case-name: tests.test_im_backend,tests.test_im_cluster -*-
"""
The IM backend of a cluster node: IM state stored in Redis, changes fanned
out on one pub/sub channel, over the node's shared L{RedisLink}.

Key layout, every key and channel under the configured prefix C{P}:

  - C{P im:conversations}: hash, conversation id to C{"VERSION NODE JSON"}:
    the conversation document and its version (L{Stamp}); a Lua script
    writes a version only if it was made on the stored one or a newer one,
    else answers the stored one, on which the node makes its change again
    (L{IIMListener.im_rebase}): concurrent changes on several nodes all
    end up in one version, kept by Redis and every replica; only stored
    versions are published;
  - C{P im:history:CONVERSATION}: list of message events (JSON), newest
    first, trimmed to the history size and the history bytes (each entry
    counted as its UTF-8 size plus L{ENTRY_OVERHEAD}, as in memory),
    keeping at least the newest;
  - C{P im:history-bytes:CONVERSATION}: what that list's entries cost;
  - C{P im:offline:USER}: list of C{"ID JSON"} entries, oldest first,
    trimmed to the offline limit and the offline bytes (each entry counted
    as its JSON, without the id, plus L{ENTRY_OVERHEAD}), where JSON is
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

import json
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from xmeet.core.conversation import Conversation
from xmeet.core.history import DEFAULT_HISTORY_BYTES, ENTRY_OVERHEAD
from xmeet.store.im_interfaces import (
    ConversationChanged,
    ConversationState,
    Flushed,
    IIMBackend,
    IIMListener,
    IMEvent,
    IMSnapshot,
    MessageSent,
    NodeGone,
    NodePresence,
    PresenceChanged,
    SessionChanged,
    Stamp,
)
from xmeet.store.redis_link import READ_TIMEOUT, ILinkClient, RedisLink

__all__ = ["IMEventError", "RedisIMBackend", "decode_im_event", "encode_im_event"]

log = Logger()

LOAD_TIMEOUT = 30.0
"""
Seconds a node waits for the whole stored state before giving up on this
read (a later reconnect reads again).
"""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_STORE_CONVERSATION = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local number, node = string.match(stored, '^(%d+) (%S+) ')
  if number and (tonumber(number) ~= tonumber(ARGV[2]) or node ~= ARGV[3]) then
    return stored
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""
"""
Store a version of a conversation and publish it (ARGV: id, the number
and node of the version it was made on, the stored value, the IM channel,
the event) only if it was made on the stored version; else answer the
stored one, for the change to be made again on it. A version another node
refused is never published, so no node builds on it: before, every node
applied every published version and one made on a refused version could
overwrite the version that had won, losing a change (seen as a lost
member when three nodes joined users at once).
"""

_PUSH_HISTORY = """
local entry, size, max_bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local overhead = tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 0 then
  local bytes = 0
  for _, old in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    bytes = bytes + #old + overhead
  end
  redis.call('SET', KEYS[2], bytes)
end
local length = redis.call('LPUSH', KEYS[1], entry)
local bytes = redis.call('INCRBY', KEYS[2], #entry + overhead)
while length > 1 and (length > size or bytes > max_bytes) do
  local oldest = redis.call('RPOP', KEYS[1])
  bytes = redis.call('DECRBY', KEYS[2], #oldest + overhead)
  length = length - 1
end
"""
"""
Keep a message in a conversation's history (KEYS: the history, its byte
count; ARGV: the entry, messages kept, bytes kept, L{ENTRY_OVERHEAD}),
dropping the oldest beyond either bound but never the newest. A count
lost (or written before counts existed) is counted again from the list.
"""

_QUEUED_COST = """
local function cost(entry, overhead)
  local space = string.find(entry, ' ', 1, true) or 0
  return #entry - space + overhead
end
"""
"""
What a queued C{"ID JSON"} entry costs: its JSON, without the id, plus
the overhead, as L{xmeet.core.conversation.OfflineQueue} counts it.
"""

_ENQUEUE = (
    _QUEUED_COST
    + """
local overhead = tonumber(ARGV[8])
if redis.call('EXISTS', KEYS[3]) == 0 then
  local bytes = 0
  for _, old in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    bytes = bytes + cost(old, overhead)
  end
  redis.call('SET', KEYS[3], bytes)
end
local length = redis.call('RPUSH', KEYS[2], ARGV[2])
local bytes = redis.call('INCRBY', KEYS[3], cost(ARGV[2], overhead))
while length > 1 and (length > tonumber(ARGV[3]) or bytes > tonumber(ARGV[7])) do
  local oldest = redis.call('LPOP', KEYS[2])
  bytes = redis.call('DECRBY', KEYS[3], cost(oldest, overhead))
  length = length - 1
end
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
  for _, user in ipairs(redis.call('ZRANGE', KEYS[1], 0, extra - 1)) do
    redis.call('DEL', ARGV[6] .. user, ARGV[9] .. user)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
end
"""
)
"""
Queue an entry (KEYS: the index of queues, the queue, its byte count;
ARGV: user, entry, messages per user, users, score, prefix of queue keys,
bytes per user, L{ENTRY_OVERHEAD}, prefix of byte count keys), bounded per
user in messages and in bytes (never dropping the newest) and in users.
The dropped queues' keys are built here, so this script needs a single
Redis, not Redis Cluster.
"""

_REMOVE_QUEUED = (
    _QUEUED_COST
    + """
local overhead = tonumber(ARGV[2])
local wanted = {}
for index = 3, #ARGV do wanted[ARGV[index]] = true end
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local id = string.match(entry, '^(%S+) ')
  if id and wanted[id] then
    if redis.call('LREM', KEYS[2], 1, entry) > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
      redis.call('DECRBY', KEYS[3], cost(entry, overhead))
    end
  end
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
end
"""
)
"""
Remove the entries of the given message ids from a queue (KEYS: the index
of queues, the queue, its byte count; ARGV: user, L{ENTRY_OVERHEAD}, ids),
and the emptied queue, with its count, from the index.
"""


@attrs.frozen
class _ReadAgain:
    """
    A node asks every other to read the stored state again: it wrote there
    while Redis was away from it.
    """

    node: str


class IMEventError(ValueError):
    """
    A message on the IM channel that is not an event.
    """


def _conversation_of(document: Mapping[str, Any]) -> Conversation:
    fields = dict(document)
    try:
        return Conversation(
            id=fields.pop("id"),
            name=fields.pop("name"),
            admin=tuple(fields.pop("admin")),
            members=tuple(fields.pop("members")),
            protected=tuple(fields.pop("protected")),
            created_at=fields.pop("createdAt"),
            custom=fields,
        )
    except (KeyError, TypeError) as error:
        raise IMEventError(f"not a conversation: {error}") from None


def encode_im_event(event: IMEvent) -> str:
    """
    The JSON text of C{event} on the IM channel.
    """
    fields: dict[str, Any]
    if isinstance(event, PresenceChanged):
        fields = {"kind": "presence", "user": event.user, "online": event.online}
    elif isinstance(event, SessionChanged):
        fields = {"kind": "session", "digest": event.digest, "user": event.user}
        if event.expires_at is not None:
            fields["expiresAt"] = event.expires_at
    elif isinstance(event, NodePresence):
        fields = {
            "kind": "node",
            "users": list(event.users),
            "sessions": [list(pair) for pair in event.sessions],
            "expiries": [list(pair) for pair in event.expiries],
        }
    elif isinstance(event, NodeGone):
        fields = {"kind": "gone"}
    elif isinstance(event, MessageSent):
        fields = {
            "kind": "message",
            "event": event.event,
            "data": event.data,
            "deliver": list(event.deliver),
            "queue": list(event.queue),
            "conversation": event.conversation_id,
            "again": event.again,
        }
    elif isinstance(event, Flushed):
        fields = {"kind": "flushed", "user": event.user, "ids": list(event.ids)}
    else:
        fields = {
            "kind": "conversation",
            "version": event.stamp.number,
            "conversation": event.conversation.as_json(),
            "former": list(event.former),
        }
    return _encoder.encode({"node": event.node, **fields})


def _expiry(value: object) -> int:
    """
    A session's expiry as an event or Redis holds it: epoch milliseconds.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise IMEventError(f"not a session expiry: {value!r}")
    return int(value)


def decode_im_event(text: str) -> IMEvent | _ReadAgain:
    """
    The event of a message on the IM channel, or a node's request to read
    the stored state again.

    @raise IMEventError: when C{text} is no event.
    """
    try:
        fields = json.loads(text)
        node = fields["node"]
        kind = fields["kind"]
        if kind == "presence":
            return PresenceChanged(node, fields["user"], bool(fields["online"]))
        if kind == "node":
            sessions = tuple((digest, user) for digest, user in fields["sessions"])
            expiries = tuple(
                (digest, _expiry(expires_at)) for digest, expires_at in fields.get("expiries", ())
            )
            return NodePresence(node, tuple(fields["users"]), sessions, expiries)
        if kind == "session":
            expires_at = fields.get("expiresAt")
            return SessionChanged(
                node,
                fields["digest"],
                fields["user"],
                None if expires_at is None else _expiry(expires_at),
            )
        if kind == "gone":
            return NodeGone(node)
        if kind == "message":
            return MessageSent(
                node,
                fields["event"],
                fields["data"],
                tuple(fields["deliver"]),
                tuple(fields["queue"]),
                fields["conversation"],
                bool(fields.get("again", False)),
            )
        if kind == "flushed":
            return Flushed(node, fields["user"], tuple(fields["ids"]))
        if kind == "conversation":
            return ConversationChanged(
                node,
                Stamp(int(fields["version"]), node),
                _conversation_of(fields["conversation"]),
                tuple(fields["former"]),
            )
        if kind == "resync":
            return _ReadAgain(node)
    except (TypeError, ValueError, KeyError) as error:
        raise IMEventError(f"malformed IM event: {error!r}") from None
    raise IMEventError(f"unknown IM event kind {kind!r}")


def _queued(event: str, data: Mapping[str, Any]) -> str:
    return f"{data['id']} {_encoder.encode([event, data])}"


def _stored_conversation(stamp: Stamp, conversation: Conversation) -> str:
    return f"{stamp.number} {stamp.node} {_encoder.encode(conversation.as_json())}"


def _parse_stored(value: str) -> tuple[Stamp, Conversation]:
    """
    A stored conversation and its version.

    @raise ValueError: or L{IMEventError}, for a malformed value.
    """
    number, node, text = value.split(" ", 2)
    return Stamp(int(number), node), _conversation_of(json.loads(text))


@implementer(IIMBackend, ILinkClient)
class RedisIMBackend:
    """
    IM state in Redis, shared by every node using the same Redis and
    prefix.

    @param link: the node's link to Redis, shared with the room backend.
    @param history_size: messages kept per conversation.
    @param offline_limit: messages kept per offline user.
    @param offline_users: users with a queue kept in Redis.
    @param history_bytes: bytes of messages kept per conversation.
    @param offline_bytes: bytes of messages kept per offline user.
    """

    def __init__(
        self,
        link: RedisLink,
        history_size: int,
        offline_limit: int,
        offline_users: int,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        offline_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        self.node_id = link.node_id
        self._link = link
        self._clock = link.clock
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._offline_bytes = offline_bytes
        self._offline_limit = offline_limit
        self._offline_users = offline_users
        self._score = 0
        self._channel = link.key("im")
        self._listener: IIMListener | None = None
        self._serving: Deferred[None] = Deferred()
        self._patience: IDelayedCall | None = None
        self._subscribed_on: Any = None
        self._buffer: list[IMEvent] | None = None
        self._own_during_read: list[MessageSent] = []
        self._read_again = False
        self._wrote_away = False
        self._local_users: set[str] = set()
        self._local_sessions: dict[str, str] = {}
        self._local_expiries: dict[str, int] = {}
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
        self._link.send("SADD", self._key("nodes"), self.node_id)
        presence = self._key("presence", self.node_id)
        self._link.send("DEL", presence)
        if self._local_users:
            self._link.send("SADD", presence, *sorted(self._local_users))
        sessions = self._key("sessions", self.node_id)
        expiries = self._key("expiries", self.node_id)
        self._link.send("DEL", sessions, expiries)
        for digest, user in self._local_sessions.items():
            self._link.send("HSET", sessions, digest, user)
        for digest, expires_at in self._local_expiries.items():
            self._link.send("HSET", expiries, digest, expires_at)
        gathered = NodePresence(
            self.node_id,
            tuple(sorted(self._local_users)),
            tuple(sorted(self._local_sessions.items())),
            tuple(sorted(self._local_expiries.items())),
        )
        self._link.send("PUBLISH", self._channel, encode_im_event(gathered))
        if self._wrote_away:
            self._wrote_away = False
            resync = _encoder.encode({"node": self.node_id, "kind": "resync"})
            self._link.send("PUBLISH", self._channel, resync)
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
        if isinstance(event, _ReadAgain):
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
        reading: Deferred[IMSnapshot] = self._snapshot()
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

    @inlineCallbacks
    def _snapshot(self) -> Any:
        connection = self._link.connection
        started = self._clock.seconds()
        stored, nodes, offline_users = yield gatherResults(
            [
                connection.hgetall(self._key("conversations")),
                connection.execute_command("SMEMBERS", self._key("nodes")),
                connection.execute_command("ZRANGE", self._key("offline"), 0, -1),
            ],
            consumeErrors=True,
        )
        documents = []
        for value in (stored or {}).values():
            try:
                documents.append(_parse_stored(value))
            except (ValueError, IMEventError):
                log.warn("ignoring a malformed stored conversation")
        nodes = [node for node in nodes or () if node != self.node_id]
        offline_users = offline_users or []
        replies = yield gatherResults(
            [
                *(
                    connection.lrange(
                        self._key("history", conversation.id), 0, self._history_size - 1
                    )
                    for _, conversation in documents
                ),
                *(
                    connection.lrange(self._key("offline", user), -self._offline_limit, -1)
                    for user in offline_users
                ),
                *(
                    connection.execute_command("SMEMBERS", self._key("presence", node))
                    for node in nodes
                ),
                *(connection.hgetall(self._key("sessions", node)) for node in nodes),
                *(connection.hgetall(self._key("expiries", node)) for node in nodes),
            ],
            consumeErrors=True,
        )
        histories = replies[: len(documents)]
        queues = replies[len(documents) : len(documents) + len(offline_users)]
        presences = replies[len(documents) + len(offline_users) :][: len(nodes)]
        sessions = replies[len(documents) + len(offline_users) + len(nodes) :][: len(nodes)]
        expiries = replies[len(documents) + len(offline_users) + 2 * len(nodes) :]
        self._link.latency = self._clock.seconds() - started
        return IMSnapshot(
            conversations=[
                ConversationState(stamp, conversation, _entries(history))
                for (stamp, conversation), history in zip(documents, histories, strict=True)
            ],
            offline={
                user: _queue(entries)
                for user, entries in zip(offline_users, queues, strict=True)
                if entries
            },
            presence={
                node: tuple(sorted(users or ()))
                for node, users in zip(nodes, presences, strict=True)
            },
            sessions={node: dict(found or {}) for node, found in zip(nodes, sessions, strict=True)},
            expiries={
                node: _stored_expiries(found) for node, found in zip(nodes, expiries, strict=True)
            },
        )

    def publish(self, event: IMEvent) -> None:
        """
        Store the effect of C{event} and publish it on the IM channel, in
        order, without waiting for Redis; a conversation change is
        published by the script that stores it, only if it was made on the
        stored version.
        """
        if not self._link.connected:
            self._wrote_away = True
        send = self._link.send
        if isinstance(event, PresenceChanged):
            presence = self._key("presence", self.node_id)
            if event.online:
                self._local_users.add(event.user)
                send("SADD", presence, event.user)
                send("SADD", self._key("nodes"), self.node_id)
            else:
                self._local_users.discard(event.user)
                send("SREM", presence, event.user)
        elif isinstance(event, SessionChanged):
            self._publish_session(event)
        elif isinstance(event, MessageSent):
            if self._buffer is not None and (event.queue or event.conversation_id):
                self._own_during_read.append(event)
            if event.conversation_id is not None:
                send(
                    "EVAL",
                    _PUSH_HISTORY,
                    2,
                    self._key("history", event.conversation_id),
                    self._key("history-bytes", event.conversation_id),
                    _encoder.encode(event.data),
                    self._history_size,
                    self._history_bytes,
                    ENTRY_OVERHEAD,
                )
            entry = _queued(event.event, event.data)
            for user in event.queue:
                self._score = max(int(self._clock.seconds() * 1000), self._score + 1)
                send(
                    "EVAL",
                    _ENQUEUE,
                    3,
                    self._key("offline"),
                    self._key("offline", user),
                    self._key("offline-bytes", user),
                    user,
                    entry,
                    self._offline_limit,
                    self._offline_users,
                    self._score,
                    self._key("offline", ""),
                    self._offline_bytes,
                    ENTRY_OVERHEAD,
                    self._key("offline-bytes", ""),
                )
        elif isinstance(event, Flushed):
            send(
                "EVAL",
                _REMOVE_QUEUED,
                3,
                self._key("offline"),
                self._key("offline", event.user),
                self._key("offline-bytes", event.user),
                event.user,
                ENTRY_OVERHEAD,
                *event.ids,
            )
        elif isinstance(event, ConversationChanged):
            base = event.base or Stamp(0, "")
            storing = self._link.call(
                "EVAL",
                _STORE_CONVERSATION,
                1,
                self._key("conversations"),
                event.conversation.id,
                base.number,
                base.node,
                _stored_conversation(event.stamp, event.conversation),
                self._channel,
                encode_im_event(event),
            )
            storing.addCallback(self._stored, event)
            return
        send("PUBLISH", self._channel, encode_im_event(event))

    def _stored(self, reply: object, change: ConversationChanged) -> None:
        """
        A newer version was stored first: have the change made again on it.
        """
        if not isinstance(reply, str) or self._listener is None:
            return
        try:
            stamp, conversation = _parse_stored(reply)
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
                    self._remove(node)
                    if self._listener is not None:
                        self._listener.im_event(NodeGone(node))
        except Exception:
            self._link.failed(Failure(), "search for dead IM nodes")

    def _publish_session(self, event: SessionChanged) -> None:
        """
        Store a session of this node that began, was refreshed or ended.
        """
        send = self._link.send
        sessions = self._key("sessions", self.node_id)
        expiries = self._key("expiries", self.node_id)
        if event.user is None:
            self._local_sessions.pop(event.digest, None)
            self._local_expiries.pop(event.digest, None)
            send("HDEL", sessions, event.digest)
            send("HDEL", expiries, event.digest)
            return
        self._local_sessions[event.digest] = event.user
        send("HSET", sessions, event.digest, event.user)
        if event.expires_at is not None:
            self._local_expiries[event.digest] = event.expires_at
            send("HSET", expiries, event.digest, event.expires_at)

    def _remove(self, node: str) -> Deferred[Any] | None:
        self._link.send(
            "DEL",
            self._key("presence", node),
            self._key("sessions", node),
            self._key("expiries", node),
        )
        self._link.send("SREM", self._key("nodes"), node)
        return self._link.send("PUBLISH", self._channel, encode_im_event(NodeGone(node)))

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
            removed = self._remove(self.node_id)
            if removed is not None:
                removed.addTimeout(READ_TIMEOUT, self._clock)
                try:
                    yield removed
                except Exception:
                    self._link.failed(Failure(), "removing this node's IM users")


def _stored_expiries(stored: Any) -> dict[str, int]:
    """
    A node's stored session expiries; malformed entries skipped.
    """
    expiries = {}
    for digest, value in (stored or {}).items():
        try:
            expiries[digest] = _expiry(value)
        except (IMEventError, ValueError):
            continue
    return expiries


def _entries(history: Any) -> list[dict[str, Any]]:
    """
    A stored history, oldest first; malformed entries skipped.
    """
    entries = []
    for text in reversed(history or ()):
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry:
            entries.append(entry)
    return entries


def _queue(stored: Any) -> list[tuple[str, dict[str, Any]]]:
    """
    A stored offline queue, oldest first; malformed entries skipped.
    """
    queue = []
    for text in stored or ():
        try:
            event, data = json.loads(text.split(" ", 1)[1])
        except (ValueError, IndexError):
            continue
        if isinstance(event, str) and isinstance(data, dict) and "id" in data:
            queue.append((event, data))
    return queue
