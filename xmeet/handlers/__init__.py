"""
Front ends that are neither WebSocket protocols nor Engine.IO: the HTTP API
(PROTOCOL.md section 4). They translate requests into service calls.
"""
