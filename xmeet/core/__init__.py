# -*- test-case-name: tests.test_core_rules -*-
"""
The pure core of xmeet: the rules of rooms, commands, history, frames,
identifiers and limits.

Nothing here touches a socket, the reactor or the wall clock; time is passed
in as numbers, so every rule is tested without sleeping.
"""
