"""
Run the real service, C{twistd -n sbc --config ...}, as a child process for one interop test.

Modelled on treq's C{local_httpbin}: the test starts a real server process, learns its addresses and
kills it at teardown.  Each run gets its own temporary directory holding

  - C{etc/}: a copy of the shipped C{etc/} in which every C{[[listen]]} port is rewritten to a free
    one, so that a test never fights with C{make run} or with a parallel test for 5060/5061;
  - C{state/}: the state directory, with a fresh self-signed loopback certificate at
    C{state/tls/sbc.crt} and C{state/tls/sbc.key} (and both in C{state/tls/sbc.pem});
  - C{sbc.log}: everything the service prints.

The shipped config names its files relative to its own directory (C{whitelist/demo.txt},
C{../state}, C{../state/tls/sbc.crt}), so in the copy they resolve inside the temporary directory and
never touch the checkout.  twistd also runs with that directory as its working directory, so paths
relative to the working directory would stay inside it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops import starter
from sbc.tap import READY

from .ports import TCP, UDP, freePort, tcpPortListening, udpPortBound

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = Path("etc") / "sbc.toml"

# How long the service may take to bind every listener, and to stop after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"'-]+)\s*\]\]?\s*(#.*)?$")
_PORT_KEY = re.compile(r"(\bport\s*=\s*)(\d+)\b")


@dataclass(frozen=True)
class Listener:
    """
    One C{[[listen]]} table of the running config: where the service takes SIP traffic.

    @ivar transport: C{"udp"}, C{"tcp"} or C{"tls"}, lower case.
    @ivar host: the address it is bound to.
    @ivar port: the port it is bound to.
    """

    transport: str
    host: str
    port: int


# How often L{ServiceProcess.start} tries fresh ports when one was taken before the service bound it.
BIND_ATTEMPTS = 5
# What twistd prints when a listener's port is taken.
_PORT_TAKEN = ("CannotListenError", "Address already in use")


def _lostAPort(log: str) -> bool:
    """Whether a child's log shows that it failed to bind a port someone else had taken."""
    return any(sign in log for sign in _PORT_TAKEN)


# What the service's log shows when something went wrong inside it.
SERVICE_ERRORS = ("Traceback (most recent call last)", "Unhandled Error", "Unhandled error")


def twistdPath() -> str:
    """
    The C{twistd} script of the Python running the tests (the venv's own).
    """
    return os.path.join(os.path.dirname(sys.executable), "twistd")


def rewriteListenPorts(text: str, ports: Mapping[int, int]) -> str:
    """
    Replace each C{port = N} inside a C{[[listen]]} table of C{text} by C{port = ports[N]}.

    Only ports named in C{ports} change, and only in listen tables, so a trunk gateway that happens to
    use 5060 keeps it.  A config without C{[[listen]]} headers (say, inline tables) falls back to
    replacing those port numbers in every C{port = N}.
    """

    def replace(match: re.Match[str]) -> str:
        number = int(match.group(2))
        return match.group(1) + str(ports.get(number, number))

    lines = text.splitlines(keepends=True)
    if not any(_isListenHeader(line) for line in lines):
        return _PORT_KEY.sub(replace, text)
    out = []
    inListen = False
    for line in lines:
        header = _TABLE_HEADER.match(line)
        if header is not None:
            inListen = _isListenHeader(line)
        elif inListen:
            line = _PORT_KEY.sub(replace, line)
        out.append(line)
    return "".join(out)


def _isListenHeader(line: str) -> bool:
    header = _TABLE_HEADER.match(line)
    return header is not None and header.group(1).strip("\"'").split(".")[-1] == "listen"


def tomlValue(value: object) -> str:
    """
    C{value} written as a TOML value: a string, boolean, integer, float, or a list of those.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, escapes included.
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(tomlValue(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def setSetting(text: str, table: str, key: str, value: object) -> str:
    """
    Set C{key} of the table C{[table]} (e.g. C{"trunks.demo"}) in the TOML C{text} to C{value}, keeping
    every other line, comments included.

    A one-line C{key = ...} in that table is replaced; without one, the key is added right under the
    table's header; without the table, the table is added at the end.  A C{value} of C{None} removes
    the key instead.  Values spanning several lines are not supported: L{ServiceProcess.prepare}
    parses the result and checks that the value took.
    """
    lines = text.splitlines(keepends=True)
    assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
    if value is None:
        return _removeSetting(lines, table, assignment)
    newLine = f"{key} = {tomlValue(value)}\n"
    inTable = False
    headerIndex: int | None = None
    for index, line in enumerate(lines):
        header = _TABLE_HEADER.match(line)
        if header is not None:
            if inTable:
                break
            name = header.group(1).strip("\"'")
            inTable = name == table and not line.lstrip().startswith("[[")
            if inTable:
                headerIndex = index
        elif inTable and assignment.match(line):
            lines[index] = newLine
            return "".join(lines)
    if headerIndex is not None:
        lines.insert(headerIndex + 1, newLine)
        return "".join(lines)
    ending = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{ending}\n[{table}]\n{newLine}"


def _removeSetting(lines: list[str], table: str, assignment: re.Pattern[str]) -> str:
    """The lines without the one-line assignment C{assignment} matches inside C{[table]}."""
    inTable = False
    for index, line in enumerate(lines):
        header = _TABLE_HEADER.match(line)
        if header is not None:
            if inTable:
                break
            inTable = header.group(1).strip("\"'") == table and not line.lstrip().startswith("[[")
        elif inTable and assignment.match(line):
            del lines[index]
            break
    return "".join(lines)


def lookupSetting(config: Mapping[str, Any], table: str, key: str) -> Any:
    """
    The value of C{key} in the (dotted) C{table} of a parsed config; C{KeyError} when missing, and
    C{None} for a key L{setSetting} removed.
    """
    node: Any = config
    for part in table.split("."):
        node = node[part]
    return node.get(key)


def listenersOf(config: Mapping[str, Any]) -> list[Listener]:
    """
    The listeners a parsed C{sbc.toml} declares: its C{listen} array of tables.
    """
    tables = config.get("listen")
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"expected a [[listen]] array of tables in the config, found {tables!r}")
    listeners = []
    for table in tables:
        transport, host, port = table.get("transport"), table.get("host"), table.get("port")
        if not (isinstance(transport, str) and isinstance(host, str) and isinstance(port, int)):
            raise ValueError(f"a [[listen]] table without transport/host/port: {table!r}")
        listeners.append(Listener(transport.lower(), host, port))
    return listeners


def writeSelfSignedCertificate(directory: Path, commonName: str = "sbc.loopback") -> None:
    """
    Write a fresh self-signed certificate for 127.0.0.1 and localhost into C{directory}, as C{sbc-ctl
    init} does (C{sbc.crt}, C{sbc.key}), and both in C{sbc.pem} for clients that want one file.
    """
    starter.writeSelfSignedCertificate(directory, commonName, days=2)
    pem = directory / "sbc.pem"
    pem.write_bytes((directory / "sbc.crt").read_bytes() + (directory / "sbc.key").read_bytes())
    pem.chmod(0o600)


def terminate(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """
    Stop a child that may still run: SIGTERM, so that it can clean up, and SIGKILL when it has not
    exited within C{timeout} seconds; either way it is reaped.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class ServiceProcess:
    """
    The service running as a child process, in a temporary directory of its own.

    Build it with L{startService}, which also arranges its teardown.

    @ivar directory: the temporary working directory of the child.
    @ivar configPath: the rewritten C{sbc.toml} the child runs with.
    @ivar logPath: where the child's stdout and stderr go.
    @ivar listeners: the listeners of the rewritten config, with their actual ports.
    @ivar ports: shipped port -> port the child listens on instead, e.g. C{{5060: 40123}}.
    @ivar settings: changes to the copied C{sbc.toml}: table -> key -> value, e.g.
        C{{"trunks.demo": {"gateways": ["127.0.0.2:40000", "127.0.0.3:40002"]}}}.
    @ivar additions: lines appended to files of the copied C{etc/}, by path relative to it, e.g.
        C{{"whitelist/demo.txt": ["127.0.0.3/32"]}}.
    """

    def __init__(
        self,
        repoRoot: Path = REPO_ROOT,
        config: Path = SHIPPED_CONFIG,
        *,
        settings: Mapping[str, Mapping[str, object]] | None = None,
        additions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.repoRoot = repoRoot
        self.settings = {table: dict(values) for table, values in (settings or {}).items()}
        self.additions = {name: list(lines) for name, lines in (additions or {}).items()}
        self.shippedConfig = repoRoot / config
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-interop-"))
        self.configPath = self.directory / config
        self.logPath = self.directory / "sbc.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.listeners: list[Listener] = []
        self.ports: dict[int, int] = {}
        self._logFile: IO[bytes] | None = None
        # How often L{start} had to choose fresh ports (see there).
        self.portRetries = 0
        self.apiPort: int | None = None  # the HTTP API's port, when the test does not set [api] listen
        self.errorsFrom = 0  # where the log of the start that bound every port begins

    def prepare(self) -> None:
        """
        Fill the temporary directory: copy C{etc/} with free listen ports and the test's L{settings} and
        L{additions}, and write a certificate.
        """
        if not self.shippedConfig.exists():
            raise AssertionError(f"no shipped config at {self.shippedConfig}")
        etc = self.configPath.parent
        shutil.copytree(self.shippedConfig.parent, etc)
        writeSelfSignedCertificate(self.directory / "state" / "tls")
        for name, lines in self.additions.items():
            path = etc / name
            if not path.resolve().is_relative_to(etc.resolve()):
                raise ValueError(f"{name!r} is outside the copied etc/")
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            ending = "" if not old or old.endswith("\n") else "\n"
            path.write_text(old + ending + "".join(f"{line}\n" for line in lines), encoding="utf-8")

        self.assignPorts()

    def assignPorts(self) -> None:
        """
        Choose free ports for every listener not yet in L{ports}, and write the config with them.
        """
        text = self.shippedConfig.read_text(encoding="utf-8")
        for table, values in self.settings.items():
            for key, value in values.items():
                text = setSetting(text, table, key, value)
        parsed = tomllib.loads(text)
        for table, values in self.settings.items():
            for key, value in values.items():
                found = lookupSetting(parsed, table, key)
                wanted = list(value) if isinstance(value, tuple) else value
                if found != wanted:
                    raise AssertionError(f"setting [{table}] {key} failed: wanted {wanted!r}, got {found!r}")
        shipped = listenersOf(tomllib.loads(text))
        for listener in shipped:
            if listener.port not in self.ports:
                taken = set(self.ports.values()) | set(self.ports)
                self.ports[listener.port] = freePort(listener.host, (UDP, TCP), avoid=taken)
        rewritten = rewriteListenPorts(text, self.ports)
        if "api" in parsed and "listen" not in self.settings.get("api", {}):
            # The demo's HTTP API: on a free port of its own besides the SIP ones, chosen again
            # with them when one was taken before the bind.
            if self.apiPort is None:
                taken = set(self.ports.values()) | set(self.ports)
                self.apiPort = freePort("127.0.0.1", (TCP,), avoid=taken)
            rewritten = setSetting(rewritten, "api", "listen", f"127.0.0.1:{self.apiPort}")
        self.listeners = listenersOf(tomllib.loads(rewritten))
        expected = [Listener(item.transport, item.host, self.ports[item.port]) for item in shipped]
        if self.listeners != expected:
            raise AssertionError(f"rewriting listen ports failed: wanted {expected}, got {self.listeners}")
        self.configPath.write_text(rewritten, encoding="utf-8")

    def address(self, transport: str) -> tuple[str, int]:
        """
        The (host, port) of the first listener for C{transport} (C{"udp"}, C{"tcp"} or C{"tls"}).
        """
        for listener in self.listeners:
            if listener.transport == transport.lower():
                return listener.host, listener.port
        raise AssertionError(f"the config has no {transport} listener: {self.listeners}")

    def command(self) -> list[str]:
        """
        The command line that starts the service.
        """
        return [twistdPath(), "-n", "--pidfile=", "sbc", "--config", str(self.configPath)]

    def environment(self) -> dict[str, str]:
        """
        The child's environment: ours, with the checkout first on C{PYTHONPATH} so that both C{sbc} and
        its Twisted plugin are found even without an editable install.
        """
        env = dict(os.environ)
        paths = [str(self.repoRoot)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """
        Prepare the directory, start the child and wait until every listener is bound; on failure stop
        the child and raise with its log.

        A port is chosen free but bound only later, by the child, so another process can take it in
        between.  When the child fails for that reason (its log says so), fresh ports are chosen and
        it is started again, up to L{BIND_ATTEMPTS} times.
        """
        self.prepare()
        for attempt in range(1, BIND_ATTEMPTS + 1):
            logStart = self.logPath.stat().st_size if self.logPath.exists() else 0
            try:
                self.launch(timeout)
                # A failed bind's traceback belongs to the harness's race, not to the service.
                self.errorsFrom = logStart
                return
            except AssertionError:
                self.stop()
                if attempt == BIND_ATTEMPTS or not _lostAPort(self.log()[logStart:]):
                    raise
            self.portRetries += 1
            with self.logPath.open("ab") as log:
                log.write(b"--- (interop harness) a port was taken before the bind: retrying ---\n")
            self.ports = {}
            self.apiPort = None
            self.assignPorts()

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """
        Stop the child and start it again with the same config, ports and state directory, as an
        operator restarting the service would; wait until every listener is bound again.
        """
        self.stop()
        with self.logPath.open("ab") as log:
            log.write(b"--- (interop harness) restarting the service ---\n")
        self.launch(timeout)

    def launch(self, timeout: float = START_TIMEOUT) -> None:
        """
        Start the child in the prepared directory and wait until every listener is bound; on failure
        stop the child and raise with its log.  The log of an earlier run is kept: this one is appended.
        """
        if self.process is not None:
            raise RuntimeError("the service is already running")
        self._logFile = self.logPath.open("ab")
        logStart = self.logPath.stat().st_size
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._logFile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        pending = list(self.listeners)
        # A port someone else holds looks bound too: the service's own word that it bound them all
        # is what counts (it exits when one cannot be bound).
        while pending or READY not in self.log()[logStart:]:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the service exited with code {self.process.returncode} before it listened on "
                    f"{pending}\n{self.describe()}"
                )
            pending = [listener for listener in pending if not self._isBound(listener)]
            if not pending and READY in self.log()[logStart:]:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"the service did not listen on {pending} within {timeout}s\n{self.describe()}"
                )
            time.sleep(0.1)

    @staticmethod
    def _isBound(listener: Listener) -> bool:
        if listener.transport == UDP:
            return udpPortBound(listener.host, listener.port)
        return tcpPortListening(listener.host, listener.port)

    def stop(self) -> None:
        """
        Stop the child: SIGTERM, and SIGKILL when it has not exited within L{STOP_TIMEOUT} seconds.
        """
        process, self.process = self.process, None
        if process is not None:
            terminate(process)
        if self._logFile is not None:
            self._logFile.close()
            self._logFile = None

    @property
    def running(self) -> bool:
        """
        Whether the child is still alive.
        """
        return self.process is not None and self.process.poll() is None

    def errors(self) -> list[str]:
        """The signs of a failure inside the service that its log shows (tracebacks, unhandled
        errors); a clean run has none.
        """
        log = self.log()[self.errorsFrom :]
        return [sign for sign in SERVICE_ERRORS if sign in log]

    def log(self) -> str:
        """
        What the child has printed so far.
        """
        try:
            return self.logPath.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """
        The command, config and log of the child, for a failure message.
        """
        config = self.configPath.read_text(encoding="utf-8") if self.configPath.exists() else "(none)"
        return (
            f"--- command (cwd {self.directory}):\n{' '.join(self.command())}\n"
            f"--- config {self.configPath}:\n{config}\n"
            f"--- log {self.logPath}:\n{self.log()}"
        )

    def removeDirectory(self) -> None:
        """
        Delete the temporary directory.
        """
        shutil.rmtree(self.directory, ignore_errors=True)


def startService(
    testCase: SynchronousTestCase,
    timeout: float = START_TIMEOUT,
    *,
    settings: Mapping[str, Mapping[str, object]] | None = None,
    additions: Mapping[str, Sequence[str]] | None = None,
) -> ServiceProcess:
    """
    Start the service for C{testCase} and arrange, with C{addCleanup}, that it is killed and its
    directory deleted afterwards.  Put L{ServiceProcess.describe} into failure messages to see its log.

    @param settings: changes to the copied config, see L{ServiceProcess.settings}.
    @param additions: lines appended to copied files, see L{ServiceProcess.additions}.
    """
    service = ServiceProcess(settings=settings, additions=additions)
    testCase.addCleanup(service.removeDirectory)
    testCase.addCleanup(service.stop)
    service.start(timeout)
    return service
