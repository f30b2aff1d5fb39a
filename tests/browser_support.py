"""
What the browser tests of the demo page share: finding the toolchain,
running a Node driver of headless Chromium, waiting for its connections to
end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

__all__ = ["CLIENTS", "BrowserTestCase"]

CLIENTS = Path(__file__).resolve().parent / "clients"
CHROMIUM = Path(os.environ.get("XMEET_CHROMIUM", "/usr/bin/chromium"))

#: Set to a directory to have the drivers save screenshots there.
SCREENSHOTS_ENV = "XMEET_DEMO_SCREENSHOTS"


class BrowserTestCase(TestCase):
    """
    A test that drives the demo page in headless Chromium through a Node
    driver script (playwright-core) printing a JSON report.

    @cvar driver: the driver script's file name in C{tests/clients}.
    """

    driver = ""

    # Chromium's start and the run are bounded by the driver (75 s); this
    # only catches a driver that never exits.
    timeout = 150

    def setUp(self) -> None:
        """
        Find the browser toolchain, failing (not skipping) with what to
        install when a piece is missing: CI installs all of it
        (C{tests/run}).
        """
        node = shutil.which("node")
        if node is None:
            self.fail("node is not installed: apt-get install nodejs")
        if not os.access(CHROMIUM, os.X_OK):
            self.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        if not (CLIENTS / "node_modules" / "playwright-core").is_dir():
            self.fail("playwright-core is missing: npm ci in tests/clients")
        self.node_executable = node

    async def run_driver(self, url: str) -> dict[str, Any]:
        """
        Run the browser driver against C{url} and return its JSON report;
        fail the test with the driver's own account when it fails.
        """
        args = [str(CLIENTS / self.driver), url]
        screenshots = os.environ.get(SCREENSHOTS_ENV)
        if screenshots:
            args += ["--screenshots", screenshots]
        out, err, code = await getProcessOutputAndValue(
            self.node_executable, args, env=dict(os.environ), path=str(CLIENTS)
        )
        stderr = err.decode("utf-8", "replace")[-3000:]
        try:
            result: dict[str, Any] = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        except (IndexError, ValueError):
            self.fail(f"driver exited with {code} without a JSON report; stderr:\n{stderr}")
        if code != 0 or not result.get("ok"):
            failed = json.dumps(result.get("snapshots", {}).get("failed"), ensure_ascii=False)
            self.fail(
                f"driver exited with {code} at step {result.get('step')!r}: "
                f"{result.get('error')}\nlast page state: {failed[:4000]}\nstderr:\n{stderr}"
            )
        return result

    @staticmethod
    def wait_for_disconnects(all_closed: Callable[[], bool]) -> Deferred[None]:
        """
        Let the server notice the browser's connections closing, so the
        test ends with a clean reactor: the driver exits as soon as
        Chromium is gone, before this reactor has read the FINs.
        """

        async def wait() -> None:
            for _ in range(100):
                if all_closed():
                    break
                await deferLater(reactor, 0.05, lambda: None)
            await deferLater(reactor, 0.2, lambda: None)

        return Deferred.fromCoroutine(wait())
