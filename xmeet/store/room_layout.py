# -*- test-case-name: tests.test_store -*-
"""
What the Redis room backend (L{xmeet.store.redis}) keeps in Redis: the
key layout, the Lua scripts that change it, the values of the members
hash, and the read of a room back. Kept apart from the backend (as
L{xmeet.store.im_scripts} is for IM), so that the stored shape reads in
one place and every node agrees on it.

Key layout, every key and channel under the configured prefix C{P}:

  - C{P xnest:ID:history}: list of history entries, newest first, trimmed
    to the history size and to the history bytes (each entry counted as
    its UTF-8 size plus L{xmeet.core.history.ENTRY_OVERHEAD}, as in memory), keeping at least
    the newest;
  - C{P xnest:ID:history-bytes}: what the entries of that list cost, kept
    by the script that writes it (counted again from the list when
    missing);
  - C{P xnest:ID:members}: hash, member id to C{[nickname, node, joined]};
  - C{P xnest:ID:meta}: hash, C{store_history} = C{"0"} for rooms created
    without history (absent for ordinary rooms);
  - C{P node:NODE:xnests}: set of rooms where NODE has (had) members;
  - C{P node:NODE:alive}: the node's heartbeat, expiring after the node
    timeout;
  - C{P node:NODE:reaper}: who is removing a dead NODE's members;
  - C{P nodes}: set of node ids;
  - channel C{P xnest:ID}: the room's events, subscribed to by the nodes
    where the room is live.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import gatherResults, inlineCallbacks

from xmeet.core.history import History
from xmeet.store.interfaces import RemoteMember, RoomState

__all__ = ["LEAVE_SCRIPT", "RECORD_SCRIPT", "member_value", "read_room", "remote_members"]

LEAVE_SCRIPT = """
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
"""
"""
Remove a member; the last one out also removes the room's settings, so a
room exists, as in memory, while it has members or history: a room
without history is created anew by its next member.
"""


RECORD_SCRIPT = """
local size = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local overhead = tonumber(ARGV[3])
for i = 1, #KEYS / 2 do
  local list, counter = KEYS[2 * i - 1], KEYS[2 * i]
  local at = 4 + (i - 1) * 3
  local entry = ARGV[at]
  if redis.call('EXISTS', counter) == 0 then
    local bytes = 0
    for _, old in ipairs(redis.call('LRANGE', list, 0, -1)) do
      bytes = bytes + #old + overhead
    end
    redis.call('SET', counter, bytes)
  end
  local length = redis.call('LPUSH', list, entry)
  local bytes = redis.call('INCRBY', counter, #entry + overhead)
  while length > 1 and (length > size or bytes > max_bytes) do
    local oldest = redis.call('RPOP', list)
    bytes = redis.call('DECRBY', counter, #oldest + overhead)
    length = length - 1
  end
  redis.call('PUBLISH', ARGV[at + 1], ARGV[at + 2])
end
"""
"""
Keep events in their rooms' histories, bounded in entries and in bytes,
and publish them: KEYS are, per room, the history list and its byte
count; ARGV the history size, the history bytes and L{ENTRY_OVERHEAD},
then, per room, the entry, the channel and the event. The oldest entries
go one by one (C{RPOP}), to keep the count exact; in a steady room that is
one per message. One command for all the chat messages of a few milliseconds:
each txredisapi command costs a node several Deferreds and a reply to
parse, so a busy room's Redis work grows with its commands, not its
messages.
"""


def member_value(nickname: str, node: str, joined: float) -> str:
    """
    A member's value in the members hash.
    """
    return json.dumps([nickname, node, joined], ensure_ascii=False)


def remote_members(fields: Any, exclude_node: str | None = None) -> list[RemoteMember]:
    """
    The members hash as remote members in joining order; malformed values
    are skipped.
    """
    found = []
    for member_id, value in (fields or {}).items():
        try:
            nickname, node, joined = json.loads(value)
        except (TypeError, ValueError):
            continue
        if node != exclude_node:
            found.append((joined, RemoteMember(member_id, nickname, node)))
    found.sort(key=lambda pair: pair[0])
    return [member for _, member in found]


@inlineCallbacks
def read_room(
    connection: Any,
    key: Callable[..., str],
    xnest_id: str,
    history_size: int,
    history_bytes: int,
    own_node: str,
) -> Any:
    """
    A room's state as stored (its newest C{history_size} entries, the
    members of other nodes than C{own_node}), or C{None} when nothing of
    the room is stored; through C{connection}, with C{key} making the
    prefixed keys.
    """
    flag, entries, members = yield gatherResults(
        [
            connection.hget(key("xnest", xnest_id, "meta"), "store_history"),
            connection.lrange(key("xnest", xnest_id, "history"), 0, history_size - 1),
            connection.hgetall(key("xnest", xnest_id, "members")),
        ],
        consumeErrors=True,
    )
    if flag is None and not entries and not members:
        return None
    store_history = flag != "0"
    size = history_size if store_history else 0
    history = History(size, reversed(entries or []), history_bytes)
    return RoomState(store_history, history, remote_members(members, own_node))
