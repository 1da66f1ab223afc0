"""Tests for sbc.ops.configctl (sbc-ctl check, explain, reload), with sbc.ops.check, explain and pidfile."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config import Transport, loadConfig
from sbc.ops import configctl, ctl
from sbc.ops.explain import Source, SourceError, explainSource, parseSource, readBans
from sbc.ops.pidfile import DEFAULT_PIDFILE
from sbc.ops.starter import writeSelfSignedCertificate
from sbc.ops.state import BanTable, openDatabase
from sbc.tap import Options
from tests.fakes import DEMO_TOML, writeConfig

DEVICES_TOML = (
    DEMO_TOML
    + """
[devices]
whitelist = "whitelist/devices.txt"

[registrar]
domains = ["example.com"]
users = "users.txt"
"""
)

TLS_TOML = (
    DEMO_TOML.replace('gateways = ["127.0.0.2:5080"]', 'gateways = ["127.0.0.2:5081;transport=tls"]')
    + """require_tls = true

[[listen]]
transport = "tls"
host = "127.0.0.1"
port = 5061

[tls]
certificate = "sbc.crt"
key = "sbc.key"
"""
)

ROUTING = """
[[routing.routes]]
prefix = "+49"
trunks = ["demo"]
"""
ROUTED_TOML = DEVICES_TOML + ROUTING

NOW = 1_800_000_000.0


class CommandTestCase(SynchronousTestCase):
    """A temporary config directory, and `sbc-ctl` run on it with its output captured."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.patch(configctl, "WALL_CLOCK", lambda: NOW)

    def write(self, toml: str = DEVICES_TOML, whitelist: str = "# the demo trunk\n127.0.0.2/32\n") -> Path:
        (self.directory / "whitelist").mkdir(exist_ok=True)
        (self.directory / "whitelist" / "devices.txt").write_text("# phones\n\n127.0.0.4/30\n")
        (self.directory / "users.txt").write_text("")
        (self.directory / "users.txt").chmod(0o600)
        (self.directory / "state").mkdir(mode=0o700, exist_ok=True)
        return writeConfig(self.directory, toml, whitelist)

    def sbcCtl(self, *argv: str) -> tuple[int, str, str]:
        """Run sbc-ctl; returns (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = ctl.main(list(argv))
        return status, out.getvalue(), err.getvalue()


class CheckTests(CommandTestCase):
    def test_good(self) -> None:
        """A config that loads exits 0 with one line: its trunks, whitelisted networks and users."""
        path = self.write()
        self.assertEqual(
            self.sbcCtl("check", "--config", str(path)),
            (0, f"{path}: OK: 1 trunk (demo), 2 networks whitelisted, 0 users\n", ""),
        )

    def test_badWhitelistLine(self) -> None:
        """A bad whitelist line fails the check with its file and line."""
        path = self.write(whitelist="127.0.0.2/32\n# next\nnot-an-address\n")
        status, out, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual((status, out), (1, ""))
        self.assertIn(f"sbc-ctl: {self.directory / 'whitelist' / 'demo.txt'}:3: ", err)

    def test_badKey(self) -> None:
        """A mistake in sbc.toml names the file and the key."""
        path = self.write(DEMO_TOML + "failover_timeout = -1\n")
        status, _, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn(f"{path}: trunks.demo.failover_timeout: ", err)

    def test_brokenHook(self) -> None:
        """The routing hook is loaded as the server loads it: one that does not import fails the check."""
        (self.directory / "routing.py").write_text("def route(call:\n")
        path = self.write(DEMO_TOML + '\n[routing]\nhook = "routing.py"\n')
        status, _, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("routing.py", err)

    def test_missingTLSFiles(self) -> None:
        """The TLS files are read as at the server's start: a missing key fails the check."""
        path = self.write(TLS_TOML)
        status, _, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("sbc.crt", err)

    def test_warningsDoNotFail(self) -> None:
        """Warnings (here: a users file others can read) are printed, and the check still passes."""
        path = self.write()
        (self.directory / "users.txt").chmod(0o644)
        status, out, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertIn("OK:", out)
        self.assertIn("sbc-ctl: warning: the users file", err)

    def test_gatewayOutsideWhitelist(self) -> None:
        """A gateway outside its trunk's whitelist is a warning from the loader; the check passes."""
        path = self.write(whitelist="127.0.0.3/32\n")
        status, out, err = self.sbcCtl("check", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertIn("OK:", out)
        self.assertIn("warning: trunk demo: gateway 127.0.0.2:5080 is not in the trunk's whitelist", err)

    def test_defaultConfig(self) -> None:
        """Without --config the file is twistd sbc's own default."""
        self.assertEqual(configctl.DEFAULT_CONFIG, Path(Options()["config"]))
        self.write()
        (self.directory / "etc").mkdir()
        shutil.move(self.directory / "sbc.toml", self.directory / "etc" / "sbc.toml")
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.directory)
        status, _, err = self.sbcCtl("check")
        self.assertEqual(status, 1)  # its whitelist path is now relative to etc/, where there is none
        self.assertIn("etc/whitelist/demo.txt", err)


class ExplainSourceTests(CommandTestCase):
    def test_trunk(self) -> None:
        """A trunk source is accepted by the whitelist line that holds it, named by file and line."""
        path = self.write()
        status, out, err = self.sbcCtl("explain", "127.0.0.2:5062", "--config", str(path))
        self.assertEqual((status, err), (0, ""))
        whitelist = self.directory / "whitelist" / "demo.txt"
        self.assertEqual(out, f"127.0.0.2:5062: accepted: trunk demo, by 127.0.0.2/32 ({whitelist}:2)\n")

    def test_device(self) -> None:
        """A device source is accepted by the device network's line."""
        path = self.write()
        status, out, _ = self.sbcCtl("explain", "127.0.0.5", "--config", str(path))
        self.assertEqual(status, 0)
        whitelist = self.directory / "whitelist" / "devices.txt"
        self.assertEqual(out, f"127.0.0.5: accepted: a device network, by 127.0.0.4/30 ({whitelist}:3)\n")

    def test_stranger(self) -> None:
        """A source no whitelist holds is dropped, exit 1, and the reason says so."""
        path = self.write()
        status, out, _ = self.sbcCtl("explain", "127.0.0.9", "--config", str(path))
        self.assertEqual(status, 1)
        expected = "127.0.0.9: dropped: no trunk whitelist and no device network holds 127.0.0.9\n"
        self.assertEqual(out, expected)

    def test_banned(self) -> None:
        """A ban in force in the state database drops the source, with its end and reason."""
        path = self.write()
        table = BanTable(openDatabase(self.directory / "state" / "sbc.sqlite"))
        table.save("127.0.0.5", NOW + 60, "5 failed authentications as 'alice'")
        table.save("127.0.0.6", NOW - 1, "over")
        status, out, _ = self.sbcCtl("explain", "127.0.0.5", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("127.0.0.5: dropped: 127.0.0.5 is banned until 2027-01-15 08:01:00 UTC", out)
        self.assertIn("(5 failed authentications as 'alice'); it is a device network", out)
        self.assertEqual(self.sbcCtl("explain", "127.0.0.6", "--config", str(path))[0], 0)

    def test_noStateDatabase(self) -> None:
        """Without a state database (the SBC never ran) nothing is banned, and none is created."""
        path = self.write()
        status, out, _ = self.sbcCtl("explain", "127.0.0.2", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertEqual(out.count("\n"), 1)
        self.assertFalse((self.directory / "state" / "sbc.sqlite").exists())

    def test_requireTLS(self) -> None:
        """A trunk that requires TLS: its source over UDP is dropped (saying why), over TLS accepted."""
        writeSelfSignedCertificate(self.directory)
        path = self.write(TLS_TOML)
        status, out, _ = self.sbcCtl("explain", "127.0.0.2", "--transport", "udp", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("127.0.0.2 over udp: dropped: trunk demo requires TLS", out)
        status, out, _ = self.sbcCtl("explain", "127.0.0.2", "--transport", "tls", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertIn("127.0.0.2 over tls: accepted: trunk demo", out)

    def test_requireTLSWithoutTransport(self) -> None:
        """Without --transport, a TLS-only trunk's source is accepted with a line saying TLS only."""
        writeSelfSignedCertificate(self.directory)
        path = self.write(TLS_TOML)
        status, out, _ = self.sbcCtl("explain", "127.0.0.2", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertIn("127.0.0.2: accepted: trunk demo", out)
        self.assertIn("  over TLS only: trunk demo requires TLS, its UDP and TCP are dropped", out)

    def test_gatewayNamesNamed(self) -> None:
        """A source no file holds: a trunk with whitelist_gateways says which names would admit it."""
        toml = DEVICES_TOML.replace(
            'gateways = ["127.0.0.2:5080"]',
            'gateways = ["gw.peer.example", "127.0.0.3"]\nwhitelist_gateways = true',
        )
        path = self.write(toml)
        status, out, _ = self.sbcCtl("explain", "127.0.0.9", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertEqual(
            out.splitlines(),
            [
                "127.0.0.9: dropped: no trunk whitelist and no device network holds 127.0.0.9",
                "  unless gw.peer.example resolves to it: then it is trunk demo (whitelist_gateways),"
                " as long as DNS says so",
            ],
        )

    def test_registrar(self) -> None:
        """A registrant's registrar given by address is accepted as the running gate takes it."""
        toml = DEVICES_TOML + (
            '\n[registrants.peer-b]\nregistrar = "sip:127.0.0.9"\naor = "sip:sbc@peer-b.example"\n'
            'password = "secret"\n'
        )
        path = self.write(toml)
        status, out, _ = self.sbcCtl("explain", "127.0.0.9", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertEqual(
            out.splitlines(),
            [
                "127.0.0.9: accepted: the registrar of registrant peer-b",
                "  only for new INVITEs to the Contact of registrant peer-b (over udp); any other new"
                " INVITE gets 404, REGISTER 403",
            ],
        )

    def test_registrarOfSeveral(self) -> None:
        """A registrar of several registrants names them all (not the first alone), each with its
        transport."""
        toml = DEVICES_TOML + (
            '\n[[listen]]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = 5062\n'
            '\n[registrants.peer-b]\nregistrar = "sip:127.0.0.9"\naor = "sip:sbc@peer-b.example"\n'
            'password = "secret"\n'
            '\n[registrants.peer-c]\nregistrar = "sip:127.0.0.9"\naor = "sip:sbc@peer-c.example"\n'
            'password = "secret"\ntransport = "tcp"\n'
        )
        path = self.write(toml)
        status, out, _ = self.sbcCtl("explain", "127.0.0.9", "--config", str(path))
        self.assertEqual(status, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0], "127.0.0.9: accepted: the registrar of registrants peer-b, peer-c")
        self.assertIn("registrant peer-b (over udp), peer-c (over tcp);", lines[1])

    def test_noListener(self) -> None:
        """A transport no [[listen]] table takes is dropped."""
        path = self.write()
        status, out, _ = self.sbcCtl("explain", "127.0.0.2", "--transport", "tcp", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("dropped: no [[listen]] table", out)

    def test_badSource(self) -> None:
        """A source that is not IP[:PORT] is a usage error."""
        path = self.write()
        for text in ("sip.example.com", "127.0.0.2:99999", "[::1"):
            status, _, err = self.sbcCtl("explain", text, "--config", str(path))
            self.assertEqual(status, 2, text)
            self.assertIn("error:", err)

    def test_brokenConfig(self) -> None:
        """explain on a config that does not load reports the problem like check."""
        path = self.write(whitelist="nonsense\n")
        status, _, err = self.sbcCtl("explain", "127.0.0.2", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("demo.txt:1:", err)


class SourceTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """IPv4 and IPv6, with and without a port, as ops write them."""
        self.assertEqual(parseSource("203.0.113.5"), Source("203.0.113.5"))
        self.assertEqual(parseSource("203.0.113.5:5060"), Source("203.0.113.5", 5060))
        self.assertEqual(parseSource("2001:DB8::1"), Source("2001:db8::1"))
        self.assertEqual(parseSource("[2001:db8::1]:5061"), Source("2001:db8::1", 5061))
        self.assertEqual(str(Source("2001:db8::1", 5061)), "[2001:db8::1]:5061")
        self.assertRaises(SourceError, parseSource, "[2001:db8::1]x")

    def test_ipv6BanByPrefix(self) -> None:
        """An IPv6 source is dropped by a ban on its network, as the server bans by prefix."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        toml = DEMO_TOML.replace('host = "127.0.0.1"', 'host = "::1"')
        config = loadConfig(writeConfig(directory, toml, "2001:db8::/32\n"))
        bans = {"2001:db8:0:1::/64": (NOW + 1, "flood")}
        banned = explainSource(config, Source("2001:db8:0:1::99"), Transport.UDP, bans, NOW)
        self.assertFalse(banned.accepted)
        self.assertIn("2001:db8:0:1::/64 is banned", banned.lines[0])
        self.assertTrue(explainSource(config, Source("2001:db8:0:2::1"), None, bans, NOW).accepted)

    def test_unreadableDatabase(self) -> None:
        """A state database that cannot be read gives a sentence, not an exception."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (directory / "sbc.sqlite").write_bytes(b"not a database" * 100)
        found = readBans(directory / "sbc.sqlite")
        self.assertIsInstance(found, str)
        self.assertIn("cannot read bans", str(found))

    def test_unreadableNoted(self) -> None:
        """explain says when bans could not be read, and still answers from the whitelists."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        config = loadConfig(writeConfig(directory))
        explained = explainSource(config, Source("127.0.0.2"), None, "cannot read bans from x", NOW)
        self.assertTrue(explained.accepted)
        self.assertEqual(explained.lines[1], "  (bans unknown: cannot read bans from x)")


class ExplainCallTests(CommandTestCase):
    def test_ruleByRule(self) -> None:
        """--call prints each router's answer in order, the chosen one marked, then the result."""
        path = self.write(ROUTED_TOML)
        status, out, err = self.sbcCtl(
            "explain", "--call", "127.0.0.5", "+4930123", "--as", "alice@example.com", "--config", str(path)
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(
            out.splitlines(),
            [
                "call from 127.0.0.5 (a device network, authenticated as alice@example.com)"
                " to +4930123@example.com:",
                "  static: trunk demo +4930123  <- chosen",
                "  registrar: pass",
                "  trunks: trunk demo +4930123  (not reached)",
                "result: static: trunk demo +4930123",
            ],
        )

    def test_trunkCallNoRoute(self) -> None:
        """A trunk's call to a number nobody serves ends in 404, as the chain decides for the server."""
        path = self.write(ROUTED_TOML)
        status, out, _ = self.sbcCtl("explain", "--call", "127.0.0.2", "+4930123", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertIn("call from 127.0.0.2 (trunk demo) to +4930123@example.com:", out)
        self.assertTrue(out.endswith("result: chain: reject 404 No route\n"), out)

    def test_trunkAcceptListRefuses(self) -> None:
        """A trunk's number outside its accept list is refused with 404 before routing; its
        limits are said."""
        limits = '\nmax_cps = 5\nmax_calls = 10\naccept = ["+4930*"]\n'
        path = self.write(
            ROUTED_TOML.replace('gateways = ["127.0.0.2:5080"]\n', 'gateways = ["127.0.0.2:5080"]' + limits)
        )
        status, out, _ = self.sbcCtl("explain", "--call", "127.0.0.2", "+4940123", "--config", str(path))
        self.assertEqual(status, 0)
        self.assertEqual(
            out.splitlines(),
            [
                "call from 127.0.0.2 (trunk demo) to +4940123@example.com:",
                "  trunk demo limits: max_cps 5 (burst 5), max_calls 10: past either, 503 with Retry-After",
                "  trunk demo may not call +4940123: not in accept = [+4930*]  <- refused",
                "result: reject 404 Not Found (trunk accept list)",
            ],
        )
        status, out, _ = self.sbcCtl("explain", "--call", "127.0.0.2", "+4930123", "--config", str(path))
        self.assertIn("  trunk demo accepts +4930123 (accept = +4930*)", out)
        self.assertNotIn("refused", out)  # the chain decides from here on

    def test_hookAnswers(self) -> None:
        """The hook is asked first, as in the server's chain."""
        (self.directory / "routing.py").write_text(
            "from sbc.hook import reject\n"
            "def route(call):\n"
            "    return reject(603, 'Declined') if call.user == '666' else None\n"
        )
        path = self.write(DEVICES_TOML + '\n[routing]\nhook = "routing.py"\n' + ROUTING)
        status, out, _ = self.sbcCtl(
            "explain", "--call", "127.0.0.5", "666", "--as", "alice@example.com", "--config", str(path)
        )
        self.assertEqual(status, 0, out)
        self.assertEqual(out.splitlines()[1], "  hook: reject 603 Declined  <- chosen")

    def test_deviceNeedsAccount(self) -> None:
        """A device's call without --as is a usage error: devices are routed only once authenticated."""
        path = self.write(ROUTED_TOML)
        status, _, err = self.sbcCtl("explain", "--call", "127.0.0.5", "+4930123", "--config", str(path))
        self.assertEqual(status, 2)
        self.assertIn("--as USER@DOMAIN", err)

    def test_stranger(self) -> None:
        """A call from a source no whitelist holds never reaches routing: exit 1."""
        path = self.write(ROUTED_TOML)
        status, out, _ = self.sbcCtl("explain", "--call", "127.0.0.9", "+4930123", "--config", str(path))
        self.assertEqual(status, 1)
        self.assertIn("dropped at the gate", out)

    def test_numberOnlyWithCall(self) -> None:
        """NUMBER without --call, or --call without NUMBER, is a usage error."""
        path = self.write()
        self.assertEqual(self.sbcCtl("explain", "127.0.0.2", "123", "--config", str(path))[0], 2)
        self.assertEqual(self.sbcCtl("explain", "--call", "127.0.0.2", "--config", str(path))[0], 2)


class ReloadTests(CommandTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.signals: list[tuple[int, int]] = []
        self.pidfile = self.directory / "twistd.pid"

    def test_signals(self) -> None:
        """reload sends SIGHUP to the process the pidfile names."""
        self.pidfile.write_text(f"{os.getpid()}\n")
        self.patch(os, "kill", lambda pid, number: self.signals.append((pid, number)))
        status, out, _ = self.sbcCtl("reload", "--pidfile", str(self.pidfile))
        self.assertEqual(status, 0)
        self.assertEqual(self.signals, [(os.getpid(), signal.SIGHUP)])
        self.assertIn(f"sent SIGHUP to the SBC (process {os.getpid()}", out)

    def test_defaultPidfile(self) -> None:
        """Without --pidfile, twistd's default twistd.pid in the working directory is read."""
        self.pidfile.write_text("4242")
        self.patch(os, "kill", lambda pid, number: self.signals.append((pid, number)))
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.directory)
        self.assertEqual(self.sbcCtl("reload")[0], 0)
        self.assertEqual(self.signals, [(4242, signal.SIGHUP)])

    def test_makeRunWritesTheDefaultPidfile(self) -> None:
        """`make run` (run in the checkout) has twistd write its pid where a plain `sbc-ctl reload`
        in the checkout looks, so that it reloads the demo."""
        makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
        recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
        (twistd,) = [line for line in recipe.splitlines() if "/bin/twistd " in line]
        options = [word for word in twistd.split() if word.startswith("--pidfile")]
        self.assertEqual(options, [f"--pidfile={DEFAULT_PIDFILE}"])

    def test_missing(self) -> None:
        """A missing pidfile is a clear error, exit 1."""
        status, _, err = self.sbcCtl("reload", "--pidfile", str(self.pidfile))
        self.assertEqual(status, 1)
        self.assertIn(f"no pidfile at {self.pidfile}", err)

    def test_stale(self) -> None:
        """A pidfile whose process is gone is called stale, exit 1."""
        self.pidfile.write_text("4242\n")

        def kill(pid: int, number: int) -> None:
            raise ProcessLookupError(pid)

        self.patch(os, "kill", kill)
        status, _, err = self.sbcCtl("reload", "--pidfile", str(self.pidfile))
        self.assertEqual(status, 1)
        self.assertIn("is stale: no process 4242 is running", err)

    def test_garbage(self) -> None:
        """A pidfile without a process id is refused without signalling anything."""
        self.patch(os, "kill", lambda pid, number: self.signals.append((pid, number)))
        for text in ("", "abc", "0", "-1"):
            self.pidfile.write_text(text)
            status, _, err = self.sbcCtl("reload", "--pidfile", str(self.pidfile))
            self.assertEqual(status, 1, text)
            self.assertIn("does not hold a process id", err)
        self.assertEqual(self.signals, [])
