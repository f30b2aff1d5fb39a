"""
End-to-end tests of the IM protocol (PROTOCOL.md section 3) on a real port
with Socket.IO clients nobody here wrote: the npm C{socket.io-client} 4.x,
driven by C{tests/clients/im_client.js} in a Node subprocess, and the
C{python-socketio} client, whose blocking calls run in the reactor's
thread pool while the server runs in the test's reactor.

Both clients play the same scripts and report in the same shape (every
ack by step name, every event of every socket in order), and one set of
checks reads both reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import socketio
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support import start_xmeet
from tests.xgate_client import wait_until
from xmeet.config import Settings
from xmeet.core.errors import ERROR_CODES

__all__ = [
    "CLIENTS",
    "IMConversationTests",
    "IMErrorTests",
    "PythonScenario",
    "SioClient",
    "WAIT",
    "check_error",
    "check_log_in",
    "run_node",
    "sio_connect",
]

WAIT = 5.0
"""
Seconds any single wait of a test may take.
"""

CLIENTS = Path(__file__).parent / "clients"
_FROM_THREADS = cast(IReactorFromThreads, reactor)
TOKEN = re.compile(r"[0-9a-f]{32}\Z")
MESSAGE_ID = re.compile(r"[A-Za-z0-9._~-]{10,}\Z")
"""
A message id: 10 or more characters unreserved in URLs (RFC 3986).
"""
DEFAULT_PROTECTED = ["name", "members", "admin"]
SECRET = "s3cret"


class _NodeProcess(ProcessProtocol):
    """
    Collects a Node process's output and tells when it ended.
    """

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.exit_code: int | None = None
        self.ended = False
        self._waiters: list[Deferred[int | None]] = []

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        self.exit_code = getattr(reason.value, "exitCode", None)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(self.exit_code)

    def when_ended(self) -> Deferred[int | None]:
        """
        Fires with the exit code once the process has ended.
        """
        if self.ended:
            return succeed(self.exit_code)
        waiter: Deferred[int | None] = Deferred()
        self._waiters.append(waiter)
        return waiter


def run_node(testcase: TestCase, script: str, *args: str) -> Deferred[Any]:
    """
    Run C{tests/clients/SCRIPT ARGS...} with Node; fires with the JSON
    report it printed last once it exited 0, fails with its output
    otherwise. A process still running when the test ends is killed.
    """
    node = shutil.which("node")
    if node is None or not (CLIENTS / "node_modules" / "socket.io-client").is_dir():
        raise AssertionError("node and tests/clients/node_modules are required")
    protocol = _NodeProcess()
    process = reactor.spawnProcess(
        protocol,
        node,
        [node, str(CLIENTS / script), *args],
        env=dict(os.environ),
        path=str(CLIENTS),
    )

    def kill() -> Deferred[int | None]:
        if not protocol.ended:
            process.signalProcess("KILL")
        return protocol.when_ended()

    testcase.addCleanup(kill)

    def ended(code: int | None) -> Any:
        out = b"".join(protocol.out).decode("utf-8", "replace")
        err = b"".join(protocol.err).decode("utf-8", "replace")
        if code != 0:
            raise AssertionError(f"{script} {args[1:2]} exited {code}:\n{out}\n{err}")
        return json.loads(out.strip().splitlines()[-1])

    return protocol.when_ended().addTimeout(40, reactor).addCallback(ended)


class SioClient:
    """
    A C{python-socketio} client seen from the reactor: its blocking calls
    run in the reactor's thread pool, and every event it receives is
    recorded, in the reactor thread, as C{[event, data]} in L{events}.

    The Engine.IO client of python-socketio hands every message to a new
    thread, so two events arriving together could be recorded in either
    order; this client handles its messages in its reading thread instead,
    in the order they arrived, as the other Socket.IO clients do.
    """

    def __init__(self, transports: Iterable[str]) -> None:
        self.transports = list(transports)
        self.client = socketio.Client(reconnection=False, handle_sigint=False)
        self.events: list[list[Any]] = []
        self.client.on("*", self._received)
        trigger = self.client.eio._trigger_event

        def in_arrival_order(event: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["run_async"] = False
            return trigger(event, *args, **kwargs)

        self.client.eio._trigger_event = in_arrival_order

    def _received(self, event: str, *args: Any) -> None:
        _FROM_THREADS.callFromThread(self.events.append, [event, args[0] if args else None])

    @property
    def id(self) -> str:
        """
        The socket id of the default namespace.
        """
        sid = self.client.get_sid("/")
        assert sid is not None
        return str(sid)

    def named(self, event: str) -> list[Any]:
        """
        The data of every C{event} received so far.
        """
        return [data for name, data in self.events if name == event]

    def wait_for(self, event: str, count: int = 1) -> Deferred[None]:
        """
        Fires once C{count} C{event}s have arrived.
        """
        return wait_until(lambda: len(self.named(event)) >= count, WAIT)

    def call(self, event: str, payload: Any = None) -> Deferred[Any]:
        """
        Emit C{event} with C{payload} (none if C{None}) and an ack
        callback; fires with the acknowledgement.
        """
        acked: Deferred[Any] = Deferred()

        def answer(result: Any) -> None:
            if not acked.called:
                acked.callback(result)

        def callback(*args: Any) -> None:
            _FROM_THREADS.callFromThread(answer, args[0] if len(args) == 1 else list(args))

        def failed(failure: Failure) -> None:
            if not acked.called:
                acked.errback(failure)

        deferToThread(self.client.emit, event, payload, callback=callback).addErrback(failed)
        return acked.addTimeout(WAIT, reactor)

    def emit(self, event: str, payload: Any = None) -> Deferred[None]:
        """
        Emit C{event} with C{payload} and no ack callback.
        """
        return deferToThread(self.client.emit, event, payload)

    def _close(self) -> None:
        """
        Close the Engine.IO session, in a thread of the pool.

        The client's writing thread stops at its next turn once the client
        is disconnecting: a close packet queued while it is still sending
        (the request of the last emit, on long-polling) may then never be
        sent, and the server would see the client go only at its ping
        timeout. So this waits until everything queued was sent, and then
        queues the close packet alone (which ends every namespace of the
        session on the server, as a closed browser tab does).
        """
        engine = self.client.eio
        deadline = time.monotonic() + WAIT
        while engine.state == "connected" and engine.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise AssertionError(f"python-socketio still sending after {WAIT}s")
            time.sleep(0.01)
        engine.disconnect()

    def disconnect(self) -> Deferred[None]:
        """
        Disconnect and wait for the client's threads to end.
        """
        return deferToThread(self._close)


async def sio_connect(
    testcase: TestCase, url: str, transports: Iterable[str] = ("websocket",)
) -> SioClient:
    """
    A connected L{SioClient} that received its C{connected} event; it is
    disconnected when the test ends.
    """
    sio = SioClient(transports)
    testcase.addCleanup(sio.disconnect)
    await deferToThread(sio.client.connect, url, transports=sio.transports, wait_timeout=WAIT)
    await sio.wait_for("connected")
    return sio


def _sign(user_id: str) -> str:
    return hmac.new(SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()


class PythonScenario:
    """
    The scenarios of C{im_client.js}, played with python-socketio clients,
    reporting in the same shape.
    """

    def __init__(self, testcase: TestCase, url: str, secret: bool = False) -> None:
        self.testcase = testcase
        self.url = url
        self.secret = secret
        self.clients: dict[str, SioClient] = {}
        self.tokens: dict[str, str] = {}
        self.report: dict[str, Any] = {"ids": {}, "events": {}, "acks": {}}

    async def open(self, name: str, transports: Iterable[str]) -> None:
        """
        Connect the socket C{name}.
        """
        client = await sio_connect(self.testcase, self.url, transports)
        self.clients[name] = client
        self.report["ids"][name] = client.id
        self.report["events"][name] = client.events

    async def call(self, name: str, event: str, payload: Any, step: str | None = None) -> Any:
        """
        Call C{event} from socket C{name}; keep the ack as C{step}.
        """
        ack = await self.clients[name].call(event, payload)
        if step is not None:
            self.report["acks"][step] = ack
        return ack

    async def log_in(self, name: str, user_id: str, step: str) -> None:
        """
        Log socket C{name} in as C{user_id}, signed with a secret.
        """
        payload = {"userId": user_id, "socketId": self.clients[name].id}
        if self.secret:
            payload["signature"] = _sign(user_id)
        ack = await self.call(name, "logIn", payload, step)
        self.tokens[name] = ack["sessionToken"]

    async def conversation(self) -> dict[str, Any]:
        """
        The scripted conversation of ann (two devices), bob and cid.
        """
        tokens = self.tokens
        await self.open("ann1", ["websocket"])
        await self.open("ann2", ["polling"])
        await self.open("bob", ["polling", "websocket"])
        await self.log_in("ann1", "ann", "login_ann1")
        await self.log_in("ann2", "ann", "login_ann2")
        await self.log_in("bob", "bob", "login_bob")
        await self.call(
            "bob",
            "message/direct",
            {
                "sessionToken": tokens["bob"],
                "targetIds": ["ann", "cid"],
                "type": "text",
                "textContent": "hi ann and cid",
            },
            "dm1",
        )
        await self.call(
            "ann1",
            "message/direct",
            {
                "sessionToken": tokens["ann1"],
                "targetIds": ["bob"],
                "type": "text",
                "textContent": "hi bob",
            },
            "dm2",
        )
        added = await self.call(
            "ann1",
            "conversation/add",
            {
                "sessionToken": tokens["ann1"],
                "name": "trio",
                "members": ["bob", "cid"],
                "topic": "plans",
                "meta": {"color": "blue", "tags": [1, 2]},
            },
            "add",
        )
        conversation_id = added["body"]["id"]

        def on(token: str, **fields: Any) -> dict[str, Any]:
            return {"sessionToken": token, "conversationId": conversation_id, **fields}

        await self.call(
            "ann1",
            "message/conversation",
            on(tokens["ann1"], ignoreIds=[], type="text", content={"text": "one"}),
            "msg1",
        )
        await self.call(
            "bob",
            "message/conversation",
            on(tokens["bob"], ignoreIds=["cid"], type="text", content="two"),
            "msg2",
        )
        await self.call(
            "bob",
            "message/conversation",
            on(tokens["bob"], type="text", content={"text": "three"}),
            "msg3",
        )
        await self.call(
            "bob", "conversation/update", on(tokens["bob"], set={"topic": "dinner"}), "update_topic"
        )
        await self.call(
            "bob", "conversation/update", on(tokens["bob"], set={"name": "bob's"}), "update_name"
        )
        await self.open("cid", ["websocket"])
        await self.log_in("cid", "cid", "login_cid")
        await wait_until(lambda: len(self.clients["cid"].events) >= 4, WAIT)
        await self.call("cid", "logOut", {"sessionToken": tokens["cid"]}, "logout_cid")
        await self.log_in("cid", "cid", "relogin_cid")
        await self.call("cid", "conversation/list", {"sessionToken": tokens["cid"]}, "list")
        await self.call("cid", "conversation/history", on(tokens["cid"]), "history")
        await self.call("cid", "conversation/history", on(tokens["cid"], limit=2), "history_page")
        before = self.report["acks"]["msg2"]["body"]["id"]
        await self.call(
            "cid",
            "conversation/history",
            on(tokens["cid"], before=before, limit=2),
            "history_before",
        )
        await self.call("cid", "conversation/leave", on(tokens["cid"]), "leave")
        await self.call("cid", "conversation/join", on(tokens["cid"]), "join")
        await self.call("bob", "conversation/get", on(tokens["bob"]), "get")
        await self.call("ann2", "logOut", {"sessionToken": tokens["ann2"]}, "logout_ann2")
        await self.call(
            "bob",
            "message/direct",
            {
                "sessionToken": tokens["bob"],
                "targetIds": ["ann"],
                "type": "text",
                "textContent": "still there?",
            },
            "dm3",
        )
        await self.call(
            "ann2",
            "message/direct",
            {
                "sessionToken": tokens["ann2"],
                "targetIds": ["bob"],
                "type": "text",
                "textContent": "logged out",
            },
            "after_logout",
        )
        await self.clients["bob"].emit(
            "message/direct",
            {
                "sessionToken": tokens["bob"],
                "targetIds": ["ann"],
                "type": "text",
                "textContent": "no ack",
            },
        )
        await self.clients["ann1"].wait_for("message/direct", 3)
        for name in ("ann1", "ann2", "bob", "cid"):
            await self.call(name, "conversation/list", {})
        return self.report

    def _substitute(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            if value.startswith("@sign:"):
                return _sign(value[len("@sign:") :])
            name, _, what = value[1:].partition(".")
            if what == "token":
                return self.tokens[name]
            if what == "socket":
                return self.report["ids"][name]
            return self.report["acks"]["add_" + name]["body"]["id"]
        if isinstance(value, list):
            return [self._substitute(item) for item in value]
        if isinstance(value, dict):
            return {key: self._substitute(item) for key, item in value.items()}
        return value

    async def cases(self, cases: list[dict[str, Any]]) -> dict[str, Any]:
        """
        Set up eve, fay and conversations c and d, then emit every case
        with and without an ack callback.
        """
        await self.open("eve", ["websocket"])
        await self.open("fay", ["polling"])
        await self.log_in("eve", "eve", "login_eve")
        await self.log_in("fay", "fay", "login_fay")
        token = self.tokens["eve"]
        await self.call(
            "eve",
            "conversation/add",
            {"sessionToken": token, "name": "c", "members": ["fay"]},
            "add_c",
        )
        await self.call("eve", "conversation/add", {"sessionToken": token, "name": "d"}, "add_d")
        results = self.report["results"] = []
        for case in cases:
            client = self.clients[case["as"]]
            payload = self._substitute(case.get("payload"))
            ack = await client.call(case["event"], payload)
            seen = len(client.named("error"))
            await client.emit(case["event"], payload)
            await client.wait_for("error", seen + 1)
            results.append({"ack": ack, "event": client.named("error")[seen]})
        for name in ("c", "d"):
            await self.call(
                "eve",
                "conversation/get",
                {"sessionToken": token, "conversationId": self._substitute("@" + name)},
                "final_" + name,
            )
        return self.report


def check_error(test: TestCase, answer: Any, status: int, context: Any = None) -> None:
    """
    C{answer} is the error object of C{status}: C{{statusCode, error:
    {code, message}}} with the standard code and some message.
    """
    where = (context, answer)
    test.assertEqual(answer["statusCode"], status, where)
    test.assertEqual(set(answer), {"statusCode", "error"}, where)
    test.assertEqual(set(answer["error"]), {"code", "message"}, where)
    test.assertEqual(answer["error"]["code"], ERROR_CODES[status], where)
    test.assertIsInstance(answer["error"]["message"], str)
    test.assertTrue(answer["error"]["message"], where)


def check_log_in(test: TestCase, ack: Any, user_id: str, socket_id: str) -> str:
    """
    C{ack} is the bare C{logIn} answer for C{user_id} on C{socket_id};
    returns its token.
    """
    test.assertEqual(
        ack, {"userId": user_id, "socketId": socket_id, "sessionToken": ack["sessionToken"]}
    )
    test.assertRegex(ack["sessionToken"], TOKEN)
    return str(ack["sessionToken"])


class _Window:
    """
    The epoch milliseconds a scenario ran in, for C{createdAt}.
    """

    def __init__(self) -> None:
        self.start = int(time.time() * 1000)
        self.end: int | None = None

    def close(self) -> None:
        """
        The scenario has ended.
        """
        self.end = int(time.time() * 1000) + 1

    def check(self, test: TestCase, created_at: Any) -> None:
        """
        C{created_at} is an integer within the window.
        """
        test.assertIsInstance(created_at, int)
        assert self.end is not None
        test.assertTrue(self.start <= created_at <= self.end, (self.start, created_at, self.end))


def check_conversation(test: TestCase, report: dict[str, Any], window: _Window) -> None:
    """
    Every ack and every event of the scripted conversation, exactly.
    """
    ids, acks, events = report["ids"], report["acks"], report["events"]
    test.assertEqual(len(set(ids.values())), 4)
    tokens = [
        check_log_in(test, acks[step], user, ids[socket])
        for step, user, socket in [
            ("login_ann1", "ann", "ann1"),
            ("login_ann2", "ann", "ann2"),
            ("login_bob", "bob", "bob"),
            ("login_cid", "cid", "cid"),
            ("relogin_cid", "cid", "cid"),
        ]
    ]
    test.assertEqual(len(set(tokens)), 5)

    def direct(step: str, sent: list[str], online: list[str]) -> str:
        ack = acks[step]
        offline = [user for user in sent if user not in online]
        body = {"id": ack["body"]["id"], "sent": sent, "online": online, "offline": offline}
        test.assertEqual(ack, {"statusCode": 201, "body": body})
        return str(ack["body"]["id"])

    dm_ids = {
        "dm1": direct("dm1", ["ann", "cid"], ["ann"]),
        "dm2": direct("dm2", ["bob"], ["bob"]),
        "dm3": direct("dm3", ["ann"], ["ann"]),
    }
    add = acks["add"]
    conversation_id = add["body"]["id"]
    created = add["body"]["conversation"]["createdAt"]
    window.check(test, created)
    c0 = {
        "id": conversation_id,
        "name": "trio",
        "admin": ["ann"],
        "members": ["ann", "bob", "cid"],
        "protected": DEFAULT_PROTECTED,
        "createdAt": created,
        "topic": "plans",
        "meta": {"color": "blue", "tags": [1, 2]},
    }
    test.assertEqual(add, {"statusCode": 201, "body": {"id": conversation_id, "conversation": c0}})
    c1 = {**c0, "topic": "dinner"}
    c2 = {**c1, "members": ["ann", "bob"]}

    def sent(step: str, online: list[str], offline: list[str]) -> str:
        ack = acks[step]
        body = {"id": ack["body"]["id"], "sent": {"online": online, "offline": offline}}
        test.assertEqual(ack, {"statusCode": 201, "body": body})
        return str(ack["body"]["id"])

    msg_ids = {
        "msg1": sent("msg1", ["bob"], ["cid"]),
        "msg2": sent("msg2", ["ann"], []),
        "msg3": sent("msg3", ["ann"], ["cid"]),
    }
    every_id = [*dm_ids.values(), *msg_ids.values(), conversation_id]
    test.assertEqual(len(set(every_id)), len(every_id))
    for message_id in every_id:
        test.assertRegex(message_id, MESSAGE_ID)

    test.assertEqual(acks["update_topic"], {"statusCode": 200, "body": {"conversation": c1}})
    check_error(test, acks["update_name"], 403)
    test.assertEqual(acks["logout_cid"], {"statusCode": 200, "body": {}})
    test.assertEqual(acks["list"], {"statusCode": 200, "body": {"conversations": [c1]}})

    history = acks["history"]["body"]["messages"]
    test.assertEqual(acks["history"], {"statusCode": 200, "body": {"messages": history}})
    m3, m2, m1 = history
    for message in history:
        window.check(test, message["createdAt"])
    common = {"conversationId": conversation_id, "type": "text"}
    test.assertEqual(
        history,
        [
            {"id": msg_ids["msg3"], **common, "from": "bob", "content": {"text": "three"}}
            | {"createdAt": m3["createdAt"]},
            {"id": msg_ids["msg2"], **common, "from": "bob", "content": "two"}
            | {"createdAt": m2["createdAt"]},
            {"id": msg_ids["msg1"], **common, "from": "ann", "content": {"text": "one"}}
            | {"createdAt": m1["createdAt"]},
        ],
    )
    test.assertTrue(m1["createdAt"] <= m2["createdAt"] <= m3["createdAt"])
    test.assertEqual(acks["history_page"], {"statusCode": 200, "body": {"messages": [m3, m2]}})
    test.assertEqual(acks["history_before"], {"statusCode": 200, "body": {"messages": [m1]}})
    test.assertEqual(acks["leave"], {"statusCode": 200, "body": {"conversation": c2}})
    test.assertEqual(acks["join"], {"statusCode": 200, "body": {"conversation": c1}})
    test.assertEqual(acks["get"], {"statusCode": 200, "body": {"conversation": c1}})
    test.assertEqual(acks["logout_ann2"], {"statusCode": 200, "body": {}})
    check_error(test, acks["after_logout"], 401)

    def dm(step: str, sender: str, targets: list[str], text: str) -> list[Any]:
        received = [
            data for name, data in events["ann1"] + events["bob"] if name == "message/direct"
        ]
        mine = [data for data in received if data["id"] == dm_ids[step]]
        test.assertTrue(mine, step)
        window.check(test, mine[0]["createdAt"])
        body = {
            "id": dm_ids[step],
            "from": sender,
            "targetIds": targets,
            "type": "text",
            "textContent": text,
            "createdAt": mine[0]["createdAt"],
        }
        return ["message/direct", body]

    d1 = dm("dm1", "bob", ["ann", "cid"], "hi ann and cid")
    d2 = dm("dm2", "ann", ["bob"], "hi bob")
    d3 = dm("dm3", "bob", ["ann"], "still there?")
    e1, e2, e3 = (["message/conversation", message] for message in (m1, m2, m3))
    u0, u1, u2 = (["conversation/updated", {"conversation": c}] for c in (c0, c1, c2))

    def connected(socket: str) -> list[Any]:
        return ["connected", {"socketId": ids[socket]}]

    d4 = events["ann1"][-1]
    test.assertEqual(d4[0], "message/direct")
    window.check(test, d4[1]["createdAt"])
    test.assertRegex(d4[1]["id"], MESSAGE_ID)
    test.assertNotIn(d4[1]["id"], every_id)
    unacknowledged = {
        "id": d4[1]["id"],
        "from": "bob",
        "targetIds": ["ann"],
        "type": "text",
        "textContent": "no ack",
        "createdAt": d4[1]["createdAt"],
    }
    test.assertEqual(d4, ["message/direct", unacknowledged])
    test.assertEqual(events["ann1"], [connected("ann1"), d1, e2, e3, u1, u2, u1, d3, d4])
    test.assertEqual(events["ann2"], [connected("ann2"), d1, u0, e1, e2, e3, u1, u2, u1])
    test.assertEqual(events["bob"], [connected("bob"), d2, u0, e1, u2, u1])
    test.assertEqual(events["cid"], [connected("cid"), d1, e1, e3])


class IMConversationTests(TestCase):
    """
    The scripted conversation between ann on two devices, bob, and cid who
    logs in late: with each client, every ack and every event is as the
    contract says, and nothing more arrives.
    """

    timeout = 60

    async def test_socket_io_client(self) -> None:
        """
        The conversation with socket.io-client 4 (ann's devices on
        WebSocket and on polling, bob upgrading from polling).
        """
        running = start_xmeet(self)
        window = _Window()
        report = await run_node(self, "im_client.js", running.url, "conversation")
        window.close()
        check_conversation(self, report, window)
        self.assertEqual(running.node.im.queued("cid"), 0)

    async def test_python_socketio(self) -> None:
        """
        The conversation with the python-socketio client.
        """
        running = start_xmeet(self)
        window = _Window()
        report = await PythonScenario(self, running.url).conversation()
        window.close()
        check_conversation(self, report, window)
        self.assertEqual(running.node.im.queued("cid"), 0)


def _case(status: int, who: str, event: str, *payload: Any) -> tuple[int, dict[str, Any]]:
    """
    The case of C{im_client.js}: C{event} from socket C{who}, with the
    payload if one is given (with none, the event carries no argument).
    """
    case: dict[str, Any] = {"as": who, "event": event}
    if payload:
        (case["payload"],) = payload
    return status, case


BIG = "é" * 1001
"""
1001 characters, 2002 bytes: over a 2000-byte C{max_message_size}.
"""

_EVE = "@eve.token"
_FAY = "@fay.token"


def _direct(token: Any = _EVE, **fields: Any) -> dict[str, Any]:
    """
    A valid C{message/direct} payload to fay, but for C{fields} (a field
    set to C{None} is sent as JSON null); without C{sessionToken} if
    C{token} is C{None}.
    """
    payload = {"targetIds": ["fay"], "type": "text", "textContent": "x", **fields}
    if token is not None:
        payload["sessionToken"] = token
    return payload


def _on(conversation: str, token: str = _EVE, **fields: Any) -> dict[str, Any]:
    """
    A payload naming C{conversation}, with C{token} and C{fields}.
    """
    return {"sessionToken": token, "conversationId": conversation, **fields}


ERROR_CASES = [
    _case(400, "eve", "logIn"),
    _case(400, "eve", "logIn", "eve"),
    _case(400, "eve", "logIn", {"socketId": "@eve.socket"}),
    _case(400, "eve", "logIn", {"userId": 7, "socketId": "@eve.socket"}),
    _case(400, "eve", "logIn", {"userId": "", "socketId": "@eve.socket"}),
    _case(400, "eve", "message/direct", [_EVE]),
    _case(400, "eve", "message/direct", _direct(targetIds="fay")),
    _case(400, "eve", "message/direct", _direct(targetIds=[])),
    _case(400, "eve", "message/direct", _direct(type=None)),
    _case(400, "eve", "message/direct", _direct(textContent=5)),
    _case(400, "eve", "message/conversation", _on("@c", type="text")),
    _case(400, "eve", "conversation/add", {"sessionToken": _EVE, "members": ["fay"]}),
    _case(400, "eve", "conversation/add", {"sessionToken": _EVE, "name": "x", "id": "mine"}),
    _case(400, "eve", "conversation/update", _on("@c", set={})),
    _case(400, "eve", "conversation/update", _on("@c", set={"admin": ["zed"]})),
    _case(400, "eve", "conversation/get", _on("@c") | {"conversationId": 5}),
    _case(400, "eve", "conversation/history", _on("@c", limit=0)),
    _case(400, "eve", "conversation/history", _on("@c", limit=101)),
    _case(400, "eve", "conversation/history", _on("@c", limit="5")),
    _case(401, "eve", "message/direct", _direct(None)),
    _case(401, "eve", "message/direct", _direct("0" * 32)),
    _case(401, "eve", "conversation/list", {}),
    _case(401, "eve", "logOut", {"sessionToken": "f" * 32}),
    _case(403, "eve", "message/direct", _direct(_FAY)),
    _case(403, "eve", "conversation/get", _on("@c", _FAY)),
    _case(403, "eve", "logIn", {"userId": "eve", "socketId": "@fay.socket"}),
    _case(403, "fay", "message/conversation", _on("@d", _FAY, type="text", content="hi")),
    _case(403, "fay", "conversation/update", _on("@c", _FAY, set={"name": "mine"})),
    _case(403, "fay", "conversation/update", _on("@c", _FAY, set={"admin": ["eve", "fay"]})),
    _case(403, "fay", "conversation/update", _on("@c", _FAY, set={"protected": []})),
    _case(403, "fay", "conversation/update", _on("@d", _FAY, set={"topic": "mine"})),
    _case(403, "fay", "conversation/history", _on("@d", _FAY)),
    _case(403, "fay", "conversation/leave", _on("@d", _FAY)),
    _case(404, "eve", "conversation/get", _on("nope")),
    _case(404, "eve", "conversation/join", _on("nope")),
    _case(404, "eve", "conversation/leave", _on("nope")),
    _case(404, "eve", "conversation/update", _on("nope", set={"topic": 1})),
    _case(404, "eve", "conversation/history", _on("nope")),
    _case(404, "eve", "message/conversation", _on("nope", type="text", content=1)),
    _case(413, "eve", "message/direct", _direct(textContent=BIG)),
    _case(413, "eve", "message/conversation", _on("@c", type="text", content={"text": BIG})),
    _case(413, "eve", "conversation/add", {"sessionToken": _EVE, "name": "n" * 257}),
    _case(413, "eve", "conversation/update", _on("@c", set={"blob": BIG})),
]
"""
Every error of the contract but 429 and the signature's 401, as
C{(status, case)}; run with C{max_message_size=2000}.
"""

RATE_CASES = [
    _case(429, "eve", "message/direct", _direct()),
    _case(429, "eve", "message/conversation", _on("@c", type="text", content="hi")),
    _case(429, "eve", "conversation/add", {"sessionToken": _EVE, "name": "e"}),
]
"""
Calls of eve once the set-up's two conversations took her whole burst.
"""

SIGNED_CASES = [
    _case(401, "eve", "logIn", {"userId": "gus", "socketId": "@eve.socket"}),
    _case(401, "eve", "logIn", {"userId": "gus", "socketId": "@eve.socket", "signature": 5}),
    _case(401, "eve", "logIn", {"userId": "gus", "socketId": "@eve.socket", "signature": "0" * 64}),
    _case(
        401, "eve", "logIn", {"userId": "gus", "socketId": "@eve.socket", "signature": "@sign:eve"}
    ),
]
"""
C{logIn} on a server with an auth secret: missing, malformed, wrong, and
another user's signature.
"""


def check_cases(
    test: TestCase, report: dict[str, Any], cases: list[tuple[int, dict[str, Any]]]
) -> None:
    """
    The set-up went as it should, each case got the error object of its
    status both as ack and as C{error} event, and nothing changed.
    """
    ids, acks, events = report["ids"], report["acks"], report["events"]
    check_log_in(test, acks["login_eve"], "eve", ids["eve"])
    check_log_in(test, acks["login_fay"], "fay", ids["fay"])
    conversations = {}
    for name, members in (("c", ["eve", "fay"]), ("d", ["eve"])):
        ack = acks["add_" + name]
        conversation = {
            "id": ack["body"]["id"],
            "name": name,
            "admin": ["eve"],
            "members": members,
            "protected": DEFAULT_PROTECTED,
            "createdAt": ack["body"]["conversation"]["createdAt"],
        }
        test.assertEqual(
            ack,
            {"statusCode": 201, "body": {"id": conversation["id"], "conversation": conversation}},
        )
        test.assertEqual(
            acks["final_" + name], {"statusCode": 200, "body": {"conversation": conversation}}
        )
        conversations[name] = conversation
    test.assertEqual(len(report["results"]), len(cases))
    expected: dict[str, list[Any]] = {
        "eve": [["connected", {"socketId": ids["eve"]}]],
        "fay": [
            ["connected", {"socketId": ids["fay"]}],
            ["conversation/updated", {"conversation": conversations["c"]}],
        ],
    }
    for (status, case), result in zip(cases, report["results"], strict=True):
        check_error(test, result["ack"], status, case)
        test.assertEqual(result["event"], result["ack"], case)
        expected[case["as"]].append(["error", result["ack"]])
    test.assertEqual(events, expected)


class IMErrorTests(TestCase):
    """
    Every error of the contract, with each client: the exact status and
    code as ack and, without an ack callback, as an C{error} event; a
    failed call changes nothing and pushes nothing.
    """

    timeout = 60

    async def run_cases(
        self, settings: Settings, cases: list[tuple[int, dict[str, Any]]], secret: bool = False
    ) -> None:
        """
        Run C{cases} against a node with C{settings}, with socket.io-client
        and then with python-socketio, each on a node of its own.
        """
        spec: dict[str, Any] = {"cases": [case for _, case in cases]}
        if secret:
            spec["secret"] = SECRET
        running = start_xmeet(self, settings)
        report = await run_node(self, "im_client.js", running.url, "cases", json.dumps(spec))
        check_cases(self, report, cases)
        running = start_xmeet(self, settings)
        scenario = PythonScenario(self, running.url, secret)
        check_cases(self, await scenario.cases(spec["cases"]), cases)

    async def test_errors(self) -> None:
        """
        400 malformed, 401 missing or unknown token, 403 token of another
        socket, socketId not one's own, non-member sender or reader,
        non-admin changing a protected field, 404 unknown conversation,
        413 too large.
        """
        await self.run_cases(Settings(max_message_size=2000), ERROR_CASES)

    async def test_rate_limited(self) -> None:
        """
        Beyond the burst, messages and new conversations get 429.
        """
        await self.run_cases(Settings(rate=0.01, burst=2), RATE_CASES)

    async def test_signed_log_in(self) -> None:
        """
        With an auth secret, a signed C{logIn} (the set-up's) works; a
        missing, malformed, wrong or borrowed signature gets 401.
        """
        await self.run_cases(Settings(auth_secret=SECRET), SIGNED_CASES, secret=True)
