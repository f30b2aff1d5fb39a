"""
The history attack of issue 11 on a real node: many new connections into
four xnests, each sending the burst of 40 chat messages of about 60 KB.
Whatever clients send, the node's memory stays within its history budget
(C{--history-memory}) plus a constant.

The attackers are raw WebSocket clients on Twisted's TCP: they send their
frames without waiting for anything but the handshake, and read (and
forget) whatever the node sends, so the node never holds their frames for
them; what it holds is history.
"""

from __future__ import annotations

import struct
from typing import Any

import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from tests.cluster_support import XmeetProcess

__all__ = ["HistoryAttackTests"]

MESSAGE_BYTES = 60_000
BURST = 40
ROOMS = 4
CONNECTIONS = 60
AT_ONCE = ROOMS
"""
One attacker per room at a time: an attacker then gets no other's
messages, only its greeting (at most 50 entries, 3 MB), so the node never
drops it as a stalled reader (beyond C{--max-send-buffer}, 4 MiB) with
its burst unread, however slowly this busy process reads.
"""
LAST_ROOM = f"room{(CONNECTIONS - 1) % ROOMS}"
"""
The room of the last attacker, which attacks alone: its room is then the
last to go idle, the most recently used, and what the node keeps when its
budget forgets idle rooms. (Attackers finishing together leave their rooms
idle in whatever order they finish; the budget forgets the first ones.)
"""
BUDGET_MIB = 8
SLACK_MIB = 40
"""
What the node may grow beyond its history budget: the frames in flight
(a greeting's 50 entries of history is 3 MB per new member, read by it
while the node builds the next), the allocator's arenas and fragments.
The code before the budget grew by the whole attack, 144 MB here.
"""


def _frame(text: bytes) -> bytes:
    """
    A masked text frame, its mask all zeros: the payload goes as it is,
    costing the attacker nothing.
    """
    if len(text) < 126:
        header = struct.pack("!BB", 0x81, 0x80 | len(text))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, len(text))
    return header + b"\0\0\0\0" + text


class Attacker(protocol.Protocol):
    """
    One connection of the attack: upgrade, send the burst and a close
    frame, read until the node closes. (Closing first, with the node's
    frames unread, would reset the connection and lose the burst.)
    """

    def __init__(self, port: int, room: str, number: int) -> None:
        self._request = (
            f"GET /xgate/websocket/{room}?nickname=a{number} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._number = number
        self._head = b""
        self.upgraded = False
        self.done: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self._request)

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded:
            return
        self._head += data
        if b"\r\n\r\n" in self._head:
            self.upgraded = self._head.startswith(b"HTTP/1.1 101")
            self._head = b""
            self._send_burst()

    def _send_burst(self) -> None:
        for message in range(BURST):
            text = f"{self._number}.{message} ".encode().ljust(MESSAGE_BYTES, b"x")
            self.transport.write(_frame(text))
        self.transport.write(b"\x88\x80\0\0\0\0")

    def connectionLost(self, reason: Any) -> None:
        self.done.callback(None)


def _status_kib(pid: int, field: str) -> int:
    """
    A memory figure of process C{pid} from C{/proc/PID/status}, in KiB.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class HistoryAttackTests(TestCase):
    """
    The attack against a node with a small budget.
    """

    timeout = 60

    @defer.inlineCallbacks
    def _attack(self, port: int) -> Any:
        """
        C{CONNECTIONS} attackers spread over the rooms, C{AT_ONCE} at a
        time, the last one alone (see L{LAST_ROOM}); fires with how many
        were upgraded.
        """
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        last = CONNECTIONS - 1
        waves = [range(first, min(first + AT_ONCE, last)) for first in range(0, last, AT_ONCE)]
        upgraded = 0
        for wave in waves + [range(last, CONNECTIONS)]:
            attackers = [Attacker(port, f"room{number % ROOMS}", number) for number in wave]
            yield defer.gatherResults(
                [connectProtocol(endpoint, attacker) for attacker in attackers]
            )
            yield defer.gatherResults([attacker.done for attacker in attackers])
            upgraded += sum(attacker.upgraded for attacker in attackers)
        return upgraded

    @defer.inlineCallbacks
    def test_rss_within_budget(self) -> Any:
        """
        The node's peak RSS grows by no more than its history budget plus
        L{SLACK_MIB}, though the attack sends 18 times the budget; the
        most recently used room still serves its newest message.
        """
        node = XmeetProcess(self, "--history-bytes", "4M", "--history-memory", f"{BUDGET_MIB}M")
        yield node.start()
        before = _status_kib(node.pid, "VmRSS")
        upgraded = yield self._attack(node.port)
        peak = _status_kib(node.pid, "VmHWM")
        self.assertEqual(upgraded, CONNECTIONS)
        grown_mib = (peak - before) / 1024
        self.assertLess(grown_mib, BUDGET_MIB + SLACK_MIB, f"{before} KiB then peak {peak} KiB")
        newest = yield self._newest(node, LAST_ROOM)
        self.assertEqual(newest, f"{CONNECTIONS - 1}.{BURST - 1}")

    @defer.inlineCallbacks
    def _newest(self, node: XmeetProcess, room: str) -> Any:
        """
        The number of the newest message in C{room}'s history.
        """
        response = yield treq.get(
            f"{node.url}/api/xnests/{room}/history?cursor=0", persistent=False
        )
        document = yield response.json()
        return document["body"]["history"][0]["payload"].split(" ", 1)[0]
