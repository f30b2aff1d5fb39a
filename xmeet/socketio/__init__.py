# -*- test-case-name: tests.test_socketio_server -*-
"""
Socket.IO (protocol v5, and v4 for socket.io 2.x clients) on Engine.IO.
"""

__all__: list[str] = []
