"""Tests for sbc.config.registrants: the ``[registrants.NAME]`` tables, each key, its default and
its errors (named by file and key), password files, and the password kept out of reprs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sbc.config.limits import CallLimits
from sbc.config.registrants import Registrant
from sbc.config.sip import Transport
from tests.fakes import DEMO_TOML, ConfigTestCase

FULL = """
[registrants.peer-b]
registrar = "sip:127.0.0.5:5060"
aor = "sip:sbc-demo@peer-b.example"
auth_user = "sbc-auth"
password = "s3cret-pass"
expires = 900
outbound_proxy = "sip:127.0.0.6:5060"
transport = "udp"
route = "user:alice"
"""

MINIMAL = """
[registrants.peer-c]
registrar = "sip:registrar.peer-c.example"
aor = "sip:sbc@peer-c.example"
password = "pw"
"""


class RegistrantsConfigTests(ConfigTestCase):
    """What a registrant table loads to."""

    def registrants(self, toml: str) -> tuple[Registrant, ...]:
        """The registrants of the demo config plus ``toml``."""
        return self.load(DEMO_TOML + toml).registrants

    def test_noneByDefault(self) -> None:
        """Without the table there are no registrants."""
        self.assertEqual(self.load(DEMO_TOML).registrants, ())

    def test_everyKey(self) -> None:
        """Every key is read into its field."""
        (peer,) = self.registrants(FULL)
        self.assertEqual(
            peer,
            Registrant(
                name="peer-b",
                registrar="sip:127.0.0.5:5060",
                aor="sip:sbc-demo@peer-b.example",
                authUser="sbc-auth",
                password="s3cret-pass",
                expires=900,
                outboundProxy="sip:127.0.0.6:5060",
                transport=Transport.UDP,
                routeUser="alice",
            ),
        )

    def test_defaults(self) -> None:
        """auth_user defaults to the AOR's user, expires to 600, route to the chain, transport to UDP."""
        (peer,) = self.registrants(MINIMAL)
        self.assertEqual(peer.authUser, "sbc")
        self.assertEqual(peer.expires, 600)
        self.assertIsNone(peer.routeUser)
        self.assertIsNone(peer.outboundProxy)
        self.assertIs(peer.transport, Transport.UDP)

    def test_order(self) -> None:
        """Registrants come in the order written."""
        names = [r.name for r in self.registrants(FULL + MINIMAL)]
        self.assertEqual(names, ["peer-b", "peer-c"])

    def test_routeChainAndUserAtDomain(self) -> None:
        """route = "chain" is None; "user:NAME@domain" keeps the domain (lower case)."""
        (chain,) = self.registrants(MINIMAL + 'route = "chain"\n')
        self.assertIsNone(chain.routeUser)
        (user,) = self.registrants(MINIMAL + 'route = "user:bob@Demo.Example"\n')
        self.assertEqual(user.routeUser, "bob@demo.example")

    def test_passwordNotInRepr(self) -> None:
        """The password never shows in the repr (logs print reprs)."""
        (peer,) = self.registrants(FULL)
        self.assertNotIn("s3cret-pass", repr(peer))
        self.assertNotIn("s3cret-pass", repr(self.load(DEMO_TOML + FULL)))

    def test_passwordFile(self) -> None:
        """password_file is read (first line, relative to the config) and watched for reloads."""
        path = self.directory / "peer-b.password"
        path.write_text("from-a-file\n")
        os.chmod(path, 0o600)
        config = self.load(
            DEMO_TOML + MINIMAL.replace('password = "pw"', 'password_file = "peer-b.password"')
        )
        (peer,) = config.registrants
        self.assertEqual(peer.password, "from-a-file")
        self.assertIn(path, config.watchedFiles())
        self.assertNotIn("from-a-file", repr(peer))

    def test_passwordFileReadableByOthers(self) -> None:
        """A password file that other accounts can read is refused, naming the key and the fix."""
        path = self.directory / "peer-b.password"
        path.write_text("from-a-file\n")
        os.chmod(path, 0o644)
        error = self.error(
            DEMO_TOML + MINIMAL.replace('password = "pw"', 'password_file = "peer-b.password"')
        )
        self.assertEqual(error.key, "registrants.peer-c.password_file")
        self.assertIn("chmod 600", error.reason)
        self.assertNotIn("from-a-file", str(error))

    def test_passwordFileMissing(self) -> None:
        """A password file that cannot be read is refused with the reason."""
        error = self.error(DEMO_TOML + MINIMAL.replace('password = "pw"', 'password_file = "nothing"'))
        self.assertEqual(error.key, "registrants.peer-c.password_file")
        self.assertIn("cannot read", error.reason)


class RegistrantsTransportTests(ConfigTestCase):
    """TCP and TLS registrations, beside a listener of their transport."""

    def test_tcp(self) -> None:
        """transport = "tcp" loads with a TCP listener."""
        listen = '\n[[listen]]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = 5060\n'
        (peer,) = self.load(DEMO_TOML + listen + MINIMAL + 'transport = "tcp"\n').registrants
        self.assertIs(peer.transport, Transport.TCP)

    def test_tlsWithSips(self) -> None:
        """transport = "tls" takes sips: URIs."""
        tls = (
            '\n[tls]\ncertificate = "sbc.crt"\nkey = "sbc.key"\n'
            '\n[[listen]]\ntransport = "tls"\nhost = "127.0.0.1"\nport = 5061\n'
        )
        toml = MINIMAL.replace("sip:", "sips:") + 'transport = "tls"\n'
        (peer,) = self.load(DEMO_TOML + tls + toml).registrants
        self.assertEqual((peer.transport, peer.registrar), (Transport.TLS, "sips:registrar.peer-c.example"))


class RegistrantsConfigErrorTests(ConfigTestCase):
    """Each mistake is named by file and key."""

    def check(self, toml: str, key: str, words: str) -> None:
        """The demo config plus ``toml`` fails at ``key`` with ``words`` in the reason."""
        error = self.error(DEMO_TOML + toml)
        self.assertEqual(error.key, key)
        self.assertIn(words, error.reason)
        self.assertEqual(error.path, self.directory / "sbc.toml")

    def test_missingRegistrar(self) -> None:
        """registrar is required."""
        self.check(
            '[registrants.p]\naor = "sip:a@b.example"\npassword = "x"\n', "registrants.p.registrar", "missing"
        )

    def test_missingAor(self) -> None:
        """aor is required."""
        self.check(
            '[registrants.p]\nregistrar = "sip:b.example"\npassword = "x"\n', "registrants.p.aor", "missing"
        )

    def test_missingPassword(self) -> None:
        """A password (or password_file) is required."""
        self.check(
            '[registrants.p]\nregistrar = "sip:b.example"\naor = "sip:a@b.example"\n',
            "registrants.p.password",
            "password_file",
        )

    def test_bothPasswords(self) -> None:
        """password and password_file together are refused."""
        self.check(MINIMAL + 'password_file = "x"\n', "registrants.peer-c.password_file", "not both")

    def test_badURI(self) -> None:
        """A registrar that is not a SIP URI is refused."""
        self.check(
            MINIMAL.replace("sip:registrar.peer-c.example", "registrar.peer-c.example"),
            "registrants.peer-c.registrar",
            "not a SIP URI",
        )

    def test_registrarWithUser(self) -> None:
        """A registrar URI has no user part."""
        self.check(
            MINIMAL.replace("sip:registrar", "sip:x@registrar"), "registrants.peer-c.registrar", "user part"
        )

    def test_aorWithoutUser(self) -> None:
        """An AOR needs a user part."""
        self.check(
            MINIMAL.replace("sip:sbc@peer-c.example", "sip:peer-c.example"), "registrants.peer-c.aor", "user"
        )

    def test_passwordInURI(self) -> None:
        """A password inside a URI is refused, without echoing it."""
        error = self.error(DEMO_TOML + MINIMAL.replace("sip:sbc@", "sip:sbc:hunter2@"))
        self.assertEqual(error.key, "registrants.peer-c.aor")
        self.assertNotIn("hunter2", str(error))

    def test_badProxy(self) -> None:
        """outbound_proxy must be a SIP URI too."""
        self.check(MINIMAL + 'outbound_proxy = "http://x"\n', "registrants.peer-c.outbound_proxy", "sip:")

    def test_expiresRange(self) -> None:
        """expires must be at least 60 (a minute)."""
        self.check(MINIMAL + "expires = 0\n", "registrants.peer-c.expires", "between")
        self.check(MINIMAL + "expires = 59\n", "registrants.peer-c.expires", "between")

    def test_limits(self) -> None:
        """max_cps, cps_burst and max_calls load as a trunk's do; none by default."""
        (peer,) = self.load(
            DEMO_TOML + MINIMAL + "max_cps = 2.5\ncps_burst = 5\nmax_calls = 10\n"
        ).registrants
        self.assertEqual(peer.limits, CallLimits(maxCps=2.5, cpsBurst=5.0, maxCalls=10))
        (plain,) = self.load(DEMO_TOML + MINIMAL).registrants
        self.assertEqual(plain.limits, CallLimits())

    def test_limitErrors(self) -> None:
        """cps_burst needs max_cps, as for a trunk; accept (a trunk's number list) is refused."""
        self.check(MINIMAL + "cps_burst = 5\n", "registrants.peer-c.cps_burst", "max_cps")
        self.check(MINIMAL + 'accept = ["+1*"]\n', "registrants.peer-c.accept", "trunk")

    def test_transportNeedsListener(self) -> None:
        """tcp or tls needs a listener of that transport (our Contact names it); other words fail."""
        self.check(
            MINIMAL + 'transport = "tcp"\n',
            "registrants.peer-c.transport",
            '[[listen]] table with transport = "tcp"',
        )
        self.check(MINIMAL + 'transport = "sctp"\n', "registrants.peer-c.transport", '"udp"')

    def test_sipsOverUDP(self) -> None:
        """sips: needs transport = "tls"."""
        self.check(MINIMAL.replace("sip:registrar", "sips:registrar"), "registrants.peer-c.registrar", "tls")

    def test_badRoute(self) -> None:
        """route is "chain" or "user:NAME"."""
        self.check(MINIMAL + 'route = "trunk:demo"\n', "registrants.peer-c.route", "chain")
        self.check(MINIMAL + 'route = "user:"\n', "registrants.peer-c.route", "user:NAME")

    def test_badName(self) -> None:
        """A name with characters outside letters, digits, - and _ is refused."""
        self.check(MINIMAL.replace("peer-c", '"peer c"', 1), "registrants.peer c", "names")

    def test_unknownKey(self) -> None:
        """A typo is refused."""
        self.check(MINIMAL + "expire = 60\n", "registrants.peer-c.expire", "unknown key")


class ShippedExampleTests(ConfigTestCase):
    """etc/sbc.toml documents every key."""

    def test_shippedExampleLoads(self) -> None:
        """The commented ``[registrants.peer-b]`` example loads once uncommented (password_file aside)."""
        shipped = (Path(__file__).resolve().parents[1] / "etc" / "sbc.toml").read_text()
        start = shipped.index("#[registrants.peer-b]")
        block = shipped[start : shipped.index("\n\n", start)]
        lines = [line[1:] for line in block.splitlines() if re.match(r"#(\[|[a-z_]+ =)", line)]
        keys = {line.split(" =")[0] for line in lines[1:]}
        self.assertEqual(
            keys,
            {
                "registrar",
                "aor",
                "auth_user",
                "password",
                "password_file",
                "expires",
                "outbound_proxy",
                "transport",
                "route",
                "max_cps",
                "cps_burst",
                "max_calls",
            },
        )
        toml = "\n".join(line for line in lines if not line.startswith("password_file"))
        (peer,) = self.load(DEMO_TOML + "\n" + toml + "\n").registrants
        self.assertEqual(
            (peer.name, peer.registrar, peer.routeUser), ("peer-b", "sip:127.0.0.5:5060", "alice")
        )
        self.assertEqual(peer.limits, CallLimits(maxCps=5, cpsBurst=10, maxCalls=50))
