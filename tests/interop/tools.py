"""
Find the external programs the interop tests drive, and decide what happens when one is missing.

Interop tests need SIPp, sipsak and openssl from the host.  A developer without them gets skipped tests
and a note saying which package to install.  CI must never skip them silently, so when the environment
variable ``CI`` is set, a missing program fails the test instead.
"""

from __future__ import annotations

import os
import shutil
from unittest import SkipTest

# Which Debian package ships each program, for the skip/failure message.
_PACKAGES: dict[str, str] = {
    "sipp": "sip-tester",
    "sipsak": "sipsak",
    "openssl": "openssl",
    "rtpengine": "rtpengine-daemon",
}


class MissingToolError(AssertionError):
    """
    A program an interop test needs is not installed, and we run in CI, where that is a failure.
    """


def inCI() -> bool:
    """
    Whether the environment says we run in CI: ``CI`` is set to anything but empty, ``0`` or ``false``.
    """
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def requireTool(name: str) -> str:
    """
    Return the absolute path of the program C{name} found on C{PATH}.

    When it is missing, raise L{SkipTest}; in CI (see L{inCI}) raise L{MissingToolError} instead, which
    fails the test.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    package = _PACKAGES.get(name, name)
    message = f"{name!r} is not on PATH; install the Debian package {package!r} (apt-get install {package})"
    if inCI():
        raise MissingToolError(message + "; CI is set, so a missing tool is a failure, not a skip")
    raise SkipTest(message)
