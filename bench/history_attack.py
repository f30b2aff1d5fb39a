"""
The history attack of issue 11 against one xmeet node with its default
options: new WebSocket connections, each sending the burst (40) of chat
messages of 60 KB, into a few xnests or into many. Prints the node's RSS
before, after and at its peak, beside its history budget.

    python bench/history_attack.py                    # the working tree
    python bench/history_attack.py --xmeet-rev 5a71d87  # a committed revision

bench/README.rst ("The history attack") records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import (
    REPO,
    _git,
    _kill_group,
    export_tree,
    free_port,
    rss_mb,
    twistd_argv,
    wait_listening,
)

MESSAGE_BYTES = 60_000
BURST = 40
AT_ONCE = 10

ATTACKS = {
    "4-rooms": {"rooms": 4, "connections": 100},
    "400-rooms": {"rooms": 400, "connections": 400},
    "1200-rooms": {"rooms": 1200, "connections": 1200},
}
"""
C{4-rooms} is the issue's 4,000 messages into 4 xnests; C{400-rooms}
offers 400 xnests their 1 MiB each, more than the node's 256 MiB budget;
C{1200-rooms} three times as much, to see whether the node's memory still
grows once the budget is full (it does not: the allocator reuses what the
forgotten rooms freed).
"""

CLOSE_FRAME = b"\x88\x80\0\0\0\0"


def _frame(text: bytes) -> bytes:
    """
    A masked text frame with an all-zero mask: the payload goes as it is.
    """
    header = struct.pack("!BBH", 0x81, 0x80 | 126, len(text))
    return header + b"\0\0\0\0" + text


async def _attacker(port: int, room: str, number: int) -> bool:
    """
    Upgrade, send the burst and a close frame, read until the node
    closes; whether the upgrade succeeded.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /xgate/websocket/{room}?nickname=a{number} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    upgraded = head.startswith(b"HTTP/1.1 101")
    if upgraded:
        for message in range(BURST):
            writer.write(_frame(f"{number}.{message} ".encode().ljust(MESSAGE_BYTES, b"x")))
        writer.write(CLOSE_FRAME)
        await writer.drain()
    while await reader.read(1 << 16):
        pass
    writer.close()
    return upgraded


async def _attack(port: int, rooms: int, connections: int) -> int:
    """
    C{connections} attackers, L{AT_ONCE} at a time, over C{rooms} xnests.
    """
    upgraded = 0
    for first in range(0, connections, AT_ONCE):
        wave = [
            _attacker(port, f"room{number % rooms}", number)
            for number in range(first, min(first + AT_ONCE, connections))
        ]
        upgraded += sum(await asyncio.gather(*wave))
    return upgraded


def _status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def run_attack(name: str, xmeet_root: Path) -> dict[str, Any]:
    """
    One attack against a fresh node with default options.
    """
    port = free_port()
    node = subprocess.Popen(
        twistd_argv(port),
        cwd=xmeet_root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, node)
        time.sleep(0.5)
        before = rss_mb([node.pid])
        started = time.monotonic()
        upgraded = asyncio.run(_attack(port, **ATTACKS[name]))
        seconds = time.monotonic() - started
        time.sleep(1.0)
        return {
            "attack": name,
            "connections_upgraded": upgraded,
            "messages": upgraded * BURST,
            "offered_mib": round(upgraded * BURST * MESSAGE_BYTES / 2**20, 1),
            "seconds": round(seconds, 1),
            "rss_before_mib": round(before, 1),
            "rss_after_mib": round(rss_mb([node.pid]), 1),
            "rss_peak_mib": round(_status_mib(node.pid, "VmHWM"), 1),
            "history_budget_mib": 256,
            "alive": node.poll() is None,
        }
    finally:
        _kill_group(node)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--xmeet-rev", help="run this committed revision instead of the tree")
    parser.add_argument("--attack", action="append", choices=sorted(ATTACKS))
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xmeet-history-") as snapshot:
        xmeet_root = REPO
        version = _git("rev-parse", "--short", "HEAD")
        if args.xmeet_rev:
            xmeet_root = export_tree(args.xmeet_rev, Path(snapshot))
            version = _git("rev-parse", "--short", args.xmeet_rev)
        for _ in range(args.reps):
            for name in args.attack or sorted(ATTACKS):
                print(json.dumps({"xmeet": version, **run_attack(name, xmeet_root)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
