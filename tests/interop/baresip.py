"""
Drive Debian's baresip (C{baresip-core} 1.0.0) headless, as a real softphone for interop tests.

Each phone runs in a temporary directory of its own (C{baresip -f DIR}) holding C{config} and
C{accounts}.  It is commanded through its C{ctrl_tcp} module: netstring-framed JSON, commands as
C{{"command": ..., "params": ..., "token": ...}} and, on the same connection, its events
(C{REGISTER_OK}, C{CALL_INCOMING}, C{CALL_ESTABLISHED}, C{CALL_RTPESTAB}, C{CALL_CLOSED}...).
Commands such as C{dial}, C{hangup}, C{hold} and C{resume} come from the C{menu} module.

Audio: C{ausine} is the source (a 440 Hz tone, so RTP flows both ways), and no player module is
loaded at all (there are no sound devices here), which baresip accepts: it then plays nothing.
With C{-s} baresip prints every SIP message it sends and receives (libre's SIP trace) on stdout,
kept in C{baresip.log}; L{Baresip.received} gives the received ones, for topology checks.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, Any

from twisted.trial.unittest import SynchronousTestCase

from .ports import TCP, UDP, freePort, tcpPortListening
from .service import terminate
from .tools import requireTool

MODULES = "/usr/lib/baresip/modules"
# How long baresip may take to start, and to answer one command.
START_TIMEOUT = 10.0
COMMAND_TIMEOUT = 5.0
STOP_TIMEOUT = 3.0

# libre's trace: a line "<transport> <from> -> <to>" starts each message, "#" the line before it.
_TRACE = re.compile(r"^(UDP|TCP|TLS) (\S+):(\d+) -> (\S+):(\d+)$", re.MULTILINE)
_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class Baresip:
    """
    One baresip process on its own loopback address, with one account.

    @ivar events: every event received so far, in order (the JSON objects).
    """

    def __init__(
        self,
        testCase: SynchronousTestCase,
        name: str,
        host: str,
        account: str,
        server: Collection[tuple[str, int]],
        *,
        cafile: Path | None = None,
    ) -> None:
        self.testCase = testCase
        self.name = name
        self.host = host
        self.account = account
        # Where the SBC sends from: a traced message from there was received, any other one sent.
        # (Over TCP and TLS both ends may be 127.0.0.1, so the phone's own address cannot tell.)
        self.server = {(host, port) for host, port in server}
        self.cafile = cafile
        self.directory = Path(tempfile.mkdtemp(prefix=f"baresip-{name}-"))
        self.logPath = self.directory / "baresip.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.tokens = 0
        self._log: IO[bytes] | None = None
        # SIP (UDP and TCP) on one port; libre puts TLS on the next one.
        self.sipPort = self._pairedPort()
        self.controlPort = freePort(host, (TCP,), avoid=(self.sipPort, self.sipPort + 1))

    def _pairedPort(self) -> int:
        for _ in range(50):
            port = freePort(self.host, (UDP, TCP))
            if port < 65535 and _free(self.host, port + 1):
                return port
        raise RuntimeError(f"no two free ports in a row on {self.host}")

    def config(self) -> str:
        """The C{config} file: modules, addresses, audio, and where the CA certificate is."""
        lines = [
            "poll_method epoll",
            f"sip_listen {self.host}:{self.sipPort}",
            "sip_trans_def udp",
            f"module_path {MODULES}",
            "module g711.so",
            "module ausine.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {self.host}:{self.controlPort}",
            # Media from this address too, not from the host's first interface.
            f"net_interface {self.host}",
            "audio_source ausine,440",
            # ausine makes 48 kHz stereo only; baresip resamples to the codec's rate.
            "ausrc_srate 48000",
            "ausrc_channels 2",
            "rtp_stats yes",
            "net_prefer_ipv6 no",
            "answermode auto",
        ]
        if self.cafile is not None:
            lines.append(f"sip_cafile {self.cafile}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Write the files, start baresip with its SIP trace on, and connect to its control port."""
        executable = requireTool("baresip")
        (self.directory / "config").write_text(self.config())
        (self.directory / "accounts").write_text(self.account + "\n")
        (self.directory / "contacts").write_text("")
        self._log = self.logPath.open("wb")
        self.process = subprocess.Popen(
            [executable, "-f", str(self.directory), "-s", "-v"],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.testCase.addCleanup(self.stop)
        deadline = time.monotonic() + START_TIMEOUT
        while not tcpPortListening(self.host, self.controlPort, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"baresip {self.name} did not start\n{self.describe()}")
            time.sleep(0.1)
        self.sock = socket.create_connection((self.host, self.controlPort), timeout=COMMAND_TIMEOUT)

    # --- control ------------------------------------------------------------------------------

    def _readMessage(self, deadline: float) -> dict[str, Any] | None:
        """One netstring message, or None when the deadline passes first."""
        assert self.sock is not None
        while True:
            length, colon, rest = self.buffer.partition(b":")
            if colon and length.isdigit() and len(rest) > int(length):
                size = int(length)
                payload, self.buffer = rest[:size], rest[size + 1 :]
                message: dict[str, Any] = json.loads(payload)
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise AssertionError(f"baresip {self.name} closed its control connection\n{self.describe()}")
            self.buffer += data

    def command(self, name: str, params: str = "", timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """Run a command and return its response; events meanwhile go to L{events}."""
        assert self.sock is not None
        self.tokens += 1
        token = f"{self.name}-{self.tokens}"
        payload = json.dumps({"command": name, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(payload), payload))
        deadline = time.monotonic() + timeout
        while (message := self._readMessage(deadline)) is not None:
            if message.get("event"):
                self.events.append(message)
            elif message.get("token") == token:
                return message
        raise AssertionError(f"baresip {self.name}: no answer to {name!r} in {timeout}s\n{self.describe()}")

    def waitEvent(
        self, kind: str, timeout: float = 10.0, match: Callable[[dict[str, Any]], bool] = lambda e: True
    ) -> dict[str, Any]:
        """The first event of type C{kind} (already seen and not yet taken, or next) that C{match}es."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("type") == kind and match(event) and not event.get("_taken"):
                    event["_taken"] = True
                    return event
            seen = len(self.events)
            message = self._readMessage(deadline)
            if message is None:
                raise AssertionError(
                    f"baresip {self.name}: no {kind} event within {timeout}s; events: "
                    f"{[e.get('type') for e in self.events]}\n{self.describe()}"
                )
            if message.get("event"):
                self.events.append(message)

    def waitRegistered(self, timeout: float = 10.0) -> str:
        """
        Poll C{reginfo} until the account shows as registered; return that output.  (Registering
        starts before we connect to C{ctrl_tcp}, so its REGISTER_OK event may come before we listen.)
        """
        deadline = time.monotonic() + timeout
        while True:
            data = str(self.command("reginfo").get("data", ""))
            if re.search(r"\bOK\b", _ESCAPE.sub("", data)):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"baresip {self.name} did not register in {timeout}s: {data!r}\n{self.describe()}"
                )
            time.sleep(0.2)

    def eventTypes(self) -> list[str]:
        """The types of the events seen so far, in order."""
        return [str(e.get("type")) for e in self.events]

    # --- what it saw --------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.logPath.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def received(self) -> list[str]:
        """The text of every SIP message the trace shows as received, in order."""
        return self._traced(received=True)

    def sent(self) -> list[str]:
        """The text of every SIP message the trace shows as sent, in order."""
        return self._traced(received=False)

    def sourcePorts(self) -> set[int]:
        """The local ports the trace shows messages sent from (the SIP port, and TCP/TLS client ports)."""
        log = _ESCAPE.sub("", self.log())
        return {int(m.group(3)) for m in _TRACE.finditer(log) if not self._fromServer(m)}

    def _fromServer(self, mark: re.Match[str]) -> bool:
        return (mark.group(2), int(mark.group(3))) in self.server

    def _traced(self, *, received: bool) -> list[str]:
        log = _ESCAPE.sub("", self.log())
        marks = list(_TRACE.finditer(log))
        messages = []
        for index, mark in enumerate(marks):
            if self._fromServer(mark) != received:
                continue
            end = marks[index + 1].start() if index + 1 < len(marks) else len(log)
            # The message ends at the first blank line after its body (baresip logs follow it).
            messages.append(log[mark.end() : end].strip("\n"))
        return messages

    def describe(self) -> str:
        config = (self.directory / "config").read_text() if (self.directory / "config").exists() else ""
        return (
            f"--- baresip {self.name} ({self.directory}), events {self.eventTypes()}\n"
            f"--- config:\n{config}--- accounts: {self.account}\n--- log:\n{self.log()[-20000:]}"
        )

    def stop(self) -> None:
        """Quit baresip (SIGTERM, then SIGKILL), and remove its directory."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        process, self.process = self.process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def accountLine(
    user: str,
    password: str,
    domain: str,
    proxy: tuple[str, int],
    transport: str,
    *,
    regint: int = 600,
) -> str:
    """
    An C{accounts} line: C{user@domain} with digest C{password}, registering through the SBC at
    C{proxy} over C{transport} (C{udp}, C{tcp} or C{tls}), answering calls at once.
    """
    host, port = proxy
    return (
        f"<sip:{user}@{domain};transport={transport}>;auth_pass={password}"
        f';outbound="sip:{host}:{port};transport={transport}";regint={regint}'
        ";answermode=auto;audio_codecs=PCMU;ptime=20"
    )
