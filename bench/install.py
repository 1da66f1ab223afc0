"""
The anchors the benchmark compares sbc with, installed when missing:

  - Debian packages (as root, with apt-get): SIPp (C{sip-tester}), Kamailio (C{kamailio}, whose
    package ships topoh), rtpengine (C{rtpengine-daemon}, userspace only) and PyPy (C{pypy3});
  - Sippy B2BUA from PyPI, in a virtual environment of its own (C{bench/.venv-sippy});
  - a PyPy virtual environment with this project (C{bench/.venv-pypy}), when PyPy is new enough.

Nothing here raises: what cannot be installed is reported, and its rows say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SIPPY_VENV = HERE / ".venv-sippy"
PYPY_VENV = HERE / ".venv-pypy"
SIPPY = "sippy==2.5.0"
# Program -> the Debian package that ships it.
DEBIAN = {"sipp": "sip-tester", "kamailio": "kamailio", "rtpengine": "rtpengine-daemon", "pypy3": "pypy3"}
# sbc's python_requires (setup.cfg).
MINIMUM_PYTHON = (3, 11)
_TIMEOUT = 900


@dataclass
class Anchors:
    """
    What is installed.

    @ivar sippy: Sippy's virtual environment, or C{None}.
    @ivar sippyVersion: the Sippy version installed there.
    @ivar pypy: the PyPy interpreter of a virtual environment with sbc, or C{None}.
    @ivar notes: what could not be installed, and why.
    """

    sippy: Path | None = None
    sippyVersion: str = ""
    pypy: Path | None = None
    notes: list[str] = field(default_factory=list)


def _run(command: Sequence[str], log: Callable[[str], None]) -> bool:
    """Run C{command} quietly; whether it succeeded (its output's tail goes to the log when not)."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT, check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"  {command[0]}: {e}")
        return False
    if done.returncode != 0:
        log(f"  {' '.join(command[:4])} ...: exit {done.returncode}: {(done.stdout + done.stderr)[-400:]}")
    return done.returncode == 0


def installDebian(log: Callable[[str], None]) -> list[str]:
    """apt-get install the missing programs' packages when we are root; the notes for what is missing."""
    missing = [package for program, package in DEBIAN.items() if shutil.which(program) is None]
    if not missing:
        return []
    if os.geteuid() != 0:
        return [f"missing Debian packages {', '.join(missing)}: run as root or install them"]
    log(f"installing {' '.join(missing)} (apt-get)")
    _run(["apt-get", "update", "-qq"], log)
    notes = []
    for package in missing:
        if not _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], log):
            notes.append(f"could not install the Debian package {package}")
    return notes


def _pythonVersion(python: Path | str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def installSippy(log: Callable[[str], None]) -> tuple[Path | None, str, str]:
    """Sippy B2BUA in its own virtual environment: (venv, version, note)."""
    b2bua = SIPPY_VENV / "bin" / "b2bua"
    if not b2bua.exists():
        log(f"installing {SIPPY} into {SIPPY_VENV}")
        if not (_run([sys.executable, "-m", "venv", "--clear", str(SIPPY_VENV)], log)
                and _run([str(SIPPY_VENV / "bin" / "pip"), "install", "-q", SIPPY], log)):  # fmt: skip
            return None, "", f"could not pip install {SIPPY}"
    try:
        query = "import importlib.metadata as m; print(m.version('sippy'))"
        version = subprocess.run(
            [str(SIPPY_VENV / "bin" / "python"), "-c", query],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        version = ""
    return SIPPY_VENV, version, ""


def installPypy(log: Callable[[str], None], install: bool = True) -> tuple[Path | None, str]:
    """A PyPy virtual environment with sbc and its dependencies: (its python, note).

    Without C{install} only an environment made before is used, but the note still says why an
    installed pypy3 cannot run sbc.
    """
    pypy = shutil.which("pypy3")
    if pypy is None:
        return None, "no pypy3 (apt-get install pypy3)"
    version = _pythonVersion(pypy)
    if version is None:
        return None, "pypy3 does not run"
    if version < MINIMUM_PYTHON:
        implemented = ".".join(map(str, version))
        needed = ".".join(map(str, MINIMUM_PYTHON))
        return None, f"Debian's pypy3 implements Python {implemented}; sbc needs Python {needed} or later"
    python = PYPY_VENV / "bin" / "python"
    if not (PYPY_VENV / "bin" / "twistd").exists():
        if not install:
            return None, "no PyPy virtual environment yet (run without --no-install)"
        log(f"installing sbc into a PyPy virtual environment ({PYPY_VENV})")
        if not (_run([pypy, "-m", "venv", "--clear", str(PYPY_VENV)], log)
                and _run([str(python), "-m", "pip", "install", "-q", str(REPO)], log)):  # fmt: skip
            return None, "sbc's dependencies do not install on PyPy"
    return python, ""


def installAnchors(log: Callable[[str], None], install: bool = True) -> Anchors:
    """Everything the run compares with; with C{install} false, only what is there already."""
    anchors = Anchors()
    if install:
        anchors.notes.extend(installDebian(log))
    if install or (SIPPY_VENV / "bin" / "b2bua").exists():
        anchors.sippy, anchors.sippyVersion, note = installSippy(log)
        if note:
            anchors.notes.append(note)
    if install or shutil.which("pypy3") is not None:
        anchors.pypy, note = installPypy(log, install)
        if note:
            anchors.notes.append(f"PyPy: {note}")
    return anchors
