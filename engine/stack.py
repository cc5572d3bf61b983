"""Room on the call stack for deep trees.

The stages after compiling (explaining, drilling, narrating, rendering, reporting) follow a metric's
drivers one level per call, so a chain of metrics thousands deep (``m0 = m1 + revenue`` … ``m2999 =
revenue``) needs a few Python frames per level: about 2.3 for explain, more for the HTML report.
Python stops at 1,000 frames by default. Compiling a tree deeper than that raises the interpreter's
recursion limit to what the tree needs (never lowers it, so threads compiling at once cannot take room
from each other). Python 3.11 runs Python-to-Python calls without growing the C stack, and a
12,000-deep chain was measured to run explain on an 8 MiB stack; explain refuses chains deeper than
`MAX_DEPTH` with a clear error.
"""

from __future__ import annotations

import sys
import threading

MAX_DEPTH = 10_000
"""The deepest chain of metrics explain follows (the longest path of formula and influence links below the
metric explained). Deeper trees compile and evaluate (those stages do not recurse); explain refuses them
with a clear error rather than overflow the C stack (a 12,000-deep chain ran, 30,000 crashed the
interpreter)."""

FRAMES_PER_LEVEL = 8
"""Frames to allow for each level of a chain: explain needs about 2.3, the report a few more."""

_BASE = 2_000
_lock = threading.Lock()


def make_room(depth: int) -> None:
    """Make sure a tree ``depth`` metrics deep can be explained, reported and rendered."""
    wanted = _BASE + FRAMES_PER_LEVEL * min(depth, MAX_DEPTH)
    with _lock:
        if sys.getrecursionlimit() < wanted:
            sys.setrecursionlimit(wanted)
