# -*- test-case-name: tests.test_transport_internals -*-
"""
What both WebSocket front ends (xgate and Engine.IO) share:

  - L{xmeet.transport.send}: one C{send} per connection per reactor turn,
    and the outbox that flushes them;
  - L{xmeet.transport.producer}: the bounded producer every connection
    is, and the order of the close frame;
  - L{xmeet.transport.lean}: less memory per open connection, and the
    upgrade resource that lets go of the HTTP side;
  - L{xmeet.transport.handshake}: refused handshakes answered with the
    JSON error object;
  - L{xmeet.transport.lease}: connections that hold their admission's
    lease;
  - L{xmeet.transport.internals}: every private Twisted and Autobahn name
    the others rely on, each guarded by a test.
"""

__all__: list[str] = []
