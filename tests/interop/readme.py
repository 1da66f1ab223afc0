"""
README's shell commands, as the tests that run them read them: from README itself, so that the two
cannot drift apart.

A command is one line of a C{```sh} block; what follows C{#} on it is the outcome README promises.
L{RUN_BY} names, for every command README shows, the test that runs it; a command without an entry
fails L{tests.interop.test_readme.ReadmeCommandsTests.test_everyCommandRun}.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sbc.tap import READY

from .ports import tcpPortListening, udpPortBound

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"

_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Command:
    """
    One README command line.

    @ivar text: the command, as a shell reads it (without the comment).
    @ivar promise: the comment after it (what README says will happen), or C{""}.
    @ivar background: whether README runs it in the background (C{&}).
    """

    text: str
    promise: str
    background: bool


def commands(readme: str | None = None) -> list[Command]:
    """
    Every command of README's C{sh} blocks, in order.
    """
    text = README.read_text(encoding="utf-8") if readme is None else readme
    found = []
    for block in _BLOCK.findall(text):
        for line in block.splitlines():
            body, _, promise = line.partition("  #")
            body = body.strip()
            if not body or body.startswith("#"):
                continue
            background = body.endswith("&") and not body.endswith("&&")
            found.append(Command(body.removesuffix("&").strip(), promise.strip(" #"), background))
    return found


def command(prefix: str) -> Command:
    """
    The one README command that starts with C{prefix}.
    """
    matches = [c for c in commands() if c.text.startswith(prefix)]
    if len(matches) != 1:
        raise AssertionError(f"README has {len(matches)} commands starting {prefix!r}: {matches}")
    return matches[0]


def run(
    text: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """
    Run one command line with C{sh}, as a reader pasting it would, and wait for it.  It runs without a
    controlling terminal, so that a password prompt reads C{stdin}.
    """
    return subprocess.run(
        ["sh", "-c", text],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


class Background:
    """
    A README command started in the background (its own process group, so that C{make}'s children
    stop with it), with its output in a file.
    """

    def __init__(self, text: str, cwd: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.text = text
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            ["sh", "-c", text],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def waitForSIP(self, timeout: float = 120.0) -> None:
        """
        Wait until the SBC says that every listener is bound (its log line starting with L{READY});
        raise with the output if the command ends or the time runs out first.  (Probing the ports
        ourselves could take one from the SBC in the moment before it binds it.)
        """
        deadline = time.monotonic() + timeout
        while READY not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.text!r} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.text!r} did not start listening:\n{self.output()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """
        SIGTERM to the service (twistd) alone, as ops would stop it; then to the whole group, then
        SIGKILL if anything lingers.  (A SIGTERM to the whole group would reach twistd twice, once
        from us and once forwarded by C{make}.)
        """
        if self.process.poll() is None:
            services = [pid for pid in _groupMembers(self.process.pid) if b"twistd" in _commandLine(pid)]
            for pid in services:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10 if services else 0)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._out.close()


def _groupMembers(group: int) -> list[int]:
    """The processes of process group C{group}, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing bracket.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def _commandLine(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def portsFree(host: str = "127.0.0.1", ports: tuple[int, ...] = (5060, 5061, 8080)) -> bool:
    """
    Whether the demo's ports (SIP, and its HTTP API on 8080) are free, so that README's commands can
    run as written.
    """
    return not any(udpPortBound(host, port) or tcpPortListening(host, port) for port in ports)
