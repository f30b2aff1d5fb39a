"""
Sum py-spy's collapsed stacks (C{run.py --profile DIR}) by function: the
share of samples where a function is on top of the stack (self) and
anywhere on it (inclusive). Reading a flame graph by eye misses a cost
spread over many call sites; these sums do not.

Usage: python bench/profile_summary.py FILE [--top N] [--idle]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# py-spy frames look like "function (path/to/module.py:123)".
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>.*?)(?::\d+)?\)$")
# Waiting in the reactor's poll is idle time, not work.
_IDLE = ("doPoll", "poll (", "select (", "_run_once")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarize(path: Path, top: int, keep_idle: bool) -> str:
    """
    The top functions by self and inclusive samples, as a text report.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";")]
        if not keep_idle and any(marker in frames[-1] for marker in _IDLE):
            idle += count
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{path.name}: {total} busy samples, {idle} idle (in poll) left out"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"  top {top} by {title}:")
        for frame, count in counter.most_common(top):
            lines.append(f"    {100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """
    Print the summary of each file named.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true", help="count time in poll as well")
    args = parser.parse_args(argv)
    for path in args.files:
        print(summarize(path, args.top, args.idle))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
