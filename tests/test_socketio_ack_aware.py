# -*- test-case-name: tests.test_socketio_ack_aware -*-
"""
Handlers registered with C{ack_aware=True} learn whether the client asked
for an acknowledgement.
"""

from __future__ import annotations

from typing import Any

from tests.test_socketio_server import ServerTestCase
from xmeet.socketio import Socket

__all__ = ["AckAwareTests"]


class AckAwareTests(ServerTestCase):
    """
    L{xmeet.socketio.Namespace.on} with C{ack_aware}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.engine_socket, self.socket = self.connect()
        self.calls: list[tuple[bool, tuple[Any, ...]]] = []

        @self.main.on("ask", ack_aware=True)
        def ask(socket: Socket, acked: bool, *args: Any) -> str:
            self.calls.append((acked, args))
            return "answer"

    def test_with_ack(self) -> None:
        """
        A client asking for an ack: C{acked} is true and the result is the
        ack.
        """
        self.engine_socket.receive('427["ask",1]')
        self.assertEqual(self.calls, [(True, (1,))])
        self.assertEqual(self.engine_socket.take(), ['437["answer"]'])

    def test_without_ack(self) -> None:
        """
        No ack asked: C{acked} is false and nothing is sent.
        """
        self.engine_socket.receive('42["ask",{"a":2}]')
        self.assertEqual(self.calls, [(False, ({"a": 2},))])
        self.assertEqual(self.engine_socket.take(), [])

    def test_reregistering_plain(self) -> None:
        """
        Registering the event again without the flag calls the new handler
        plainly.
        """
        plain: list[tuple[Any, ...]] = []
        self.main.on("ask")(lambda socket, *args: plain.append(args))
        self.engine_socket.receive('427["ask",1]')
        self.assertEqual((plain, self.calls), ([(1,)], []))
