"""Named pause points, for the chaos tests: stop a real process at a chosen moment.

With `PIPELINE_PAUSE_AT=<name>` in its environment, a process that reaches `point(name)`
prints `paused at <name> (pid N)` on stderr and waits for a line on stdin. A test waits
for that line and then kills the process (`kill -9` at exactly that moment) or writes a
newline to let it go on. Without the variable a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys

ENV = "PIPELINE_PAUSE_AT"


def point(name: str) -> None:
    """Pause here if the environment asks for it (see the module docstring)."""
    if os.environ.get(ENV) != name:
        return
    print(f"paused at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    sys.stdin.readline()
