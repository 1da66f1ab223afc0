# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Whitelist reloads in the real service (C{twistd -n sbc}) while SIPp calls run through it.

The demo trunk (127.0.0.2) calls alice's phone (127.0.0.4) as in test_calls.  Meanwhile the test
edits the trunk's whitelist file in the service's copy of etc/ and sends SIGHUP, as ops would.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .service import ServiceProcess
from .sipp import freeMediaPort, startSipp
from .test_calls import ALICE, TRUNK, CallTestCase

# Calls placed during a reload: RELOAD_CALLS at RELOAD_RATE a second, each up for RELOAD_HOLD_MS, so
# that SIGHUP lands while some are being set up and others are up.
RELOAD_CALLS = 30
RELOAD_RATE = 10
RELOAD_HOLD_MS = 1000
RELOAD_TIMEOUT = 30.0
# How long the service may take to log a reload after SIGHUP.
LOG_TIMEOUT = 10.0


def whitelistOf(service: ServiceProcess) -> Path:
    """The demo trunk's whitelist in the service's copy of etc/."""
    return service.configPath.parent / "whitelist" / "demo.txt"


class WhitelistReloadTests(CallTestCase):
    """
    A whitelist reload keeps every call and transaction; a bad whitelist file keeps the old one.
    """

    def hangup(self) -> None:
        """Send the service SIGHUP: reload the configuration now."""
        assert self.service.process is not None
        os.kill(self.service.process.pid, signal.SIGHUP)

    def waitForLog(self, text: str, start: int = 0) -> str:
        """Wait until the service's log, from offset C{start}, shows C{text}; return that part."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while time.monotonic() < deadline:
            log = self.service.log()[start:]
            if text in log:
                return log
            time.sleep(0.1)
        self.fail(f"no {text!r} in the log after {LOG_TIMEOUT:g}s\n{self.service.describe()}")

    def test_reloadDuringTraffic(self) -> None:
        """
        Two whitelist edits and SIGHUPs while 30 trunk calls come and go: every call completes at
        both ends, and the log shows each reload's diff.
        """
        self.startWith()
        whitelist = whitelistOf(self.service)
        phone = self.phone("call_uas.xml", calls=RELOAD_CALLS, timeout=RELOAD_TIMEOUT, statistics=True)
        caller = startSipp(
            self,
            "call_uac.xml",
            self.service.address("udp"),
            localHost=TRUNK,
            calls=RELOAD_CALLS,
            timeout=RELOAD_TIMEOUT,
            mediaPort=freeMediaPort(TRUNK),
            statistics=True,
            extraArgs=("-s", ALICE[0], "-d", str(RELOAD_HOLD_MS), "-r", str(RELOAD_RATE)),
        )
        time.sleep(1.0)
        start = len(self.service.log())
        whitelist.write_text(whitelist.read_text() + "127.0.0.3/32\n198.51.100.0/24\n")
        self.hangup()
        self.waitForLog("networks added: 127.0.0.3/32, 198.51.100.0/24", start)
        time.sleep(0.5)
        start = len(self.service.log())
        whitelist.write_text(whitelist.read_text().replace("198.51.100.0/24\n", ""))
        self.hangup()
        self.waitForLog("networks removed: 198.51.100.0/24", start)
        callerRun, phoneRun = caller.wait(), phone.wait()
        self.assertCompleted(callerRun, phoneRun)
        detail = self.detail(callerRun, phoneRun)
        for run in (callerRun, phoneRun):
            self.assertEqual(run.count("SuccessfulCall"), RELOAD_CALLS, detail)
            self.assertEqual(run.count("FailedCall"), 0, detail)
        self.assertNotIn("configuration not reloaded", self.service.log(), detail)

    def test_badWhitelistKeepsOld(self) -> None:
        """
        A whitelist saved with a mistake is refused (the log names the file and line), and the trunk's
        calls are still admitted by the whitelist in force.
        """
        self.startWith()
        whitelist = whitelistOf(self.service)
        lines = whitelist.read_text().splitlines()
        whitelist.write_text("\n".join([*lines, "127.0.0.9/24", ""]))
        self.hangup()
        log = self.waitForLog("configuration not reloaded")
        self.assertIn(
            f"demo.txt:{len(lines) + 1}: 127.0.0.9/24 has host bits set", log, self.service.describe()
        )
        phone = self.phone("call_uas.xml")
        callerRun = self.caller("call_uac.xml", ALICE[0])
        phoneRun = phone.wait()
        self.assertCompleted(callerRun, phoneRun)
        self.assertStatuses(callerRun, [180, 200, 200], phoneRun)
