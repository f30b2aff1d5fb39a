"""
The xgate protocol tests again, on a node whose rooms live in Redis: one
member's view of the protocol must not change with the backend.

The classes that look inside the in-memory backend (its idle-room LRU, a
slowed-down room load) or need no room at all are not repeated. The node
runs on the global reactor, which reaches Redis, so its clients are on
sockets too.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer

from tests import test_xgate, test_xgate_interop
from tests.cluster_support import REDIS_URL, redis_cleanup, unique_prefix
from tests.xgate_client import wait_until

MEMORY_ONLY = {
    "FactoryLifecycleTests",
    "SlowJoinTests",
    "HealthTests",
    "RoomIdTests",
    "WebsocketsHandshakeTests",
}


def _on_redis(base: type) -> type:
    """
    C{base}, with its node's rooms in Redis under a prefix of its own.
    """

    class OnRedis(base):  # type: ignore[valid-type,misc]
        on_sockets = True

        @defer.inlineCallbacks
        def setUp(self) -> Any:
            prefix = unique_prefix()
            redis_cleanup(self, prefix)
            self.settings = attrs.evolve(base.settings, redis_url=REDIS_URL, redis_prefix=prefix)
            yield defer.maybeDeferred(super().setUp)
            backend = self.running.node.rooms.backend
            yield wait_until(lambda: backend.connected and backend.link.subscriber is not None)

    OnRedis.__name__ = OnRedis.__qualname__ = f"{base.__name__}OnRedis"
    OnRedis.__doc__ = base.__doc__
    return OnRedis


for _name in test_xgate.__all__:
    if _name not in MEMORY_ONLY:
        globals()[f"{_name}OnRedis"] = _on_redis(getattr(test_xgate, _name))
for _name in [base.__name__ for base in test_xgate_interop.SOCKET_ONLY]:
    if _name not in MEMORY_ONLY:
        globals()[f"{_name}OnRedis"] = _on_redis(getattr(test_xgate_interop, _name))
