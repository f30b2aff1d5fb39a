# -*- test-case-name: tests.test_wsmemory -*-
"""
Keeping less memory per open Autobahn connection.

An idle Autobahn server connection holds about a hundred instance
attributes: a copy of each of the factory's protocol options, flags and
timers that are C{False} or C{None} for as long as the connection is
quiet, and leftovers of the opening handshake. Their instance dictionary
is most of what a quiet connection holds, and Autobahn's C{send_queue} (a
C{deque}, used only for its synchronous and chopped writes) adds to it
(bench/README.rst, finding 4).

Both WebSocket front ends (xgate and Engine.IO) therefore use a protocol
class made by L{lean_protocol} for their factory, and call L{compact} on
each connection once it is open:

  - the factory's options live on that class, so Autobahn does not copy
    them onto each connection (it copies only options the protocol does
    not have);
  - the class holds the quiet values of Autobahn's per-connection state,
    so L{compact} can drop the instance attributes that equal them,
    unseen by any reader: a later assignment puts the attribute back;
  - the handshake leftovers nothing reads once the connection is open
    are dropped, and read as empty afterwards;
  - an empty C{send_queue} becomes a list-based queue of a few bytes.

A quiet connection then holds a dictionary of about forty entries instead
of a hundred.

L{UpgradeResource} mounts a factory in twisted.web like Autobahn's
C{WebSocketResource}, and also lets go of the HTTP channel and request of
the upgrade at once: they refer to each other, so otherwise every
upgrade's channel and request stay in memory until Python's cycle
collector happens to run.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any, TypeVar

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.web.server import NOT_DONE_YET, Request

from .handshake import refuse_handshake
from .internals import (
    AUTOBAHN_HANDSHAKE_STATE,
    AUTOBAHN_OPTION_NAMES,
    AUTOBAHN_QUIET_STATE,
    registered_producer,
    release_requests,
)

__all__ = ["UpgradeResource", "compact", "lean_protocol"]

_P = TypeVar("_P", bound=WebSocketServerProtocol)


class _SendQueue(list[Any]):
    """
    The interface of Autobahn's C{send_queue} on a list: a few bytes empty,
    where a C{deque} holds a block of 64 slots.
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def _option(value: Any) -> Any:
    """
    A factory option as a class attribute: functions (such as
    C{perMessageCompressionAccept}) must not become methods.
    """
    return staticmethod(value) if isinstance(value, FunctionType) else value


def lean_protocol(base: type[_P], factory: WebSocketServerFactory) -> type[_P]:
    """
    A subclass of C{base} with the protocol options of C{factory} (as they
    are now) and the quiet state of Autobahn connections as class
    attributes, whose refused handshakes are answered by
    L{xmeet.transport.handshake.refuse_handshake}. Use it as the factory's
    C{protocol}; any factory with the same options may share it.
    """
    namespace: dict[str, Any] = {
        name: _option(getattr(factory, name)) for name in AUTOBAHN_OPTION_NAMES
    }
    namespace.update(AUTOBAHN_QUIET_STATE)
    namespace.update(AUTOBAHN_HANDSHAKE_STATE)
    namespace["failHandshake"] = refuse_handshake
    namespace["__module__"] = base.__module__
    namespace["__doc__"] = base.__doc__
    return type(base.__name__, (base,), namespace)


def compact(protocol: WebSocketServerProtocol) -> None:
    """
    Shrink an open connection's instance dictionary to what differs from
    its class (see the module's documentation), dropping the handshake
    leftovers first.

    Call it once the connection is open and its own set-up is done; it
    changes nothing a reader of the attributes can see, except that the
    handshake attributes read as empty.
    """
    state = protocol.__dict__
    for name in AUTOBAHN_HANDSHAKE_STATE:
        state.pop(name, None)
    queue = state.get("send_queue")
    if queue is not None and not queue and not isinstance(queue, _SendQueue):
        state["send_queue"] = _SendQueue()
    cls = type(protocol)
    missing = object()
    kept = {
        name: value for name, value in state.items() if getattr(cls, name, missing) is not value
    }
    # clear() frees the old table; refilling sizes a new one to the entries.
    state.clear()
    state.update(kept)


class UpgradeResource(WebSocketResource):
    """
    Autobahn's C{WebSocketResource}, which also releases the HTTP side of
    the upgrade once the WebSocket has taken the connection over.
    """

    def render(self, request: Request) -> bytes | int:
        """
        Hand the connection to the factory's protocol, then let go of the
        HTTP channel (which Autobahn has emptied of its transport): it no
        longer produces for the connection, and the cycle between it and
        its requests is broken, so both are freed now.
        """
        result: bytes | int = super().render(request)
        channel = request.channel
        if result is NOT_DONE_YET and channel is not None and channel.transport is None:
            transport: Any = request.transport
            if registered_producer(transport) is channel:
                transport.unregisterProducer()
            release_requests(channel)
        return result
