# -*- test-case-name: tests.test_xgate_interop -*-
"""
The xgate protocol on real sockets of 127.0.0.1, with WebSocket client
libraries nobody here wrote: the C{websockets} package (asyncio, in a
thread) and Autobahn's Twisted client over TCP. The rules themselves are
tested in memory (L{tests.test_xgate}); this smaller layer proves that
what reaches a real socket is what the rules say: handshakes and their
refusals, cookies, close codes and a dropped TCP connection, a client
stalled by its socket buffers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.threads import deferToThread
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests import test_xgate
from tests.test_xgate import GREETING, XgateTestCase, contract
from tests.xgate_client import WAIT, XgateClient
from xmeet.config import Settings

__all__ = [
    "MixedClientTests",
    "SocketTestCase",
    "SlowReaderTests",
    "WebsocketsCloseCodeTests",
    "WebsocketsHandshakeTests",
]

ON_SOCKETS_TOO = ["GreetingTests", "NicknameTests", "BadFrameTests", "LeaveTests", "HealthTests"]
"""
The in-memory classes run here again on sockets: the greeting, cookies
and refusals over real HTTP, close codes and a dropped TCP connection,
and C{/healthz} through treq on a real port.
"""


def run_in_thread(coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """
    Run an asyncio C{coroutine} function in a thread of the reactor's
    pool, with its own event loop, so the reactor keeps serving meanwhile.
    """
    return deferToThread(asyncio.run, coroutine())


async def receive(connection: ClientConnection) -> dict[str, Any]:
    """
    The next frame of a C{websockets} connection, parsed; bounded wait.
    """
    text = await asyncio.wait_for(connection.recv(), WAIT)
    assert isinstance(text, str), f"binary message from the server: {text!r}"
    frame: dict[str, Any] = json.loads(text)
    return frame


async def receive_until(
    connection: ClientConnection, done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """
    Frames of a C{websockets} connection up to and including the first
    for which C{done(frame)} is true.
    """
    frames = [await receive(connection)]
    while not done(frames[-1]):
        frames.append(await receive(connection))
    return frames


class SocketTestCase(XgateTestCase):
    """
    A node on a real port of 127.0.0.1, clients on real sockets.
    """

    on_sockets = True

    def shrink_buffers(self, client: XgateClient, xnest_id: str) -> None:
        """
        Give both ends of C{client}'s connection to C{xnest_id} small kernel
        buffers, so that a few kilobytes fill them once the client stops
        reading.
        """
        room = self.rooms.live(xnest_id)
        assert room is not None and client.protocol is not None
        server_side: Any = room.local[client.id].sink.transport
        client_side: Any = client.protocol.transport
        server_side.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client_side.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


class WebsocketsHandshakeTests(SocketTestCase):
    """
    Handshake refusals as the C{websockets} client sees them.
    """

    async def test_invalid_refused_to_websockets(self) -> None:
        """
        The C{websockets} client sees the same HTTP 400 answers.
        """
        base = self.running.ws_url

        async def statuses() -> list[int | None]:
            found: list[int | None] = []
            for segment in test_xgate.RoomIdTests.INVALID:
                try:
                    async with websockets_connect(
                        f"{base}/xgate/websocket/{segment}", proxy=None, open_timeout=WAIT
                    ):
                        found.append(None)
                except InvalidStatus as error:
                    found.append(error.response.status_code)
            return found

        self.assertEqual(await run_in_thread(statuses), [400] * len(test_xgate.RoomIdTests.INVALID))


class MixedClientTests(SocketTestCase):
    """
    Autobahn's client and the C{websockets} client in one conversation.
    """

    async def test_conversation(self) -> None:
        """
        Alice (Autobahn) and Wanda and Wu (C{websockets}, in a thread) see
        each other's joins, messages and leaves exactly, and the
        C{websockets} handshake gets the nickname cookie.
        """
        alice = await self.join("mixed", nickname="alice")
        wanda_url = self.url("mixed", nickname="wanda")
        wu_url = self.url("mixed", nickname="吴")

        async def websockets_side() -> tuple[list[Any], list[Any], str | None]:
            def payload_is(text: str) -> Callable[[dict[str, Any]], bool]:
                return lambda frame: frame["type"] == "normal" and frame["payload"] == text

            async with websockets_connect(wanda_url, proxy=None) as wanda:
                assert wanda.response is not None
                cookie = wanda.response.headers.get("Set-Cookie")
                wanda_frames = [await receive(wanda) for _ in GREETING]
                async with websockets_connect(wu_url, proxy=None) as wu:
                    wu_frames = [await receive(wu) for _ in GREETING]
                    wanda_frames.append(await receive(wanda))
                    await wanda.send("hello from wanda")
                    wu_frames += await receive_until(wu, payload_is("hello from wanda"))
                    await wu.send("你好 from wu 🙂")
                    wu_frames += await receive_until(wu, payload_is("hi both"))
                wanda_frames += await receive_until(wanda, lambda frame: frame["type"] == "leave")
            return wanda_frames, wu_frames, cookie

        websockets_done = run_in_thread(websockets_side)
        wanda_join = await alice.next_of_type("join")
        wu_join = await alice.next_of_type("join")
        wanda_id, wu_id = wanda_join["from"], wu_join["from"]
        await alice.next_of_type("normal")
        await alice.next_of_type("normal")
        alice.send("hi both")
        await alice.next_of_type("normal")
        wu_leave = await alice.next_of_type("leave")
        wanda_leave = await alice.next_of_type("leave")
        wanda_frames, wu_frames, cookie = await websockets_done

        def seen(frames: list[Any]) -> list[tuple[str, str, Any]]:
            return [(frame["type"], frame["from"], frame["payload"]) for frame in frames]

        self.assertEqual(
            seen(alice.frames[4:]),
            [
                ("join", wanda_id, "wanda"),
                ("join", wu_id, "吴"),
                ("normal", wanda_id, "hello from wanda"),
                ("normal", wu_id, "你好 from wu 🙂"),
                ("normal", alice.id, "hi both"),
                ("leave", wu_id, "leave"),
                ("leave", wanda_id, "leave"),
            ],
        )
        self.assertEqual((wu_leave["from"], wanda_leave["from"]), (wu_id, wanda_id))
        members = [
            {"pid": alice.id, "nickname": "alice"},
            {"pid": wanda_id, "nickname": "wanda"},
            {"pid": wu_id, "nickname": "吴"},
        ]
        self.assertEqual(
            seen(wanda_frames),
            [
                ("self", wanda_id, wanda_id),
                ("member_count", wanda_id, 2),
                ("members", wanda_id, members[:2]),
                ("history", wanda_id, []),
                ("join", wu_id, "吴"),
                ("normal", wanda_id, "hello from wanda"),
                ("normal", wu_id, "你好 from wu 🙂"),
                ("normal", alice.id, "hi both"),
                ("leave", wu_id, "leave"),
            ],
        )
        self.assertEqual(
            seen(wu_frames),
            [
                ("self", wu_id, wu_id),
                ("member_count", wu_id, 3),
                ("members", wu_id, members),
                ("history", wu_id, []),
                ("normal", wanda_id, "hello from wanda"),
                ("normal", wu_id, "你好 from wu 🙂"),
                ("normal", alice.id, "hi both"),
            ],
        )
        self.assertEqual({frame["xnest"] for frame in wanda_frames + wu_frames}, {"mixed"})
        self.assertEqual(cookie, "nickname=wanda; Path=/xgate/; Max-Age=31536000; SameSite=Lax")


class WebsocketsCloseCodeTests(SocketTestCase):
    """
    The close codes of bad frames as the C{websockets} client sees them.
    """

    settings = Settings(max_message_size=1000)

    async def test_close_codes(self) -> None:
        """
        A binary message gets close 1003 and a message one byte too large
        gets 1009, each with a reason; meanwhile an Autobahn member sees
        both leave.
        """
        alice = await self.join("lobby", nickname="alice")
        url = self.url("lobby", nickname="wanda")

        async def close_code(message: str | bytes) -> tuple[int | None, str | None]:
            async with websockets_connect(url, proxy=None) as connection:
                for _ in GREETING:
                    await receive(connection)
                await connection.send(message)
                try:
                    await receive(connection)
                except ConnectionClosedError:
                    pass
                await asyncio.wait_for(connection.wait_closed(), WAIT)
                received = connection.close_exc.rcvd
                assert received is not None, "no close frame from the server"
                return received.code, received.reason

        async def both() -> list[tuple[int | None, str | None]]:
            return [await close_code(b"binary"), await close_code("x" * 1001)]

        [binary, too_large] = await run_in_thread(both)
        self.assertEqual(binary, (1003, "binary messages are not accepted"))
        self.assertEqual(too_large[0], 1009)
        self.assertTrue(too_large[1])
        frames = await self.frames(alice, 4)
        self.assertEqual([frame["type"] for frame in frames], ["join", "leave", "join", "leave"])
        self.assertEqual(frames[0]["from"], frames[1]["from"])
        self.assertEqual(frames[2]["from"], frames[3]["from"])


class SlowReaderTests(SocketTestCase):
    """
    A member that stops reading is dropped once its bounded send queue is
    full, and the others get its C{leave}.
    """

    settings = Settings(max_send_queue=5, rate=10000, burst=10000)

    async def test_stalled_reader_dropped(self) -> None:
        """
        While one member's client reads nothing (both ends of its
        connection given small socket buffers, so little data fills
        them), another sends 100 messages of 16 KB: the stalled member is
        dropped and its C{leave} reaches the sender, who keeps receiving
        every message: it paces them on their echoes, four at a time, below
        the five frames that would drop it too.
        """
        writer = await self.join("lobby", nickname="writer")
        stalled = await self.join("lobby", nickname="stalled")
        await writer.next_of_type("join")
        self.shrink_buffers(stalled, "lobby")
        assert stalled.protocol is not None
        client_side: Any = stalled.protocol.transport
        client_side.pauseProducing()
        text = "x" * 16000
        await writer.send_paced([text] * 100, window=4)
        leave = await writer.next_of_type("leave")
        self.assertEqual(contract(leave), self.frame(stalled, "lobby", "leave", "leave"))
        await self.wait_until(lambda: self.gate.connections == 1)
        client_side.resumeProducing()
        await stalled.when_closed()
        writer.send("done")
        frame = await writer.next_frame()
        while frame["payload"] != "done":
            frame = await writer.next_frame()
        payloads = [frame["payload"] for frame in writer.frames if frame["type"] == "normal"]
        self.assertEqual(payloads, [text] * 100 + ["done"])


SOCKET_ONLY = (
    MixedClientTests,
    WebsocketsCloseCodeTests,
    WebsocketsHandshakeTests,
    SlowReaderTests,
)
"""
The classes of this module that exist only on sockets (the Redis variants
run them too).
"""


def _on_sockets(base: type[XgateTestCase]) -> type[XgateTestCase]:
    """
    C{base}, on real sockets.
    """
    variant = type(f"{base.__name__}OnSockets", (base,), {"on_sockets": True})
    variant.__qualname__ = variant.__name__
    variant.__doc__ = base.__doc__
    return variant


for _name in ON_SOCKETS_TOO:
    globals()[f"{_name}OnSockets"] = _on_sockets(getattr(test_xgate, _name))
