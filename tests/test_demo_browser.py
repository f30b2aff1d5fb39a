"""
End-to-end test of the demo chat page served at C{/}, in a real browser.

The page is the client every visitor of a node sees first, and only a
browser can tell whether it turns the frames of PROTOCOL.md section 1 into
a member list, a chat log, history pages and visible errors. So this test
runs Debian's Chromium, headless, through playwright-core
(C{tests/clients/demo_browser.js}) against a node listening in the trial
reactor, and then checks what each person's page showed.

The driver is a separate process started with C{getProcessOutputAndValue}:
the server runs in this same reactor, so nothing here may block it.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

from tests.browser_support import BrowserTestCase
from tests.support import start_xmeet
from xmeet.config import Settings

SEEDS = 60
PAGE_SIZE = 50


def _texts(state: dict[str, Any]) -> list[str]:
    return [item["text"] for item in state["log"] if item["kind"] == "message"]


def _messages(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in state["log"] if item["kind"] == "message"]


def _events(state: dict[str, Any], kind: str) -> list[str]:
    return [item["text"] for item in state["log"] if item["kind"] == kind]


def _names(state: dict[str, Any]) -> list[str]:
    return sorted(member["nickname"] for member in state["members"])


class DemoPageInBrowserTests(BrowserTestCase):
    """
    Three people use the demo page in one room: they see each other, chat,
    whisper, page through history, rename, and leave and come back.
    """

    driver = "demo_browser.js"

    async def _start_server(self) -> Any:
        """
        A node on 127.0.0.1, allowing the driver's burst of 60 messages
        (the default rate limit would rightly drop most of them).
        """
        server = start_xmeet(self, Settings(rate=1000.0, burst=1000))
        if inspect.isawaitable(server):
            server = await server
        return server

    async def test_chat_in_one_room(self) -> None:
        """
        Each page shows what happened in the room, as that person should
        see it.
        """
        server = await self._start_server()
        self.addCleanup(self.wait_for_disconnects, lambda: server.node.gate.connections == 0)
        result = await self.run_driver(server.url)
        shots = result["snapshots"]

        self.assertEqual(result["pageErrors"], [])
        self.assertEqual(result["foreignRequests"], [], "the page must load nothing from elsewhere")

        loaded = shots["alice_loaded"]
        self.assertEqual((loaded["state"], loaded["tabs"]), ("idle", ["Rooms", "IM"]))
        self.assertEqual(loaded["members"], [])

        alone = shots["alice_alone"]
        self.assertEqual((alone["count"], _names(alone)), ("1", ["alice"]))
        self.assertEqual(alone["historyStatus"], "No more history.")

        hello = "Hello from alice <b>not bold</b> & <script>x()</script>"
        hi = "Hi alice, bob here"

        # Alice and Bob see each other, and each other's messages, by name.
        alice = shots["alice_chat"]
        bob = shots["bob_chat"]
        for state in (alice, bob):
            self.assertEqual((state["count"], _names(state)), ("2", ["alice", "bob"]))
            chat = [(m["nickname"], m["text"], m["type"]) for m in _messages(state)]
            self.assertEqual(
                chat,
                [
                    ("alice", hello, "normal"),
                    ("bob", hi, "normal"),
                    ("alice", "psst bob", "private"),
                ],
            )
            # Shown as text: the markup in the message made no elements.
            self.assertEqual(_messages(state)[0]["elements"], 0)
        self.assertIn("bob joined", _events(alice, "join"))
        self.assertEqual(_messages(alice)[2]["privateTag"], "private to bob")
        self.assertEqual(_messages(bob)[2]["privateTag"], "private to you")
        alice_id = next(m["pid"] for m in alice["members"] if m["self"])
        bob_id = next(m["pid"] for m in bob["members"] if m["self"])
        self.assertEqual((alice["self"], bob["self"]), (alice_id, bob_id))
        self.assertNotEqual(alice_id, bob_id)
        self.assertEqual({m["pid"] for m in alice["members"]}, {alice_id, bob_id})
        self.assertEqual(_messages(bob)[0]["from"], alice_id)

        # Carol came without a nickname: the server named her, and she got
        # the newest history page, oldest at the top.
        joined = shots["carol_joined"]
        guest = joined["selfNickname"]
        self.assertRegex(guest, r"^guest-\d+$")
        self.assertEqual(joined["nicknameInput"], guest)
        self.assertEqual(joined["count"], "3")
        self.assertEqual(
            _texts(joined), [f"seed {n}" for n in range(SEEDS - PAGE_SIZE + 1, SEEDS + 1)]
        )
        self.assertEqual({m["source"] for m in _messages(joined)}, {"history"})

        # Loading older history while others chatted shows every message
        # exactly once, in order; the private message was never history.
        paged = shots["carol_history"]
        expected = [hello, hi, *(f"seed {n}" for n in range(1, SEEDS + 1))]
        expected += ["live 1", "live 2", "live 3"]
        self.assertEqual(_texts(paged), expected)
        self.assertEqual(paged["historyStatus"], "No more history.")
        self.assertTrue(paged["historyDisabled"])

        # Bob renamed himself; a bad name got a visible error.
        bob_final = shots["bob_final"]
        self.assertEqual(bob_final["selfNickname"], "bobby")
        self.assertEqual(bob_final["nicknameInput"], "bobby")
        errors = _events(bob_final, "error")
        self.assertEqual(len(errors), 1)
        self.assertIn("32", errors[0])

        # Carol left with a normal close, which her page reports, and came
        # back under the same name.
        closed = shots["carol_closed"]
        self.assertEqual((closed["state"], closed["closeCode"]), ("closed", "1000"))
        self.assertIn("code 1000", closed["status"])
        back = shots["carol_reconnected"]
        self.assertEqual((back["state"], back["selfNickname"]), ("open", guest))
        self.assertNotEqual(back["self"], joined["self"])

        # After a reload the room comes from the address and, with the
        # nickname field left empty, the server's cookie names her again.
        reloaded = shots["carol_reloaded"]
        self.assertEqual((reloaded["state"], reloaded["roomInput"]), ("idle", result["room"]))
        carol_final = shots["carol_final"]
        self.assertEqual((carol_final["state"], carol_final["selfNickname"]), ("open", guest))
        self.assertNotIn(carol_final["self"], {joined["self"], back["self"]})

        alice_final = shots["alice_final"]
        self.assertEqual(alice_final["count"], "3")
        self.assertEqual(_names(alice_final), sorted(["alice", "bobby", guest]))
        self.assertEqual(
            {m["pid"] for m in alice_final["members"]}, {alice_id, bob_id, carol_final["self"]}
        )
        self.assertIn("bob is now known as bobby", _events(alice_final, "changename"))
        self.assertIn(f"{guest} left", _events(alice_final, "leave"))
        self.assertEqual(
            [re.sub(r"\s+", " ", text) for text in _events(alice_final, "join")],
            ["bob joined", *[f"{guest} joined"] * 3],
        )

        # What the pages showed is what the server recorded.
        view = await server.node.rooms.view(result["room"])
        kept = json.loads(view.history_page(0)) + json.loads(view.history_page(1))
        self.assertEqual([entry["payload"] for entry in reversed(kept)], expected)
