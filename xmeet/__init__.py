# -*- test-case-name: tests.test_tap -*-
"""
xmeet: a realtime chat server on Twisted and Autobahn.

One listening port serves Xmeet chat rooms over WebSocket, a Socket.IO
endpoint, an HTTP API, a demo page and ops endpoints.
"""

__version__ = "0.1.0"
