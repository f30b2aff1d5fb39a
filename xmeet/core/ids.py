# -*- test-case-name: tests.test_core_frames -*-
"""
Identifiers that are unique across every node and every restart.

A node draws a random node id when it starts; member and message ids are
that node id plus a counter, so no coordination is needed to keep them
unique, and they stay short (member ids must fit in 32 characters).
"""

from __future__ import annotations

import secrets
import string

__all__ = ["IdGenerator", "new_node_id"]

_ALPHABET = string.digits + string.ascii_lowercase


def new_node_id(length: int = 10) -> str:
    """
    A random, url-safe node id: 10 characters give 36**10 (about 3.7e15)
    possibilities, so two node starts practically never collide.
    """
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _base36(number: int) -> str:
    if number == 0:
        return "0"
    digits = []
    while number:
        number, remainder = divmod(number, 36)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


class IdGenerator:
    """
    Ids of the form C{<node id>.<counter in base 36>}.

    A counter of 2**64 still fits: 10 + 1 + 13 = 24 characters.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._counter = 0

    def next_id(self) -> str:
        """
        The next id; never the same twice for this generator.
        """
        self._counter += 1
        return f"{self.node_id}.{_base36(self._counter)}"
