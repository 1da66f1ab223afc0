"""Signal the running SBC through the pidfile twistd writes (``sbc-ctl reload`` sends SIGHUP).

twistd writes ``twistd.pid`` in its working directory unless told ``--pidfile PATH`` (and none at
all with ``--pidfile=``). A missing file, one that does not hold a process id, or one whose process
is gone (stale, after a crash) is a `PidfileError` saying so, rather than a signal sent astray.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEFAULT_PIDFILE", "PidfileError", "readPid", "signalServer"]

# twistd's own default, relative to the working directory it was started in.
DEFAULT_PIDFILE = Path("twistd.pid")


class PidfileError(Exception):
    """The pidfile does not lead to a running process we may signal; the message says why."""


def readPid(path: Path) -> int:
    """The process id in the pidfile at ``path``."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise PidfileError(
            f"no pidfile at {path}: is the SBC running? (twistd writes twistd.pid in its working "
            "directory, none with --pidfile=; give another with --pidfile PATH)"
        ) from None
    except OSError as e:
        raise PidfileError(f"cannot read the pidfile {path}: {e.strerror}") from None
    if not text.isdigit() or int(text) <= 0:
        raise PidfileError(f"the pidfile {path} does not hold a process id: {text[:40]!r}")
    return int(text)


def signalServer(
    path: Path, signalNumber: int = signal.SIGHUP, kill: Callable[[int, int], None] | None = None
) -> int:
    """Send ``signalNumber`` to the process the pidfile at ``path`` names (with ``kill``, `os.kill` by
    default); returns its id."""
    pid = readPid(path)
    try:
        (kill or os.kill)(pid, signalNumber)
    except ProcessLookupError:
        raise PidfileError(
            f"the pidfile {path} is stale: no process {pid} is running (the SBC is not running, "
            "or it exited without removing its pidfile)"
        ) from None
    except PermissionError:
        raise PidfileError(
            f"not allowed to signal process {pid} (from {path}): run as the SBC's account"
        ) from None
    return pid
