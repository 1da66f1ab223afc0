"""Stopping a child process that leads a process group (Kamailio, rtpengine, twistd under
``timeout``): the harness and the benchmark both start such children with ``start_new_session``."""

from __future__ import annotations

import os
import signal
import subprocess

# Seconds a child has to exit after SIGTERM, and then after SIGKILL.
STOP_TIMEOUT = 5.0


def stopGroup(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Stop ``process`` and its process group if it still runs: SIGTERM, so that it can clean
    up, then SIGKILL when it has not exited within ``timeout`` seconds; either way it is reaped."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


__all__ = ["STOP_TIMEOUT", "stopGroup"]
