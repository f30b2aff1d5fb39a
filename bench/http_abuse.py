"""
Two figures of issue 11 against a real C{twistd -n xmeet} from the working
tree, with its default options:

- slowloris: N clients each send a request line, then one header line
  every 5 s, never ending their headers; meanwhile one normal client
  requests C{/healthz} in a loop. Reports how many slow connections the
  server had closed at its header deadline (10 s) plus one second, how
  many were answered 408, and the normal client's requests and slowest
  answer meanwhile.
- malformed paths: 1,000 C{GET /static/%00} and 1,000
  C{GET /static/%c0%ae%c0%ae/x}; reports their statuses and the bytes the
  node wrote to its log meanwhile.

Prints one JSON line. Usage::

    python bench/http_abuse.py [--clients 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import free_port, raise_fd_limit, twistd_argv, wait_listening  # noqa: E402

HEADER_TIMEOUT = 10.0
INTERVAL = 5.0


async def _slow_client(port: int, closed_at: list[float | None], index: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
    received = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(4096), INTERVAL)
        except asyncio.TimeoutError:
            try:
                writer.write(b"X-Still-Here: 1\r\n")
            except (ConnectionError, RuntimeError):
                break
            continue
        if not chunk:
            break
        received += chunk
    closed_at[index] = time.monotonic()
    writer.close()
    return received


async def _request(port: int, path: bytes) -> tuple[int, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = await reader.read()
    writer.close()
    return int(response.split(b" ", 2)[1]), time.monotonic() - started


async def _slowloris(port: int, clients: int) -> dict[str, Any]:
    closed_at: list[float | None] = [None] * clients
    started = time.monotonic()
    slow = [asyncio.ensure_future(_slow_client(port, closed_at, i)) for i in range(clients)]
    statuses: list[int] = []
    slowest = 0.0
    while time.monotonic() < started + HEADER_TIMEOUT + 1:
        status, took = await _request(port, b"/healthz")
        statuses.append(status)
        slowest = max(slowest, took)
        await asyncio.sleep(0.1)
    left = sum(1 for at in closed_at if at is None)
    done, pending = await asyncio.wait(slow, timeout=INTERVAL)
    for task in pending:
        task.cancel()
    answers = [task.result() for task in done if task.exception() is None]
    return {
        "slow_clients": clients,
        "left_after_deadline_plus_1s": left,
        "answered_408": sum(1 for answer in answers if answer.startswith(b"HTTP/1.1 408 ")),
        "all_closed_after_s": None if left else round(max(filter(None, closed_at)) - started, 2),
        "normal_requests": len(statuses),
        "normal_ok": statuses.count(200),
        "normal_slowest_s": round(slowest, 3),
    }


async def _malformed(port: int, log: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, path in [("nul", b"/static/%00"), ("overlong", b"/static/%c0%ae%c0%ae/x")]:
        before = log.stat().st_size
        statuses = [(await _request(port, path))[0] for _ in range(1000)]
        await asyncio.sleep(0.5)
        figures[name] = {
            "statuses": sorted(set(statuses)),
            "log_bytes": log.stat().st_size - before,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    options = parser.parse_args()
    raise_fd_limit()
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "xmeet.log"
        argv = twistd_argv(port)
        with log.open("wb") as output:
            server = subprocess.Popen(
                argv, cwd=root, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_listening(port, server)
            result = {
                "slowloris": asyncio.run(_slowloris(port, options.clients)),
                "malformed": asyncio.run(_malformed(port, log)),
                "xmeet": subprocess.run(
                    ["git", "describe", "--always", "--dirty"],
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip(),
            }
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
