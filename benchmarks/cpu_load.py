"""A competing process that keeps one CPU core busy, for the loaded CPU benchmarks.

The shared-machine case: another program (a build, a training job) holds a core while the model
runs. :func:`busy_core` starts a child Python process spinning on one core (pinned to it where
the OS allows) and stops it by its process id when the block ends, so the loaded measurement is
the only one that sees it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["busy_core"]

_SPIN = """
import os
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {%d})
while True:
    pass
"""


@contextlib.contextmanager
def busy_core(core: int = 0) -> Iterator[int]:
    """Keep CPU ``core`` busy with a spinning child process inside the block; yields its pid."""
    child = subprocess.Popen([sys.executable, "-c", _SPIN % core])
    try:
        time.sleep(0.5)  # started and spinning before the first timed run
        if child.poll() is not None:
            raise RuntimeError(f"the competing process exited with status {child.returncode}")
        yield child.pid
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
