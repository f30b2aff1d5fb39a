# -*- test-case-name: tests.test_xgate -*-
"""
Xmeet rooms over plain WebSocket: C{/xgate/websocket/{xnest_id}}.
"""

from xmeet.xgate.protocol import XgateProtocol, XnestFactory, apply_protocol_options
from xmeet.xgate.resource import XgateResource

__all__ = ["XgateProtocol", "XgateResource", "XnestFactory", "apply_protocol_options"]
