# -*- test-case-name: tests.test_im -*-
"""
The clients of the IM service: what it pushes (L{Push}), to whom
(L{IIMClient}), and who calls it (L{Caller}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
from zope.interface import Attribute, Interface

__all__ = ["Caller", "IIMClient", "Push"]

T = TypeVar("T")


@attrs.define(eq=False)
class Push:
    """
    One event pushed to any number of sockets: C{data} is shared by every
    recipient and must not be changed. Each kind of front end encodes it
    once (L{prepared}), whatever the number of recipients.
    """

    event: str
    data: dict[str, Any]
    _forms: dict[object, Any] = attrs.field(factory=dict, init=False, repr=False)

    def prepared(self, key: object, build: Callable[[Push], T]) -> T:
        """
        The wire form of this push for the front end C{key}, built by
        C{build(self)} on first use and shared by every later caller.
        """
        try:
            form: T = self._forms[key]
        except KeyError:
            form = self._forms[key] = build(self)
        return form


class IIMClient(Interface):
    """
    One connected client of the IM service: a Socket.IO socket, adapted.
    """

    id = Attribute("The socket id, unique on this node, as the client knows it (C{socketId}).")

    def push(push: Push) -> None:
        """
        Send C{push} to this client; must not raise nor block. The same
        push goes to every recipient: encode it with L{Push.prepared}.
        """


@attrs.frozen
class Caller:
    """
    Who makes a call: a socket with the C{sessionToken} of its payload, or
    (C{client} C{None}) an HTTP request with its bearer token, which names
    the session alone, wherever in the cluster it is held.

    @ivar token: as given, not yet checked: C{None} when there is none.
    """

    client: IIMClient | None
    token: object

    @classmethod
    def socket(cls, client: IIMClient, payload: object) -> Caller:
        """
        A socket's call: the token is the payload's C{sessionToken}.
        """
        token = payload.get("sessionToken") if isinstance(payload, Mapping) else None
        return cls(client, token)

    @classmethod
    def bearer(cls, token: str | None) -> Caller:
        """
        An HTTP call with the bearer token of its C{Authorization} header.
        """
        return cls(None, token)
