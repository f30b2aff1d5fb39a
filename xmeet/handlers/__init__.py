# -*- test-case-name: tests.test_http_api -*-
"""
The application's front ends above Socket.IO and twisted.web: the IM and
xnest events (PROTOCOL.md section 3) and the HTTP API (section 4). They
translate events and requests into service calls, and results into acks
and responses.
"""
