# -*- test-case-name: tests.test_store -*-
"""
Where rooms live beyond one process: the backend interface, an in-memory
backend for a single node and a Redis backend for a cluster.
"""

from xmeet.store.interfaces import IRoomBackend, IRoomListener, RemoteMember, RoomState
from xmeet.store.memory import MemoryRoomBackend

__all__ = ["IRoomBackend", "IRoomListener", "MemoryRoomBackend", "RemoteMember", "RoomState"]
