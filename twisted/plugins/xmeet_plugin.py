# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin: C{twistd -n xmeet --port 8080}.

Only names the service maker; C{xmeet.tap} is imported lazily, so listing
plugins with C{twistd --help} stays fast.
"""

from twisted.application.service import ServiceMaker

xmeet = ServiceMaker(
    "xmeet",
    "xmeet.tap",
    "Realtime chat server: Xmeet rooms, Socket.IO, IM and HTTP API on one port.",
    "xmeet",
)
