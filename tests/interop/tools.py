"""
Find the external programs the interop tests drive, and decide what happens when one is missing.

Interop tests need SIPp, sipsak and openssl from the host.  A developer without them gets skipped tests
and a note saying which package to install.  CI must never skip them silently, so when the environment
variable ``CI`` is set, a missing program fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from unittest import SkipTest

# Which package (Debian, or PyPI when in _PYPI) ships each program, for the skip/failure message.
_PACKAGES: dict[str, str] = {
    "sipp": "sip-tester",
    "sipsak": "sipsak",
    "openssl": "openssl",
    "rtpengine": "rtpengine-daemon",
    "baresip": "baresip-core",
    "kamailio": "kamailio",
    # Python scripts, installed by pip into the venv beside the interpreter.
    "sipvicious_svmap": "sipvicious",
    "sipvicious_svwar": "sipvicious",
    "sipvicious_svcrack": "sipvicious",
}
# Packages of _PACKAGES that come from PyPI rather than Debian.
_PYPI = frozenset({"sipvicious"})


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
    Return the absolute path of the program C{name}: the venv's own script (beside C{sys.executable})
    if there is one, else the one found on C{PATH}.

    When it is missing, raise L{SkipTest}; in CI (see L{inCI}) raise L{MissingToolError} instead, which
    fails the test.
    """
    beside = os.path.join(os.path.dirname(sys.executable), name)
    path = beside if os.access(beside, os.X_OK) else shutil.which(name)
    if path is not None:
        return path
    package = _PACKAGES.get(name, name)
    where, tool = ("PyPI", "pip") if package in _PYPI else ("Debian", "apt-get")
    message = f"{name!r} is not on PATH; install the {where} package {package!r} ({tool} install {package})"
    if inCI():
        raise MissingToolError(message + "; CI is set, so a missing tool is a failure, not a skip")
    raise SkipTest(message)
