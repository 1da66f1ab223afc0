"""
The systems under test.  Each is a child process on a loopback address of its own, started with
C{start()}, bounded in time (coreutils C{timeout}), and killed with its whole process group by
C{stop()}.  A system that cannot start raises L{UnavailableError}, and the run goes on without it.

  - L{Ceiling}: no system at all, the caller calls the callee straight (SIPp's own ceiling);
  - L{Kamailio}: Debian's Kamailio as a stateful proxy (C{bench/kamailio.cfg}), optionally with topoh;
  - L{Sippy}: Sippy B2BUA's C{b2bua} with a static route, no auth (C{-u}), no accounting (C{-A 0});
  - L{Sbc}: C{twistd -n sbc} with a bench config (two trunks, a transit route, media bypassed, or
    anchored in its built-in relay or an rtpengine daemon).

The systems that anchor media with rtpengine (they start the daemon beside themselves) are in
L{bench.anchored}.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from tests.interop.ports import UDP, freePort, udpPortBound
from tests.interop.processes import stopGroup

from .sipp import CALLEE_HOST, CALLER_HOST

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# No child outlives this many seconds, whatever happens to the harness.
LIFETIME = 1800
START_TIMEOUT = 20.0


def raiseFileLimit() -> str:
    """Raise this process's open-file soft limit to the hard one, for the systems it starts (they
    inherit it: sbc's relay keeps a descriptor per port of its range); a note saying what they got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)

    def shown(limit: int) -> str:
        return "unlimited" if limit == resource.RLIM_INFINITY else f"{limit:,}"

    raised = "" if now == soft else f", raised from {shown(soft)}"
    return f"The systems ran with an open-file limit (RLIMIT_NOFILE) of {shown(now)}{raised}."


class UnavailableError(Exception):
    """The system could not be started (or is not installed); the message says why."""


class System(ABC):
    """
    One system under test.

    @ivar key: a short name for the JSON output and the command line, e.g. C{"kamailio-topoh"}.
    @ivar label: the row's name in the table.
    @ivar host: the loopback address it listens on.
    @ivar sendsRtp: whether its calls carry RTP (the anchored-media rows): SIPp then runs the RTP
        scenarios, whose SDP names ports that SIPp really sends from.
    """

    key: str
    label: str
    host: str
    sendsRtp: bool = False

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.directory: Path | None = None
        self.port = 0

    def start(self, calleePort: int) -> tuple[str, int]:
        """Start it, sending calls on to the callee at 127.0.0.3:C{calleePort}; where to send calls."""
        self.directory = Path(tempfile.mkdtemp(prefix=f"sbc-bench-{self.key}-"))
        self.port = freePort(self.host, (UDP,))
        command = self.command(calleePort)
        with (self.directory / "output.log").open("wb") as output:
            try:
                self.process = subprocess.Popen(
                    ["timeout", "--kill-after=5", str(LIFETIME), *command],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.environment()},
                    start_new_session=True,
                )
            except OSError as e:
                raise UnavailableError(f"cannot run {command[0]}: {e}") from e
        deadline = time.monotonic() + START_TIMEOUT
        while not udpPortBound(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise UnavailableError(f"{self.label} did not start listening: {log[-600:]}")
            time.sleep(0.05)
        return (self.host, self.port)

    @property
    def measuredPid(self) -> int | None:
        """
        The root of the process tree that is measured: the coreutils C{timeout} that runs the system
        (its own CPU time and memory are a rounding error, and constant), or C{None} when not running.
        """
        return None if self.process is None else self.process.pid

    @property
    def mediaPid(self) -> int | None:
        """
        The root of the media engine's process tree when one runs beside the system (rtpengine), whose
        CPU time and memory count with the system's; C{None} when there is none.
        """
        return None

    def relayedPackets(self) -> int | None:
        """RTP packets its media engine relayed so far, when the engine says (rtpengine does)."""
        return None

    def stop(self) -> None:
        """Stop it and everything it started: SIGTERM to its process group, SIGKILL after a while."""
        if self.process is not None:
            stopGroup(self.process)
        # Children that ignored SIGTERM (kamailio workers, say) go with the group.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log(self) -> str:
        """What the system printed so far."""
        if self.directory is None:
            return ""
        try:
            return (self.directory / "output.log").read_text(errors="replace")
        except OSError:
            return ""

    def environment(self) -> Mapping[str, str]:
        """Extra environment variables for the system's process."""
        return {}

    @abstractmethod
    def command(self, calleePort: int) -> Sequence[str]:
        """The command line, after writing any files it needs into L{directory}."""

    def version(self) -> str:
        """The version that runs, for the table."""
        return ""


class Ceiling(System):
    """No system under test: SIPp calls SIPp straight, the load generator's own ceiling."""

    key = "sipp"
    label = "SIPp straight to SIPp (load-generator ceiling)"
    host = CALLEE_HOST

    def start(self, calleePort: int) -> tuple[str, int]:
        return (CALLEE_HOST, calleePort)

    @property
    def measuredPid(self) -> int | None:
        return None

    def stop(self) -> None:
        """Nothing runs."""

    def command(self, calleePort: int) -> Sequence[str]:
        return ()

    def version(self) -> str:
        return _firstMatch(["sipp", "-v"], r"SIPp v([0-9.]+)")


class Kamailio(System):
    """Kamailio 5.x from Debian, as a stateful proxy, with or without the topoh module."""

    def __init__(self, topoh: bool) -> None:
        super().__init__()
        self.topoh = topoh
        self.key = "kamailio-topoh" if topoh else "kamailio"
        self.label = "Kamailio + topoh" if topoh else "Kamailio, stateful proxy"
        self.host = "127.0.0.5" if topoh else "127.0.0.4"

    # The config file in bench/ that this row runs.
    configName = "kamailio.cfg"

    def defines(self, calleePort: int) -> list[str]:
        """The lines put after the config's first: where it listens, where calls go, the options."""
        return [
            f'#!substdef "!SUT_HOST!{self.host}!g"\n',
            f'#!substdef "!SUT_PORT!{self.port}!g"\n',
            f'#!substdef "!UAS_HOSTPORT!{CALLEE_HOST}:{calleePort}!g"\n',
            *(["#!define WITH_TOPOH\n"] if self.topoh else []),
        ]

    def command(self, calleePort: int) -> Sequence[str]:
        if shutil.which("kamailio") is None:
            raise UnavailableError("kamailio is not installed (apt-get install kamailio)")
        assert self.directory is not None
        lines = (HERE / self.configName).read_text().splitlines(keepends=True)
        config = self.directory / "kamailio.cfg"
        config.write_text("".join([lines[0], *self.defines(calleePort), *lines[1:]]))
        # -DD: no daemon, but the usual worker processes; -E: log to stderr.
        runtime = str(self.directory)
        return ["kamailio", "-DD", "-E", "-f", str(config), "-m", "256", "-M", "16", "-Y", runtime]

    def version(self) -> str:
        return _firstMatch(["kamailio", "-v"], r"kamailio ([0-9.]+)")


class Sippy(System):
    """Sippy B2BUA's C{b2bua}, installed from PyPI into a virtual environment of its own."""

    key = "sippy"
    host = "127.0.0.7"

    def __init__(self, venv: Path | None, version: str = "") -> None:
        super().__init__()
        self.venv = venv
        self.installed = version
        self.label = f"Sippy B2BUA {version}".strip()

    def environment(self) -> Mapping[str, str]:
        return {"SIPLOG_BEND": "none"}

    def command(self, calleePort: int) -> Sequence[str]:
        if self.venv is None or not (self.venv / "bin" / "b2bua").exists():
            raise UnavailableError("Sippy B2BUA is not installed (pip install sippy into bench/.venv-sippy)")
        assert self.directory is not None
        return [
            str(self.venv / "bin" / "b2bua"),
            "-f",
            "-l", self.host,
            "-p", str(self.port),
            "-s", f"{CALLEE_HOST}:{calleePort}",
            "-u",
            "-A", "0",
            "-c", str(self.directory / "b2bua.sock"),
            "-P", str(self.directory / "b2bua.pid"),
            "-L", str(self.directory / "b2bua.log"),
        ]  # fmt: skip

    def version(self) -> str:
        return self.installed


class Media(StrEnum):
    """How sbc handles a call's media: its SDP untouched, or anchored in the relay or rtpengine."""

    BYPASS = "bypass"
    RELAY = "relay"
    RTPENGINE = "rtpengine"


class Sbc(System):
    """
    This project's SBC, C{twistd -n sbc}, with a bench config: trunk "uac" (127.0.0.2) calls through a
    transit route to trunk "uas" (the callee at 127.0.0.3), media bypassed unless C{media} says
    otherwise (with L{Media.RTPENGINE}, L{rtpengine} must name the daemon's ng address before
    L{start}).

    @ivar mediaPorts: the relay's port range; C{None} picks 200 ports from a free one at each start.
    """

    def __init__(
        self,
        python: Path,
        label: str = "sbc",
        key: str = "sbc",
        host: str = "127.0.0.6",
        media: Media = Media.BYPASS,
        mediaPorts: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.python = python
        self.label = label
        self.key = key
        self.host = host
        self.media = media
        self.sendsRtp = media is not Media.BYPASS
        self.fixedPorts = mediaPorts
        self.mediaPorts = mediaPorts or (0, 0)
        self.rtpengine: tuple[str, int] | None = None

    def command(self, calleePort: int) -> Sequence[str]:
        assert self.directory is not None
        twistd = self.python.parent / "twistd"
        if not twistd.exists():
            raise UnavailableError(f"no twistd beside {self.python}")
        whitelists = self.directory / "whitelist"
        whitelists.mkdir()
        (whitelists / "uac.txt").write_text(f"{CALLER_HOST}/32\n")
        (whitelists / "uas.txt").write_text(f"{CALLEE_HOST}/32\n")
        if self.fixedPorts is None:
            low = freePort(self.host, (UDP,))
            low = min(low - low % 2, 65000)
            self.mediaPorts = (low, low + 199)
        (self.directory / "sbc.toml").write_text(self.config(calleePort))
        return [str(twistd), "-n", "--pidfile=", "sbc", "--config", str(self.directory / "sbc.toml")]

    def config(self, calleePort: int) -> str:
        """The bench's sbc.toml, sending calls on to the callee at 127.0.0.3:C{calleePort}."""
        trunkMedia = "bypass" if self.media is Media.BYPASS else "relay"
        engine = 'engine = "relay"'
        if self.media is Media.RTPENGINE:
            if self.rtpengine is None:
                raise UnavailableError("no rtpengine daemon to anchor media in")
            engine = f'engine = "rtpengine"\nrtpengine = "{self.rtpengine[0]}:{self.rtpengine[1]}"'
        if self.media is not Media.BYPASS:
            # No quota below what the ramp's calls hold at once (four ports a call).
            engine += "\nmax_ports_per_trunk = 1000000"
        return f"""# sbc as the benchmark runs it (written by bench/systems.py).
[state]
directory = "state"

[whitelist]
poll_interval = 60.0

[[listen]]
transport = "udp"
host = "{self.host}"
port = {self.port}

[[routing.routes]]
prefix = "*"
trunks = ["uas"]
transit = true

[media]
{engine}
address = "{self.host}"
port_min = {self.mediaPorts[0]}
port_max = {self.mediaPorts[1]}

[trunks.uac]
whitelist = "whitelist/uac.txt"
media = "{trunkMedia}"

[trunks.uas]
whitelist = "whitelist/uas.txt"
gateways = ["{CALLEE_HOST}:{calleePort}"]
media = "{trunkMedia}"
"""

    def environment(self) -> Mapping[str, str]:
        # The checkout on the path, for Twisted's plugin loader (editable installs do the same).
        return {"PYTHONPATH": str(REPO)}

    def version(self) -> str:
        """The interpreter, and whether it runs the codec compiled (`make compiled`) or as pure Python."""
        query = (
            "import platform, sbc; print(platform.python_implementation(), platform.python_version() + ',', "
            "'codec compiled by mypyc' if sbc.CODEC_COMPILED else 'codec as pure Python')"
        )
        return _firstMatch(
            [str(self.python), "-c", query], r"(\S+ [0-9.]+, codec .+)", {**os.environ, **self.environment()}
        )


def _firstMatch(command: Sequence[str], pattern: str, environment: Mapping[str, str] | None = None) -> str:
    """The first group of C{pattern} in a command's output; empty when it cannot run or nothing matches."""
    try:
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=20, check=False, env=environment
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(pattern, output.stdout + output.stderr)
    return match.group(1) if match else ""


__all__ = [
    "CALLER_HOST",
    "Ceiling",
    "Kamailio",
    "Media",
    "Sbc",
    "Sippy",
    "System",
    "UnavailableError",
    "raiseFileLimit",
]
