# -*- test-case-name: tests.test_admission -*-
"""
Tests for L{xmeet.admission}: origins and per-address limits at the
handshakes of xgate and C{/socket.io/}; first in memory (the Engine.IO
resource on L{DummyRequest}s and a fake clock), then on a real node on
127.0.0.1 with the C{websockets} package, Autobahn's client, treq and
python-socketio.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidStatus

from tests.support import RunningNode, http_client, start_xmeet
from tests.test_engineio_session import body_of, header, make_request, make_server
from tests.test_im_socketio import sio_connect
from tests.test_xgate_interop import run_in_thread
from tests.xgate_client import WAIT, XgateClient, connect, handshake_status, wait_until
from xmeet.admission import Admission
from xmeet.config import Settings
from xmeet.engineio import EngineIOResource
from xmeet.service import build_node

__all__ = [
    "CycleTests",
    "EngineIOAdmissionTests",
    "ListedOriginTests",
    "OriginTests",
    "PerAddressTests",
    "RateTests",
    "XgateAdmissionTests",
]

EVIL = "http://evil.example"


def status_of(request: DummyRequest) -> int:
    """
    The status a rendered request answers with (200 unless set).
    """
    return request.responseCode or 200


def error_of(body: bytes) -> tuple[int, str]:
    """
    The status and code of a JSON error object.
    """
    document = json.loads(body)
    return document["statusCode"], document["error"]["code"]


class EngineIOAdmissionTests(SynchronousTestCase):
    """
    The Engine.IO resource with a node's L{Admission}, in memory.
    """

    def setUp(self) -> None:
        self.server, self.clock, _ = make_server(echo=True)
        self.resource = self.resource_with(Settings())

    def resource_with(self, settings: Settings) -> EngineIOResource:
        self.admission = Admission.of(settings, self.clock)
        return EngineIOResource(self.server, self.admission)

    def request(
        self,
        method: bytes = b"GET",
        headers: dict[bytes, bytes] | None = None,
        address: str = "10.0.0.1",
        **query: str,
    ) -> DummyRequest:
        request = make_request(method, query, b"", {b"host": b"chat.example", **(headers or {})})
        request.client = IPv4Address("TCP", address, 4321)
        request.render(self.resource)
        return request

    def handshake(self, address: str = "10.0.0.1", **headers: bytes) -> DummyRequest:
        return self.request(
            headers={name.encode(): value for name, value in headers.items()},
            address=address,
            EIO="4",
            transport="polling",
        )

    def test_foreign_origin_refused(self) -> None:
        """
        A handshake from a page of another site gets 403 and the JSON error
        object; no session is opened.
        """
        request = self.handshake(origin=EVIL.encode())
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(error_of(body_of(request)), (403, "origin_not_allowed"))
        self.assertEqual(header(request, b"content-type"), b"application/json; charset=utf-8")
        self.assertEqual(
            (self.server.sockets, self.admission.refused["origin_not_allowed"]), ({}, 1)
        )

    def test_foreign_origin_refused_websocket(self) -> None:
        """
        A WebSocket handshake from a foreign page is refused before
        anything is upgraded.
        """
        request = self.request(
            headers={b"origin": EVIL.encode(), b"upgrade": b"websocket"},
            EIO="4",
            transport="websocket",
        )
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(error_of(body_of(request)), (403, "origin_not_allowed"))

    def test_foreign_origin_refused_in_session(self) -> None:
        """
        A session's later requests from a foreign page are refused too.
        """
        sid = json.loads(body_of(self.handshake())[1:])["sid"]
        request = self.request(
            b"POST", headers={b"origin": EVIL.encode()}, EIO="4", transport="polling", sid=sid
        )
        self.assertEqual(request.responseCode, 403)

    def test_own_pages_and_non_browsers(self) -> None:
        """
        Without C{Origin}, or from a page of the node's own host, the
        handshake succeeds.
        """
        self.assertEqual(status_of(self.handshake()), 200)
        self.assertEqual(status_of(self.handshake(origin=b"https://chat.example")), 200)
        self.assertEqual(len(self.server.sockets), 2)

    def test_sessions_per_address(self) -> None:
        """
        Beyond C{max_connections_per_ip} sessions of one address, 429
        C{too_many_connections}; a session that ends makes room.
        """
        self.resource = self.resource_with(Settings(max_connections_per_ip=2))
        self.assertEqual(status_of(self.handshake()), 200)
        self.assertEqual(status_of(self.handshake()), 200)
        refused = self.handshake()
        self.assertEqual(refused.responseCode, 429)
        self.assertEqual(error_of(body_of(refused)), (429, "too_many_connections"))
        self.assertEqual(status_of(self.handshake(address="10.0.0.2")), 200)
        next(iter(self.server.sockets.values())).shut_down()
        self.assertEqual(status_of(self.handshake()), 200)
        for socket in list(self.server.sockets.values()):
            socket.shut_down()
        self.assertEqual(self.admission.limits.addresses, 0)

    def test_handshake_rate(self) -> None:
        """
        Beyond the burst, handshakes of one address get 429
        C{connection_rate_limited} until tokens come back.
        """
        self.resource = self.resource_with(
            Settings(connection_rate_per_ip=1, connection_burst_per_ip=2)
        )
        self.assertEqual([status_of(self.handshake()) for _ in range(3)], [200, 200, 429])
        self.assertEqual(error_of(body_of(self.handshake())), (429, "connection_rate_limited"))
        self.clock.advance(1)
        self.assertEqual(status_of(self.handshake()), 200)


class XgateAdmissionTests(SynchronousTestCase):
    """
    The xgate handshake resource of a node, on in-memory requests: refusals
    come before any factory or lease exists.
    """

    def setUp(self) -> None:
        self.node = build_node(reactor, Settings(max_connections_per_ip=1))
        self.gate = self.node.gate

    def handshake(self, **headers: bytes) -> DummyRequest:
        request = DummyRequest([b"xgate", b"websocket", b"r"])
        request.prepath = [b"xgate", b"websocket", b"r"]
        request.postpath = []
        request.uri = b"/xgate/websocket/r"
        request.client = IPv4Address("TCP", "10.0.0.1", 4321)
        for name, value in {"host": b"chat.example", **headers}.items():
            request.requestHeaders.addRawHeader(name.encode(), value)
        request.render(self.gate.getChild(b"r", request))
        return request

    def test_foreign_origin(self) -> None:
        """
        403 with the JSON error object, no factory, nothing counted.
        """
        request = self.handshake(origin=EVIL.encode())
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(error_of(body_of(request)), (403, "origin_not_allowed"))
        self.assertEqual((self.gate.factories, self.node.admission.limits.addresses), (0, 0))

    def test_address_full(self) -> None:
        """
        An address at its limit gets 429 and no factory is made.
        """
        self.node.admission.limits.admit("10.0.0.1", 0)
        request = self.handshake(origin=b"http://chat.example")
        self.assertEqual(request.responseCode, 429)
        self.assertEqual(error_of(body_of(request)), (429, "too_many_connections"))
        self.assertEqual(self.gate.factories, 0)
        self.assertEqual(self.node.admission.refused, {"too_many_connections": 1})


async def _websocket_status(url: str, origin: str | None) -> tuple[int, bytes]:
    """
    The status (101 if opened) and body of a handshake with C{origin}.
    """
    headers = {} if origin is None else {"Origin": origin}
    try:
        async with websockets_connect(
            url, proxy=None, open_timeout=WAIT, additional_headers=headers
        ):
            return 101, b""
    except InvalidStatus as error:
        return error.response.status_code, error.response.body or b""


def websocket_statuses(url: str, origins: list[str | None]) -> Any:
    """
    The answers to a C{websockets} handshake of C{url} with each origin.
    """

    async def all_of() -> list[tuple[int, bytes]]:
        return [await _websocket_status(url, origin) for origin in origins]

    return run_in_thread(all_of)


async def _open_and_end(url: str, dropped: bool) -> None:
    """
    Open a C{websockets} connection to C{url}, read its first message, and
    close it, or drop its TCP connection when C{dropped}.
    """
    async with websockets_connect(url, proxy=None, open_timeout=WAIT) as connection:
        await asyncio.wait_for(connection.recv(), WAIT)
        if dropped:
            connection.transport.abort()


class NodeTestCase(TestCase):
    """
    A node with C{settings} on a real port.
    """

    settings = Settings()

    def setUp(self) -> None:
        self.running: RunningNode = start_xmeet(self, self.settings)
        self.limits = self.running.node.admission.limits
        self.http = http_client(self)
        self.addCleanup(wait_until, lambda: self.limits.addresses == 0)

    @property
    def own_origin(self) -> str:
        return self.running.url

    def xgate(self, xnest: str = "r") -> str:
        return f"{self.running.ws_url}/xgate/websocket/{xnest}"

    @property
    def sio_websocket(self) -> str:
        return f"{self.running.ws_url}/socket.io/?EIO=4&transport=websocket"

    async def poll_handshake(self, origin: str | None = None) -> tuple[int, bytes]:
        headers = {} if origin is None else {"Origin": origin}
        response = await self.http.get(
            f"{self.running.url}/socket.io/?EIO=4&transport=polling", headers=headers
        )
        return response.code, await treq.content(response)

    async def close_polling(self, body: bytes) -> None:
        """
        Close the long-polling session whose handshake answered C{body}.
        """
        sid = json.loads(body[1:])["sid"]
        response = await self.http.post(
            f"{self.running.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"1"
        )
        await treq.content(response)


class OriginTests(NodeTestCase):
    """
    With the default C{--cors-origins}, pages of other sites cannot open
    WebSockets or long-polling sessions; the node's own pages and clients
    that are not browsers can.
    """

    async def test_xgate(self) -> None:
        """
        xgate: 403 with the JSON error object for a foreign origin; 101
        without an origin and from the node's own origin.
        """
        answers = await websocket_statuses(self.xgate(), [EVIL, None, self.own_origin])
        self.assertEqual([status for status, _ in answers], [403, 101, 101])
        self.assertEqual(error_of(answers[0][1]), (403, "origin_not_allowed"))

    async def test_socketio_websocket(self) -> None:
        """
        C{/socket.io/} over WebSocket: the same.
        """
        answers = await websocket_statuses(self.sio_websocket, [EVIL, None, self.own_origin])
        self.assertEqual([status for status, _ in answers], [403, 101, 101])
        self.assertEqual(error_of(answers[0][1]), (403, "origin_not_allowed"))

    async def test_polling(self) -> None:
        """
        C{/socket.io/} long-polling: the same.
        """
        status, body = await self.poll_handshake(EVIL)
        self.assertEqual((status, error_of(body)), (403, (403, "origin_not_allowed")))
        for origin in [None, self.own_origin]:
            status, body = await self.poll_handshake(origin)
            self.assertEqual(status, 200)
            await self.close_polling(body)

    async def test_refusals_in_metrics(self) -> None:
        """
        C{/metrics} counts refused handshakes by reason.
        """
        await self.poll_handshake(EVIL)
        await self.poll_handshake(EVIL)
        response = await self.http.get(f"{self.running.url}/metrics")
        text = (await treq.content(response)).decode()
        self.assertIn('xmeet_handshakes_refused_total{reason="origin_not_allowed"} 2.0', text)

    async def test_autobahn_client(self) -> None:
        """
        Autobahn's client, given a foreign C{Origin}, sees 403 too.
        """
        self.assertEqual(await handshake_status(self, self.xgate(), {"Origin": EVIL}), 403)


class ListedOriginTests(NodeTestCase):
    """
    C{--cors-origins} lists the foreign pages allowed, on both endpoints.
    """

    settings = Settings(cors_origins=("http://app.example",))

    async def test_listed(self) -> None:
        """
        The listed origin opens xgate and Socket.IO WebSockets; others still
        get 403.
        """
        for url in [self.xgate(), self.sio_websocket]:
            answers = await websocket_statuses(url, ["http://app.example", EVIL])
            self.assertEqual([status for status, _ in answers], [101, 403], url)


class PerAddressTests(NodeTestCase):
    """
    C{max_connections_per_ip} counts xgate connections and Engine.IO
    sessions of one address together.
    """

    settings = Settings(max_connections_per_ip=3, ping_interval=1, ping_timeout=1)

    async def test_counted_together(self) -> None:
        """
        Two xgate connections and a long-polling session fill the limit of
        3: a fourth of any kind gets 429 with the JSON error object; once
        one ends, another gets in.
        """
        first = await connect(self, self.xgate("a"))
        await connect(self, self.xgate("b"))
        status, polling = await self.poll_handshake()
        self.assertEqual(status, 200)
        self.assertEqual(self.limits.connections("127.0.0.1"), 3)
        self.assertEqual(await handshake_status(self, self.xgate("c")), 429)
        answers = await websocket_statuses(self.sio_websocket, [None])
        self.assertEqual(answers[0][0], 429)
        self.assertEqual(error_of(answers[0][1]), (429, "too_many_connections"))
        status, body = await self.poll_handshake()
        self.assertEqual((status, error_of(body)), (429, (429, "too_many_connections")))
        await first.close()
        await wait_until(lambda: self.limits.connections("127.0.0.1") == 2)
        await connect(self, self.xgate("c"))
        await self.close_polling(polling)

    async def test_upgrade_counts_once(self) -> None:
        """
        A Socket.IO client that starts with long-polling and upgrades to
        WebSocket is one session: counted once, counted out once.
        """
        sio = await sio_connect(self, self.running.url, ("polling", "websocket"))
        await wait_until(lambda: sio.client.transport() == "websocket")
        await wait_until(lambda: len(self.running.node.engine.sockets) == 1)
        sockets = list(self.running.node.engine.sockets.values())
        await wait_until(lambda: sockets[0].transport_name == "websocket")
        self.assertEqual(self.limits.connections("127.0.0.1"), 1)
        await sio.disconnect()
        await wait_until(lambda: self.limits.addresses == 0)


class CycleTests(NodeTestCase):
    """
    Every connection and session is counted out exactly once, however it
    ends.
    """

    settings = Settings(max_connections_per_ip=1000, ping_interval=1, ping_timeout=1)

    async def test_cycles_back_to_zero(self) -> None:
        """
        After many xgate connections, Socket.IO WebSockets and long-polling
        sessions opened and ended (closed cleanly, dropped, or abandoned
        until their heartbeat times out), nothing is counted.
        """
        for cycle in range(15):
            dropped = bool(cycle % 2)
            xgate: XgateClient = await connect(self, self.xgate(f"x{cycle % 3}"))
            await run_in_thread(partial(_open_and_end, self.sio_websocket, dropped))
            status, body = await self.poll_handshake()
            self.assertEqual(status, 200)
            if dropped:
                await xgate.abort()
            else:
                await xgate.close()
                await self.close_polling(body)
        await wait_until(lambda: self.limits.addresses == 0, WAIT * 2)


class RateTests(NodeTestCase):
    """
    C{connection_rate_per_ip} with its burst bounds new handshakes of one
    address, of both endpoints together.
    """

    settings = Settings(connection_rate_per_ip=0.01, connection_burst_per_ip=3)

    async def test_burst_then_refused(self) -> None:
        """
        Three handshakes pass (two xgate, one Socket.IO); the fourth gets
        429 C{connection_rate_limited}, whichever endpoint it is for.
        """
        answers = await websocket_statuses(self.xgate(), [None, None])
        answers += await websocket_statuses(self.sio_websocket, [None, None])
        answers += await websocket_statuses(self.xgate(), [None])
        self.assertEqual([status for status, _ in answers], [101, 101, 101, 429, 429])
        self.assertEqual(error_of(answers[3][1]), (429, "connection_rate_limited"))
        self.assertEqual(
            self.running.node.numbers()["xmeet_handshakes_refused"], {"connection_rate_limited": 2}
        )
