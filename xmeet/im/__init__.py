# -*- test-case-name: tests.test_im -*-
"""
Instant messaging (PROTOCOL.md sections 3 and 4): the IM service of one
node, as focused collaborators behind one facade.

  - L{xmeet.im.service}: L{IMService}, the facade the front ends call; it
    checks a call, asks the collaborators, and returns a value
    (L{xmeet.im.values}); the front ends render values and L{IMError}s
    to the wire (L{xmeet.handlers.im_wire});
  - L{xmeet.im.sessions}: logins, session tokens, JWT expiry, send rates;
  - L{xmeet.im.replica}: who is online on the other nodes, and their
    sessions;
  - L{xmeet.im.offline}: what waits for users without a socket, behind
    L{xmeet.im.interfaces.IOfflineMessages};
  - L{xmeet.im.conversations}: conversations, their versions and
    histories, without I/O;
  - L{xmeet.im.delivery}: the one place that routes a message or a change
    to sockets here, to the other nodes, or to the offline queues;
  - L{xmeet.im.cluster}: the other nodes' changes applied to this node;
  - L{xmeet.im.client}: the clients' side: L{xmeet.im.client.Push}, one
    per event whatever the number of recipients, the
    L{xmeet.im.client.IIMClient} it goes to, the
    L{xmeet.im.client.Caller} of a call (a socket, or an HTTP bearer).

Import from the modules: this package imports none of them.
"""
