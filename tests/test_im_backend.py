"""
One behaviour, two IM backends: L{MemoryIMBackend} for a node on its own
and L{RedisIMBackend} against the real Redis on 127.0.0.1:6379 (with a key
prefix of the test's own, removed afterwards); then, for Redis, several
L{IMService} nodes in this process sharing one prefix: presence, messages,
conversations, offline queues and the stored state across nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import txredisapi
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.cluster_support import RedisServer, redis_cleanup, unique_prefix
from tests.test_im import FakeClient, WireService, wire
from tests.xgate_client import wait_until
from xmeet.config import Settings
from xmeet.core.conversation import Conversation
from xmeet.core.history import entry_size
from xmeet.core.ids import IdGenerator, new_node_id
from xmeet.core.im import IMError
from xmeet.im.service import IMService
from xmeet.store.im_interfaces import (
    ConversationChanged,
    ConversationState,
    IIMBackend,
    IIMListener,
    IMEvent,
    IMSnapshot,
    IMStoreBounds,
    NodeGone,
    Stamp,
)
from xmeet.store.im_memory import MemoryIMBackend
from xmeet.store.im_redis import RedisIMBackend
from xmeet.store.redis_link import READ_TIMEOUT, RedisAddress, RedisLink

__all__ = ["MemoryIMBackendTests", "RedisIMBackendTests", "SnapshotTests"]

SETTINGS = Settings(rate=1000, burst=1000, history_size=5)


class Device:
    """
    A user logged in on a service, through a fake socket.
    """

    def __init__(self, service: WireService, user: str, socket_id: str) -> None:
        self.service = service
        self.client = FakeClient(socket_id)
        ack = service.log_in(self.client, {"userId": user, "socketId": socket_id})
        service.flush_offline(self.client)
        self.token = ack["sessionToken"]

    def call(self, method: str, **fields: Any) -> dict[str, Any]:
        """
        Call C{method} of the service with this device's token.
        """
        result: dict[str, Any] = getattr(self.service, method)(
            self.client, {"sessionToken": self.token, **fields}
        )
        return result

    def direct(self, text: str, *targets: str) -> dict[str, Any]:
        """
        Send C{text} to C{targets}.
        """
        return self.call("direct_message", targetIds=list(targets), type="t", textContent=text)

    def texts(self) -> list[str]:
        """
        The texts of the direct messages received so far.
        """
        return [
            data["textContent"] for name, data in self.client.events if name == "message/direct"
        ]

    def events(self, name: str) -> list[dict[str, Any]]:
        """
        The data of the C{name} events received so far.
        """
        return [data for event, data in self.client.events if event == name]


def im_backend(link: RedisLink, settings: Settings = SETTINGS) -> RedisIMBackend:
    """
    The Redis IM backend these tests use on C{link}: small offline bounds.
    """
    bounds = IMStoreBounds(
        history_size=settings.history_size,
        history_bytes=settings.history_bytes,
        offline_limit=3,
        offline_bytes=settings.offline_bytes,
        offline_users=2,
    )
    return RedisIMBackend(link, bounds)


class RecordingListener:
    """
    What a backend tells its node: the other nodes' conversation versions
    (by name) and the refused changes with the stored versions they met.
    """

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.rebases: list[tuple[str, str]] = []

    def im_event(self, event: IMEvent) -> None:
        if isinstance(event, ConversationChanged):
            self.versions.append(event.conversation.name)

    def im_rebase(self, change: ConversationChanged, stored: ConversationState) -> None:
        self.rebases.append((change.conversation.name, stored.conversation.name))

    def im_snapshot(self, snapshot: IMSnapshot) -> None:
        pass


class IMBackendBehaviour:
    """
    What every IM backend does for a node on its own; mixed into a
    C{TestCase} that says how to make a started service.
    """

    def make_service(self) -> Deferred[WireService]:
        """
        A started service over a new backend, ready to serve.
        """
        raise NotImplementedError

    @defer.inlineCallbacks
    def test_interfaces(self) -> Any:
        """
        The backend provides L{IIMBackend}, the service's cluster L{IIMListener}.
        """
        service = yield self.make_service()
        verifyObject(IIMBackend, service._backend)
        verifyObject(IIMListener, service.cluster)

    @defer.inlineCallbacks
    def test_one_node(self) -> Any:
        """
        On its own, a node over the backend delivers, queues and keeps
        conversations as in memory.
        """
        service = yield self.make_service()
        ann = Device(service, "ann", "a1")
        bob = Device(service, "bob", "b1")
        ack = ann.direct("hello", "bob", "cid")
        assert (ack["body"]["online"], ack["body"]["offline"]) == (["bob"], ["cid"])
        assert bob.texts() == ["hello"]
        assert service.queued("cid") == 1
        cid = Device(service, "cid", "c1")
        assert cid.texts() == ["hello"]
        assert service.queued("cid") == 0
        added = ann.call("conversation_add", name="n", members=["bob"])
        conversation_id = added["body"]["id"]
        for number in range(7):
            ann.call(
                "conversation_message", conversationId=conversation_id, type="t", content=number
            )
        history = bob.call("conversation_history", conversationId=conversation_id)
        assert [m["content"] for m in history["body"]["messages"]] == [6, 5, 4, 3, 2]
        assert len(bob.events("message/conversation")) == 7

    @defer.inlineCallbacks
    def test_stop(self) -> Any:
        """
        Stopping the service leaves the cluster and fires.
        """
        service = yield self.make_service()
        Device(service, "ann", "a1")
        result = yield service.stop()
        assert result is None


class MemoryIMBackendTests(IMBackendBehaviour, TestCase):
    """
    The in-memory backend.
    """

    def make_service(self) -> Deferred[WireService]:
        service = wire(
            IMService(
                reactor, SETTINGS, IdGenerator("memorynode"), backend=MemoryIMBackend("memorynode")
            )
        )
        return service.start().addCallback(lambda _: service)


class RedisIMBackendTests(IMBackendBehaviour, TestCase):
    """
    The Redis backend, alone and as several nodes of one cluster.
    """

    timeout = 30

    def setUp(self) -> None:
        self.prefix = unique_prefix()
        redis_cleanup(self, self.prefix)

    def local_link(self, node_id: str, node_timeout: float = 1.0) -> RedisLink:
        """
        A link of node C{node_id} to the Redis on 127.0.0.1, under this
        test's prefix.
        """
        return RedisLink(
            reactor, reactor, RedisAddress("127.0.0.1"), self.prefix, node_id, node_timeout
        )

    def start_node(
        self, node_timeout: float = 1.0, settings: Settings = SETTINGS
    ) -> tuple[WireService, RedisLink]:
        """
        A service on a node of its own id, started; its calls may be
        refused while it loads.
        """
        node_id = new_node_id()
        link = self.local_link(node_id, node_timeout)
        backend = im_backend(link, settings)
        service = wire(
            IMService(
                reactor,
                settings,
                IdGenerator(node_id),
                offline_limit=3,
                offline_users=2,
                backend=backend,
            )
        )
        self.started = service.start()
        self.addCleanup(link.stop)
        self.addCleanup(service.stop)
        return service, link

    def make_service(self) -> Deferred[WireService]:
        service, _ = self.start_node()
        return self.started.addCallback(lambda _: service)

    @defer.inlineCallbacks
    def nodes(self, count: int, node_timeout: float = 1.0, settings: Settings = SETTINGS) -> Any:
        services = []
        for _ in range(count):
            service, _ = self.start_node(node_timeout, settings)
            yield self.started
            services.append(service)
        return services

    @defer.inlineCallbacks
    def test_refused_while_loading(self) -> Any:
        """
        Until the stored state is loaded, calls get 503; then they work.
        """
        service, _ = self.start_node()
        client = FakeClient("s1")
        with self.assertRaises(IMError) as raised:
            service.log_in(client, {"userId": "ann", "socketId": "s1"})
        self.assertEqual(raised.exception.status_code, 503)
        yield self.started
        self.assertEqual(
            service.log_in(client, {"userId": "ann", "socketId": "s1"})["userId"], "ann"
        )

    @defer.inlineCallbacks
    def test_redis_away_at_start(self) -> Any:
        """
        Without Redis, the node serves from memory after L{READ_TIMEOUT};
        what it did meanwhile reaches Redis once Redis answers.
        """
        redis = RedisServer(self)
        clock = Clock()
        link = RedisLink(
            clock, reactor, RedisAddress("127.0.0.1", redis.port), self.prefix, "awaynode00", 1.0
        )
        service = wire(
            IMService(
                clock,
                SETTINGS,
                IdGenerator("awaynode00"),
                backend=im_backend(link),
            )
        )
        starting = service.start()
        self.addCleanup(link.stop)
        self.addCleanup(service.stop)
        self.assertNoResult(starting)
        clock.advance(READ_TIMEOUT)
        self.successResultOf(starting)
        ann = Device(service, "ann", "a1")
        conversation_id = ann.call("conversation_add", name="away")["body"]["id"]
        self.assertGreater(link.backlog, 0)
        yield redis.start()
        yield wait_until(lambda: link.connected and link.backlog == 0, timeout=10)
        connection = yield txredisapi.Connection("127.0.0.1", redis.port, reconnect=False)
        stored = yield connection.hget(f"{self.prefix}im:conversations", conversation_id)
        yield connection.disconnect()
        self.assertIn('"name":"away"', stored)

    @defer.inlineCallbacks
    def test_across_nodes(self) -> Any:
        """
        A user's devices on two nodes both get a direct message from a
        third, once; a conversation of one node is used on another; the
        online/offline split is cluster-wide.
        """
        one, two, three = yield self.nodes(3)
        ann = Device(one, "ann", "a1")
        bob_two = Device(two, "bob", "b2")
        bob_three = Device(three, "bob", "b3")
        yield wait_until(lambda: one.is_reachable("bob"))
        ack = ann.direct("hi", "bob", "cid")
        self.assertEqual((ack["body"]["online"], ack["body"]["offline"]), (["bob"], ["cid"]))
        yield wait_until(lambda: bob_two.texts() == ["hi"] and bob_three.texts() == ["hi"])

        added = ann.call("conversation_add", name="n", members=["bob", "cid"])
        conversation_id = added["body"]["id"]
        yield wait_until(lambda: len(bob_two.events("conversation/updated")) == 1)
        dan = Device(three, "dan", "d3")
        joined = dan.call("conversation_join", conversationId=conversation_id)
        self.assertEqual(joined["body"]["conversation"]["members"], ["ann", "bob", "cid", "dan"])
        yield wait_until(lambda: len(ann.client.events) == 1)
        yield wait_until(lambda: two.is_reachable("dan"))
        sent = bob_two.call(
            "conversation_message", conversationId=conversation_id, type="t", content="x"
        )
        self.assertEqual(sent["body"]["sent"], {"online": ["ann", "dan"], "offline": ["cid"]})
        yield wait_until(lambda: len(ann.events("message/conversation")) == 1)
        yield wait_until(lambda: len(bob_three.events("message/conversation")) == 1)
        yield wait_until(lambda: len(dan.events("message/conversation")) == 1)
        self.assertEqual(bob_two.events("message/conversation"), [])
        yield wait_until(lambda: [s.queued("cid") for s in (one, two, three)] == [2, 2, 2])

    @defer.inlineCallbacks
    def test_burst_in_order(self) -> Any:
        """
        A burst of messages from one node reaches the other once each, in
        the order sent.
        """
        one, two = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        bob = Device(two, "bob", "b2")
        yield wait_until(lambda: one.is_reachable("bob"))
        for number in range(300):
            ann.direct(f"m{number}", "bob")
        yield wait_until(lambda: len(bob.texts()) >= 300)
        self.assertEqual(bob.texts(), [f"m{number}" for number in range(300)])

    @defer.inlineCallbacks
    def converged(
        self, conversation_id: str, wanted: Callable[[Conversation], bool], *services: WireService
    ) -> Any:
        """
        Fires with the conversation once every service and Redis hold the
        same version of it, a C{wanted} one; fails after a few seconds.
        Nodes may agree on a version for a moment before a refused change
        is made again on it.
        """
        connection = yield txredisapi.Connection("127.0.0.1", 6379, reconnect=False)
        try:
            deadline = reactor.seconds() + 5
            while True:
                threads = [service._conversations.thread(conversation_id) for service in services]
                versions = {(t.stamp, str(t.conversation)) for t in threads}
                stored = yield connection.hget(f"{self.prefix}im:conversations", conversation_id)
                if len(versions) == 1 and wanted(threads[0].conversation):
                    stamp = threads[0].stamp
                    if stored.startswith(f"{stamp.number} {stamp.node} "):
                        return threads[0].conversation
                if reactor.seconds() > deadline:
                    raise AssertionError(f"not converged: {versions} and {stored}")
                yield deferLater(reactor, 0.01)
        finally:
            yield connection.disconnect()

    @defer.inlineCallbacks
    def test_concurrent_updates_converge(self) -> Any:
        """
        Two nodes changing a conversation at once end with the same
        version, which Redis keeps too.
        """
        one, two = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        added = ann.call("conversation_add", name="n", members=["bob"])
        conversation_id = added["body"]["id"]
        bob = Device(two, "bob", "b2")
        yield wait_until(lambda: two._conversations.get(conversation_id) is not None)
        ann.call("conversation_update", conversationId=conversation_id, set={"topic": "one"})
        bob.call("conversation_update", conversationId=conversation_id, set={"colour": "red"})
        conversation = yield self.converged(
            conversation_id, lambda c: {"topic", "colour"} <= c.custom.keys(), one, two
        )
        self.assertEqual(
            (conversation.custom["topic"], conversation.custom["colour"]), ("one", "red")
        )

    def start_backend(self) -> tuple[RedisIMBackend, RecordingListener, Deferred[None]]:
        """
        A backend of a node of its own id, telling a L{RecordingListener}.
        """
        link = self.local_link(new_node_id())
        backend = im_backend(link)
        listener = RecordingListener()
        self.addCleanup(link.stop)
        self.addCleanup(backend.stop)
        return backend, listener, backend.start(listener)

    def test_not_connected_before_subscribed(self) -> None:
        """
        A node whose commands reach Redis but whose pub/sub connection is
        not up yet is not connected: the state it would read then could
        miss what is published before it subscribes.
        """
        link = RedisLink(Clock(), reactor, RedisAddress("127.0.0.1"), self.prefix, "subnode000", 1)
        backend = im_backend(link)
        link.connection = object()
        self.assertFalse(backend.connected)

    @defer.inlineCallbacks
    def test_only_stored_versions_published(self) -> Any:
        """
        A conversation version is stored and published only when made on
        the stored version; any other is refused and the node told which
        version won, even when it was made on a version that lost at the
        same number and sorts after the winner.
        """
        writer, told, writing = self.start_backend()
        hearer, heard, hearing = self.start_backend()
        yield gatherResults([writing, hearing])
        yield wait_until(lambda: writer.connected and hearer.connected)

        def version(name: str, stamp: Stamp, base: Stamp | None) -> ConversationChanged:
            conversation = Conversation("c1", name, ("ann",), ("ann",), ("name",), 0)
            return ConversationChanged(writer.node_id, stamp, conversation, (), base, lambda c: c)

        writer.publish(version("v1", Stamp(1, "a"), None))
        writer.publish(version("v2b", Stamp(2, "b"), Stamp(1, "a")))
        writer.publish(version("v2c", Stamp(2, "c"), Stamp(1, "a")))
        writer.publish(version("v3c", Stamp(3, "c"), Stamp(2, "c")))
        writer.publish(version("v3", Stamp(3, "a"), Stamp(2, "b")))
        yield wait_until(lambda: len(heard.versions) >= 3 and len(told.rebases) >= 2)
        self.assertEqual(heard.versions, ["v1", "v2b", "v3"])
        self.assertEqual(told.rebases, [("v2c", "v2b"), ("v3c", "v2b")])
        connection = yield txredisapi.Connection("127.0.0.1", 6379, reconnect=False)
        stored = yield connection.hget(f"{self.prefix}im:conversations", "c1")
        yield connection.disconnect()
        self.assertTrue(stored.startswith("3 a "), stored)

    @defer.inlineCallbacks
    def test_concurrent_joins(self) -> Any:
        """
        Users joining a conversation at once on three nodes are all members
        in the end, on every node and in Redis.
        """
        one, two, three = yield self.nodes(3)
        ann = Device(one, "ann", "a1")
        conversation_id = ann.call("conversation_add", name="n")["body"]["id"]
        joiners = [Device(service, f"u{n}", f"s{n}") for n, service in enumerate((one, two, three))]
        yield wait_until(
            lambda: all(s._conversations.get(conversation_id) is not None for s in (two, three))
        )
        for joiner in joiners:
            joiner.call("conversation_join", conversationId=conversation_id)
        conversation = yield self.converged(
            conversation_id, lambda c: len(c.members) == 4, one, two, three
        )
        self.assertEqual(sorted(conversation.members), ["ann", "u0", "u1", "u2"])

    @defer.inlineCallbacks
    def test_state_loaded_at_start(self) -> Any:
        """
        A node started after the others stopped finds the conversations,
        their bounded histories and the offline queues (bounded too).
        """
        (one,) = yield self.nodes(1)
        ann = Device(one, "ann", "a1")
        added = ann.call("conversation_add", name="kept", members=["bob"], colour="red")
        conversation_id = added["body"]["id"]
        for number in range(6):
            ann.call(
                "conversation_message", conversationId=conversation_id, type="t", content=number
            )
        for number in range(4):
            ann.direct(f"d{number}", "cid")
        yield one.stop()
        (later,) = yield self.nodes(1)
        self.assertFalse(later.is_reachable("ann"))
        cid = Device(later, "cid", "c1")
        self.assertEqual(cid.texts(), ["d1", "d2", "d3"])
        bob = Device(later, "bob", "b1")
        got = bob.call("conversation_get", conversationId=conversation_id)
        self.assertEqual(got["body"]["conversation"]["colour"], "red")
        history = bob.call("conversation_history", conversationId=conversation_id)
        self.assertEqual([m["content"] for m in history["body"]["messages"]], [5, 4, 3, 2, 1])
        self.assertEqual([m["content"] for m in bob.events("message/conversation")], [3, 4, 5])

    @defer.inlineCallbacks
    def test_bounded_in_bytes(self) -> Any:
        """
        Redis keeps no more of a conversation's history, nor of an offline
        queue, than their byte bounds, counted as the replicas count them;
        a later node loads what was kept, and a delivered queue leaves no
        count behind.
        """
        settings = attrs.evolve(
            SETTINGS,
            history_size=100,
            history_bytes=5000,
            offline_bytes=5000,
            max_message_size=5000,
        )
        one, link = self.start_node(settings=settings)
        yield self.started
        ann = Device(one, "ann", "a1")
        added = ann.call("conversation_add", name="big", members=["bob"])
        conversation_id = added["body"]["id"]
        for number in range(5):
            content = f"{number} " + "x" * 2000
            ann.call(
                "conversation_message", conversationId=conversation_id, type="t", content=content
            )
            ann.direct(content, "cid")
        connection = link.connection
        history_key = f"{self.prefix}im:history:{conversation_id}"
        queue_key = f"{self.prefix}im:offline:cid"
        history = yield connection.lrange(history_key, 0, -1)
        history_bytes = yield connection.get(f"{self.prefix}im:history-bytes:{conversation_id}")
        queue = yield connection.lrange(queue_key, 0, -1)
        queue_bytes = yield connection.get(f"{self.prefix}im:offline-bytes:cid")
        self.assertEqual([json.loads(entry)["content"][0] for entry in history], ["4", "3"])
        self.assertEqual(int(history_bytes), sum(entry_size(entry) for entry in history))
        self.assertEqual(
            [json.loads(entry.split(" ", 1)[1])[1]["textContent"][0] for entry in queue], ["3", "4"]
        )
        self.assertEqual(
            int(queue_bytes), sum(entry_size(entry.split(" ", 1)[1]) for entry in queue)
        )
        yield one.stop()
        later, later_link = self.start_node(settings=settings)
        yield self.started
        cid = Device(later, "cid", "c1")
        self.assertEqual([text[0] for text in cid.texts()], ["3", "4"])
        left = yield later_link.connection.exists(f"{self.prefix}im:offline-bytes:cid")
        self.assertEqual(left, 0)

    @defer.inlineCallbacks
    def test_offline_users_bounded(self) -> Any:
        """
        Redis keeps the queues of as many users as the replicas do: the
        queue written to least recently goes, in Redis too, and a later
        node loads the others.
        """
        (one,) = yield self.nodes(1)
        ann = Device(one, "ann", "a1")
        for user in ("bob", "cid", "bob", "dan"):
            ann.direct(f"to {user}", user)
        self.assertEqual([one.queued(user) for user in ("bob", "cid", "dan")], [2, 0, 1])
        connection = yield txredisapi.Connection("127.0.0.1", 6379, reconnect=False)
        users = yield connection.zrange(f"{self.prefix}im:offline", 0, -1)
        dropped = yield connection.exists(f"{self.prefix}im:offline:cid")
        count_dropped = yield connection.exists(f"{self.prefix}im:offline-bytes:cid")
        yield connection.disconnect()
        self.assertEqual((sorted(users), dropped, count_dropped), (["bob", "dan"], 0, 0))
        (later,) = yield self.nodes(1)
        self.assertEqual([later.queued(user) for user in ("bob", "cid", "dan")], [2, 0, 1])
        bob = Device(later, "bob", "b1")
        self.assertEqual(bob.texts(), ["to bob", "to bob"])

    @defer.inlineCallbacks
    def test_queued_while_logging_in_elsewhere(self) -> Any:
        """
        A message queued by a node that does not know yet that its target
        just logged in on another node reaches the target once, and no
        queue is left anywhere.
        """
        one, two = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        bob = Device(two, "bob", "b2")
        ack = ann.direct("racing", "bob")
        self.assertEqual(ack["body"]["offline"], ["bob"])
        yield wait_until(lambda: bob.texts() == ["racing"])
        yield wait_until(lambda: one.queued("bob") == 0)
        self.assertEqual(two.queued("bob"), 0)
        later = Device(one, "bob", "b1")
        self.assertEqual(later.texts(), [])
        connection = yield txredisapi.Connection("127.0.0.1", 6379, reconnect=False)
        length = yield connection.llen(f"{self.prefix}im:offline:bob")
        yield connection.disconnect()
        self.assertEqual(length, 0)

    @defer.inlineCallbacks
    def test_sent_as_the_target_logs_out(self) -> Any:
        """
        A message sent to a user who, unknown to the sender, just logged out
        of its only node is queued there again, once, and delivered at the
        next logIn.
        """
        one, two = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        bob = Device(two, "bob", "b2")
        yield wait_until(lambda: one.is_reachable("bob"))
        bob.call("log_out")
        ack = ann.direct("gone", "bob")
        self.assertEqual(ack["body"]["online"], ["bob"])
        yield wait_until(lambda: [one.queued("bob"), two.queued("bob")] == [1, 1])
        back = Device(one, "bob", "b1")
        self.assertEqual(back.texts(), ["gone"])
        self.assertEqual(bob.texts(), [])

    @defer.inlineCallbacks
    def test_message_during_a_read(self) -> Any:
        """
        A message heard while a node reads the state again (after an
        outage) reaches the node's sockets, and is kept in history once.
        """
        one, two = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        conversation_id = ann.call("conversation_add", name="n", members=["bob"])["body"]["id"]
        bob = Device(two, "bob", "b2")
        yield wait_until(
            lambda: one.is_reachable("bob") and two._conversations.get(conversation_id) is not None
        )
        two._backend._read()
        ann.call("conversation_message", conversationId=conversation_id, type="t", content="x")
        yield wait_until(lambda: len(bob.events("message/conversation")) == 1)
        yield wait_until(lambda: two._backend._buffer is None)
        history = bob.call("conversation_history", conversationId=conversation_id)
        self.assertEqual([m["content"] for m in history["body"]["messages"]], ["x"])

    @defer.inlineCallbacks
    def test_queued_during_a_read(self) -> Any:
        """
        A message this node queues while it reads the state again stays
        queued, once, whether or not the state read holds it.
        """
        one, _ = yield self.nodes(2)
        ann = Device(one, "ann", "a1")
        yield wait_until(lambda: one._backend._buffer is None)
        one._backend._read()
        ann.direct("while reading", "cid")
        yield wait_until(lambda: one._backend._buffer is None)
        self.assertEqual(one.queued("cid"), 1)
        cid = Device(one, "cid", "c1")
        self.assertEqual(cid.texts(), ["while reading"])

    @defer.inlineCallbacks
    def test_token_on_another_node(self) -> Any:
        """
        The HTTP API of any node accepts a session token of another node,
        as its user, until the session ends; a socket may not use it (403).
        A node started later knows the sessions of the others.
        """
        one, two = yield self.nodes(2)
        bob = Device(two, "bob", "b2")
        token = {"sessionToken": bob.token}

        def listed(service: WireService) -> bool:
            try:
                service.conversation_list(None, token)
            except IMError:
                return False
            return True

        yield wait_until(lambda: listed(one))
        added = one.conversation_add(None, {**token, "name": "from http"})
        self.assertEqual(added["body"]["conversation"]["admin"], ["bob"])
        yield wait_until(lambda: len(bob.events("conversation/updated")) == 1)
        ann = Device(one, "ann", "a1")
        for call in (one.conversation_list, one.log_out):
            with self.assertRaises(IMError) as raised:
                call(ann.client, token)
            self.assertEqual(raised.exception.status_code, 403)
        with self.assertRaises(IMError) as raised:
            one.log_out(None, token)
        self.assertEqual(raised.exception.status_code, 403)
        (three,) = yield self.nodes(1)
        self.assertTrue(listed(three))
        bob.call("log_out")
        yield wait_until(lambda: not listed(one) and not listed(three))

    @defer.inlineCallbacks
    def test_stopped_node_users_offline(self) -> Any:
        """
        A node leaving cleanly takes its users offline on the others at
        once, without waiting for the node timeout.
        """
        one, two = yield self.nodes(2, node_timeout=30)
        Device(two, "bob", "b2")
        yield wait_until(lambda: one.is_reachable("bob"))
        yield two.stop()
        yield wait_until(lambda: not one.is_reachable("bob"), timeout=2)

    @defer.inlineCallbacks
    def test_dead_node_users_offline(self) -> Any:
        """
        The users of a node that stops without leaving are offline on the
        others within twice the node timeout.
        """
        (one,) = yield self.nodes(1, node_timeout=0.5)
        two, link = self.start_node(node_timeout=0.5)
        yield self.started
        bob = Device(two, "bob", "b2")
        yield wait_until(lambda: one.is_reachable("bob"))
        yield link.stop()
        started = reactor.seconds()
        yield wait_until(lambda: not one.is_reachable("bob"), timeout=3)
        self.assertLess(reactor.seconds() - started, 2 * 0.5 + 0.3)
        with self.assertRaises(IMError) as raised:
            one.conversation_list(None, {"sessionToken": bob.token})
        self.assertEqual(raised.exception.status_code, 401)


class SnapshotTests(SynchronousTestCase):
    """
    How a service takes in the stored state, at start or after an outage.
    """

    def setUp(self) -> None:
        self.service = wire(
            IMService(
                Clock(), SETTINGS, IdGenerator("snapnode00"), backend=MemoryIMBackend("snapnode00")
            )
        )

    def conversation(self, name: str) -> Conversation:
        return Conversation("c1", name, ("ann",), ("ann", "bob"), ("name",), 0)

    def test_delivered_not_queued_again(self) -> None:
        """
        A queued message this node delivered is not queued again by a
        stored state read before Redis forgot it.
        """
        entry = ("message/direct", {"id": "m1", "textContent": "x"})
        self.service.cluster.im_snapshot(IMSnapshot(offline={"bob": [entry]}))
        self.assertEqual(self.service.queued("bob"), 1)
        bob = Device(self.service, "bob", "b1")
        self.assertEqual(bob.texts(), ["x"])
        self.service.cluster.im_snapshot(IMSnapshot(offline={"bob": [entry]}))
        self.assertEqual((self.service.queued("bob"), bob.texts()), (0, ["x"]))

    def test_newer_conversation_wins(self) -> None:
        """
        A stored conversation replaces this node's only when its version
        is greater; members here hear of the change.
        """
        ann = Device(self.service, "ann", "a1")
        first = ConversationState(Stamp(2, "n1"), self.conversation("first"))
        self.service.cluster.im_snapshot(IMSnapshot(conversations=[first]))
        older = ConversationState(Stamp(1, "n9"), self.conversation("older"))
        self.service.cluster.im_snapshot(IMSnapshot(conversations=[older]))
        got = ann.call("conversation_get", conversationId="c1")
        self.assertEqual(got["body"]["conversation"]["name"], "first")
        newer = ConversationState(Stamp(2, "n2"), self.conversation("newer"), [{"id": "h1"}])
        self.service.cluster.im_snapshot(IMSnapshot(conversations=[newer]))
        names = [data["conversation"]["name"] for data in ann.events("conversation/updated")]
        self.assertEqual(names, ["first", "newer"])
        history = ann.call("conversation_history", conversationId="c1")
        self.assertEqual(history["body"]["messages"], [{"id": "h1"}])

    def test_presence_replaced(self) -> None:
        """
        The stored presence replaces what was known of other nodes; this
        node's own entry is ignored; a node gone takes its users along.
        """
        self.service.cluster.im_snapshot(
            IMSnapshot(presence={"n1": ("bob",), "snapnode00": ("cid",)})
        )
        self.assertEqual(
            [self.service.is_reachable(user) for user in ("bob", "cid")], [True, False]
        )
        self.service.cluster.im_snapshot(IMSnapshot(presence={"n2": ("dan",)}))
        self.assertFalse(self.service.is_reachable("bob"))
        self.service.cluster.im_event(NodeGone("n2"))
        self.assertFalse(self.service.is_reachable("dan"))
