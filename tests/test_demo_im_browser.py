"""
End-to-end test of the demo page's "IM" tab, in a real browser.

The tab speaks the IM protocol of PROTOCOL.md section 3 through the page's
own small Socket.IO client (C{xmeet/static/sio.js}, WebSocket transport),
so only a browser can tell whether it works: this test runs Debian's
Chromium, headless, through playwright-core
(C{tests/clients/demo_im_browser.js}) against a node listening in the
trial reactor, and then checks what each user's page showed.

The driver is a separate process started with C{getProcessOutputAndValue}:
the server runs in this same reactor, so nothing here may block it. The
browser toolchain is required: a missing piece fails the test, saying
what to install.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from tests.browser_support import BrowserTestCase
from tests.support import start_xmeet
from xmeet.config import Settings
from xmeet.handlers.im_wire import render
from xmeet.im.client import Caller, IIMClient, Push

SEEDS = 60
PAGE_SIZE = 50

DM = "Hi bob <b>not bold</b> & <script>x()</script>"
DM_BACK = "Hello alice, bob here"
TEAM = "Team <i>x</i>"
FIRST = "first, before bob opened it"
REPLY = "reply from bob"
THIRD = "alice again"
EVERYTHING = [FIRST, REPLY, THIRD, *(f"seed {n}" for n in range(1, SEEDS + 1))]


@implementer(IIMClient)
class _Reader:
    """
    An IM client without a socket, to read what the server kept.
    """

    id = "test-reader"

    def push(self, push: Push) -> None:
        """
        Ignore pushed events.
        """


def _messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["kind"] == "message"]


def _texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["text"] for item in _messages(items)]


def _errors(state: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(error["call"], error["status"], error["code"]) for error in state["errors"]]


class DemoIMTabInBrowserTests(BrowserTestCase):
    """
    Two users log in on the IM tab, exchange direct messages, create a
    conversation, chat in it, page through its history, reconnect and
    leave.
    """

    driver = "demo_im_browser.js"

    async def test_two_users_chat(self) -> None:
        """
        Each page shows what its user should see, errors included, and
        what the pages showed is what the server recorded.
        """
        # A generous rate limit: the driver sends 60 messages in a burst;
        # a short ping interval, so the pages must answer pings.
        settings = Settings(rate=1000.0, burst=1000, ping_interval=0.5, ping_timeout=1.0)
        server = start_xmeet(self, settings)
        self.addCleanup(self.wait_for_disconnects, lambda: not server.node.engine.sockets)
        result = await self.run_driver(server.url)

        self.assertEqual(result["pageErrors"], [])
        self.assertEqual(result["foreignRequests"], [], "the page must load nothing from elsewhere")
        self._check_client(result["clientChecks"])
        users = (result["users"]["alice"], result["users"]["bob"])
        shots = result["snapshots"]
        self._check_log_in(shots, *users)
        self._check_direct(shots, *users)
        conversation_id = self._check_conversation(shots, *users)
        self._check_sessions(result, *users)
        self._check_leave_and_join(shots, *users)

        # What the pages showed is what the server recorded (the pages'
        # sessions ended with the browser: Alice logs in once more).
        reader = _Reader()
        im = server.node.im
        token = render(im.log_in(reader, {"userId": users[0], "socketId": reader.id}))
        self.addCleanup(im.socket_closed, reader)
        payload = {**token, "conversationId": conversation_id, "limit": 100}
        history = render(im.conversation_history(Caller.socket(reader, payload), payload))
        self.assertEqual(
            [message["content"] for message in reversed(history["body"]["messages"])],
            EVERYTHING,
        )

    def _check_client(self, checks: dict[str, Any]) -> None:
        """
        The page's Socket.IO client, on its own: decoding, CONNECT_ERROR,
        the maxPayload guard, a bare logIn ack, and pending acks at
        disconnection.
        """
        self.assertEqual(
            checks["decoded"],
            [
                {"type": 2, "attachments": 0, "nsp": "/", "id": None, "data": ["a", 1]},
                {"type": 2, "attachments": 0, "nsp": "/chat", "id": None, "data": ["a"]},
                {"type": 3, "attachments": 0, "nsp": "/", "id": 12, "data": [{"x": 1}]},
                {"type": 3, "attachments": 0, "nsp": "/chat", "id": 7, "data": []},
                {"type": 0, "attachments": 0, "nsp": "/", "id": None, "data": {"sid": "s"}},
                {"type": 4, "attachments": 0, "nsp": "/", "id": None, "data": {"message": "m"}},
                {
                    "type": 5,
                    "attachments": 1,
                    "nsp": "/",
                    "id": None,
                    "data": ["b", {"_placeholder": True, "num": 0}],
                },
                {"type": 1, "attachments": 0, "nsp": "/", "id": None},
                None,
                None,
            ],
        )
        self.assertEqual(checks["connectError"], "Invalid namespace")
        self.assertEqual(checks["connected"], ["connected", "string"])
        self.assertEqual(checks["tooLarge"], "message larger than the server accepts")
        self.assertEqual(checks["logIn"], ["probe", True, True])
        self.assertEqual(checks["pending"], "disconnected")
        self.assertEqual(checks["reasons"], ["io client disconnect"])
        self.assertEqual(checks["emitWhenDisconnected"], False)
        self.assertEqual(checks["ackWhenDisconnected"], "not connected")

    def _check_log_in(self, shots: dict[str, Any], alice_id: str, bob_id: str) -> None:
        """
        The page opens on the Rooms tab; the IM tab connects when shown; a
        refused logIn is shown with its statusCode, code and message.
        """
        loaded = shots["alice_loaded"]
        self.assertEqual(loaded["tabs"], ["Rooms", "IM"])
        self.assertEqual((loaded["imSelected"], loaded["panelHidden"]), (False, True))
        self.assertEqual((loaded["roomsState"], loaded["state"]), ("idle", "idle"))
        connected = shots["alice_connected"]
        self.assertEqual(connected["state"], "connected")
        self.assertIn(connected["socketId"], connected["status"])
        self.assertEqual(connected["errors"], [])

        bad = shots["alice_bad_login"]
        self.assertEqual(_errors(bad), [("logIn", "400", "bad_request")])
        self.assertIn("userId must be 1 to 128 characters", bad["errors"][0]["text"])
        self.assertTrue(bad["errorsVisible"])
        self.assertFalse(bad["loggedIn"])

        for name, user in (("alice_in", alice_id), ("bob_in", bob_id)):
            state = shots[name]
            self.assertEqual(state["status"], f"Logged in as {user} (socket {state['socketId']}).")
            self.assertEqual(state["conversations"], [])

    def _check_direct(self, shots: dict[str, Any], alice_id: str, bob_id: str) -> None:
        """
        Direct messages, both ways, shown as text; the sender sees the
        delivery the ack reported; an event emitted without an ack had its
        error shown from the `error` event.
        """
        alice, bob = shots["alice_direct"], shots["bob_direct"]
        for state in (alice, bob):
            direct = _messages(state["direct"])
            self.assertEqual(
                [(m["from"], m["text"], m["to"]) for m in direct],
                [(alice_id, DM, f"→ {bob_id}"), (bob_id, DM_BACK, f"→ {alice_id}")],
            )
            self.assertEqual([m["elements"] for m in direct], [0, 0])
        self.assertEqual(
            [(m["source"], m["delivery"]) for m in _messages(alice["direct"])],
            [("sent", f"delivered to {bob_id}"), ("live", None)],
        )
        self.assertEqual([m["source"] for m in _messages(bob["direct"])], ["live", "sent"])
        self.assertEqual(
            {m["id"] for m in _messages(alice["direct"])},
            {m["id"] for m in _messages(bob["direct"])},
        )
        self.assertEqual(
            _errors(alice),
            [("logIn", "400", "bad_request"), ("error event", "401", "unauthorized")],
        )
        self.assertEqual(_errors(bob), [])

    def _check_conversation(self, shots: dict[str, Any], alice_id: str, bob_id: str) -> str:
        """
        Bob is told of the new conversation and of what he has not read;
        both see the chat in order; history pages show each message once.

        @return: the conversation's id.
        """
        unread = shots["bob_unread"]
        self.assertEqual(
            [(c["name"], c["unread"], c["current"]) for c in unread["conversations"]],
            [(TEAM, "1", False)],
        )
        self.assertIn(
            f"You are now a member of the conversation {TEAM}.",
            [item["text"] for item in unread["direct"] if item["kind"] == "info"],
        )

        alice, bob = shots["alice_chat"], shots["bob_chat"]
        conversation_id: str = alice["convId"]
        said = [(alice_id, FIRST), (bob_id, REPLY), (alice_id, THIRD)]
        for state in (alice, bob):
            self.assertEqual((state["convId"], state["convName"]), (conversation_id, TEAM))
            self.assertEqual(state["convMembers"], f"Members: {alice_id} (admin), {bob_id}")
            chat = [(m["from"], m["text"]) for m in _messages(state["conversation"])]
            self.assertEqual(chat, said)
        self.assertEqual(
            [m["source"] for m in _messages(alice["conversation"])], ["sent", "live", "sent"]
        )
        self.assertEqual(
            [m["source"] for m in _messages(bob["conversation"])], ["history", "sent", "live"]
        )
        self.assertEqual(
            [m["id"] for m in _messages(alice["conversation"])],
            [m["id"] for m in _messages(bob["conversation"])],
        )

        newest = shots["bob_newest_page"]
        self.assertEqual(_texts(newest["conversation"]), EVERYTHING[-PAGE_SIZE:])
        self.assertEqual({m["source"] for m in _messages(newest["conversation"])}, {"history"})
        paged = shots["bob_history"]
        self.assertEqual(_texts(paged["conversation"]), EVERYTHING)
        self.assertEqual(paged["historyStatus"], "Loaded 13 older messages. No more history.")
        self.assertTrue(paged["historyDisabled"])
        return conversation_id

    def _check_sessions(self, result: dict[str, Any], alice_id: str, bob_id: str) -> None:
        """
        Reconnecting logs in again; logging out ends the session and
        clears the page, and what was sent meanwhile was queued and came
        at the next logIn; tokens stay in memory; pings are answered.
        """
        shots = result["snapshots"]
        self.assertEqual(_texts(shots["bob_reconnected"]["direct"])[-1], "after the reconnection")

        out = shots["bob_logged_out"]
        self.assertEqual(out["status"], f"Connected (socket {out['socketId']}). Not logged in.")
        self.assertEqual(out["convName"], "No conversation open")
        self.assertEqual(
            _messages(shots["alice_queued"]["direct"])[-1]["delivery"],
            f"queued for {bob_id} (offline)",
        )
        back = _messages(shots["bob_after_leave"]["direct"])
        self.assertEqual([(m["from"], m["text"]) for m in back], [(alice_id, "while you were out")])

        # Alice's page logged in twice: the client check as "probe", then she.
        self.assertEqual(len(result["tokens"]["alice"]), 2)
        self.assertEqual(len(result["tokens"]["bob"]), 3)
        self.assertEqual(result["tokenLeaks"], [])

        for heartbeat in result["heartbeat"].values():
            self.assertGreaterEqual(heartbeat["pongs"], 3)
            self.assertLessEqual(heartbeat["pings"] - heartbeat["pongs"], 1)

    def _check_leave_and_join(self, shots: dict[str, Any], alice_id: str, bob_id: str) -> None:
        """
        Bob left: his page closed the conversation, Alice's said so; he
        joined again by the conversation's id.
        """
        alice, bob = shots["alice_after_leave"], shots["bob_after_leave"]
        self.assertEqual(bob["conversations"], [])
        self.assertEqual(bob["convName"], "No conversation open")
        self.assertEqual([item["text"] for item in bob["conversation"]], [f"You left {TEAM}."])
        self.assertEqual(alice["convMembers"], f"Members: {alice_id} (admin)")

        alice, bob = shots["alice_final"], shots["bob_final"]
        self.assertEqual([(c["name"], c["current"]) for c in bob["conversations"]], [(TEAM, True)])
        self.assertEqual(bob["convId"], alice["convId"])
        self.assertEqual(_texts(bob["conversation"]), EVERYTHING[-PAGE_SIZE:])
        for state in (alice, bob):
            self.assertEqual(state["convMembers"], f"Members: {alice_id} (admin), {bob_id}")
        self.assertEqual(
            [item["text"] for item in alice["conversation"] if item["kind"] == "updated"],
            [f"{bob_id} left", f"{bob_id} joined"],
        )
