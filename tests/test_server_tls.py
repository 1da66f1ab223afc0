"""Tests for sbc.server's TLS rules: a trunk that requires TLS (and names identities) at the gate."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import Config, loadConfig
from sbc.config.errors import ConfigError
from sbc.server import SIPServer
from sbc.sip import Response
from tests.fakes import DEMO_TOML, RecordingTransport, options, writeConfig

PEER = ("127.0.0.2", 5062)
OTHER = ("127.0.0.3", 5062)

TLS_TOML = (
    DEMO_TOML.replace('gateways = ["127.0.0.2:5080"]', 'gateways = ["127.0.0.2:5081;transport=tls"]')
    + """require_tls = true
tls_identities = ["pbx.peer.example"]

[trunks.other]
whitelist = "whitelist/other.txt"

[[listen]]
transport = "tls"
host = "127.0.0.1"
port = 5061

[tls]
certificate = "sbc.crt"
key = "sbc.key"
ca = "peers-ca.pem"
"""
)

# The TLS config after a reload that removed the TLS-only trunk (``demo``).
REMOVED_TOML = TLS_TOML.replace(
    """[trunks.demo]
whitelist = "whitelist/demo.txt"
gateways = ["127.0.0.2:5081;transport=tls"]
require_tls = true
tls_identities = ["pbx.peer.example"]
""",
    "",
)


class TLSPeer(RecordingTransport):
    """A stream transport whose client certificate proves ``names`` (and that records an abort)."""

    def __init__(self, name: str = "TLS", names: tuple[str, ...] = ()) -> None:
        super().__init__(name=name, reliable=True)
        self.names = names
        self.aborted = False

    def proves(self, names: tuple[str, ...]) -> bool:
        return any(name in self.names for name in names)

    def abort(self) -> None:
        self.aborted = True


class OpenedFor(TLSPeer):
    """A TLS connection the SBC opened to a gateway of ``trunk`` (sbc.transport.outbound)."""

    def __init__(self, trunk: str) -> None:
        super().__init__(names=("gw.peer.example",))
        self.trunk = trunk

    def openedFor(self, trunk: str) -> bool:
        return trunk == self.trunk


class TLSTrunkTests(SynchronousTestCase):
    """What a trunk with ``require_tls`` accepts, per message and per transport."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        (self.directory / "whitelist").mkdir()
        (self.directory / "whitelist" / "other.txt").write_text("127.0.0.3/32\n")
        self.server = SIPServer(self.load(TLS_TOML), Clock())

    def load(self, toml: str) -> Config:
        return loadConfig(writeConfig(self.directory, toml))

    def send(self, transport: RecordingTransport, source: tuple[str, int] = PEER) -> list[int]:
        if self.server.admit(source[0]):
            self.server.messageReceived(options(), transport, source)
        return [m.status for m in transport.messages() if isinstance(m, Response)]

    def test_udpDropped(self) -> None:
        """Plain UDP from a TLS-only trunk gets no answer, and a counter moves."""
        self.assertEqual(self.send(RecordingTransport()), [])
        self.assertEqual(self.server.metrics["tls_refused"], 1)

    def test_tcpClosed(self) -> None:
        """Plain TCP from a TLS-only trunk gets no answer, and its connection is closed."""
        tcp = TLSPeer(name="TCP", names=("pbx.peer.example",))
        self.assertEqual(self.send(tcp), [])
        self.assertTrue(tcp.aborted)

    def test_provenNameAnswered(self) -> None:
        """TLS whose client certificate proves a configured name is answered."""
        tls = TLSPeer(names=("pbx.peer.example",))
        self.assertEqual(self.send(tls), [200])
        self.assertFalse(tls.aborted)
        self.assertEqual(self.server.metrics["tls_refused"], 0)

    def test_otherNameClosed(self) -> None:
        """TLS whose certificate proves another name (or none) gets no answer, and is closed."""
        for names in (("evil.example",), ()):
            tls = TLSPeer(names=names)
            self.assertEqual(self.send(tls), [])
            self.assertTrue(tls.aborted)
        self.assertEqual(self.server.metrics["tls_refused"], 2)

    def test_ourConnectionToItsGatewayAnswered(self) -> None:
        """Answers on a TLS connection we opened to this trunk's gateway (verified against the name
        its config gives it, not one of tls_identities) pass; one opened for another trunk does not."""
        ours = OpenedFor("demo")
        self.assertEqual(self.send(ours), [200])
        other = OpenedFor("other")
        self.assertEqual(self.send(other), [])
        self.assertTrue(other.aborted)

    def test_withoutIdentitiesAnyTLS(self) -> None:
        """A trunk that requires TLS but names no identities accepts TLS without a certificate."""
        toml = TLS_TOML.replace('tls_identities = ["pbx.peer.example"]\n', "")
        self.server.setConfig(self.load(toml))
        self.assertEqual(self.send(TLSPeer()), [200])
        self.assertEqual(self.send(RecordingTransport()), [])

    def test_otherTrunkUntouched(self) -> None:
        """A trunk that does not require TLS keeps UDP, even while another trunk requires it."""
        self.assertEqual(self.send(RecordingTransport(), OTHER), [200])
        self.assertEqual(self.server.metrics["tls_refused"], 0)

    def test_reloadApplies(self) -> None:
        """A reload that turns require_tls on drops the trunk's UDP from the next message on."""
        server = SIPServer(self.load(DEMO_TOML), Clock())
        self.server = server
        self.assertEqual(self.send(RecordingTransport()), [200])
        server.setConfig(self.load(TLS_TOML))
        self.assertEqual(self.send(RecordingTransport()), [])

    def test_removedTrunkStaysTLSOnly(self) -> None:
        """A TLS-only trunk that a reload removed while its calls go on: its sources' plain UDP
        and TCP stay dropped, and their TLS still has to prove the trunk's name."""
        self.server.retired.live = lambda: ["demo"]  # a call of the trunk is up
        self.server.setConfig(self.load(REMOVED_TOML))
        self.assertIsNone(self.server.config.trunk("demo"))
        self.assertEqual(self.send(RecordingTransport()), [])
        tcp = TLSPeer(name="TCP")
        self.assertEqual(self.send(tcp), [])
        self.assertTrue(tcp.aborted)
        self.assertEqual(self.send(TLSPeer(names=("someone.else",))), [])
        self.assertEqual(self.server.metrics["tls_refused"], 3)
        self.assertEqual(self.send(TLSPeer(names=("pbx.peer.example",))), [200])
        self.assertEqual(self.send(RecordingTransport(), OTHER), [200])


class TLSTrunkConfigTests(SynchronousTestCase):
    """The trunk keys ``require_tls`` and ``tls_identities`` and ``[tls] ca``, checked at load."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        (self.directory / "whitelist").mkdir()
        (self.directory / "whitelist" / "other.txt").write_text("127.0.0.3/32\n")

    def refused(self, toml: str) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            loadConfig(writeConfig(self.directory, toml))
        error: ConfigError = caught.exception
        return error

    def test_loaded(self) -> None:
        """The keys load: the trunk requires TLS, names its identity, and the CA sits beside the config."""
        config = loadConfig(writeConfig(self.directory, TLS_TOML))
        trunk = config.trunk("demo")
        assert trunk is not None
        self.assertTrue(trunk.requireTls)
        self.assertEqual(trunk.tlsIdentities, ("pbx.peer.example",))
        assert config.tls is not None
        self.assertEqual(config.tls.ca, self.directory / "peers-ca.pem")
        self.assertEqual(config.tlsTrunks, frozenset({"demo"}))

    def test_defaults(self) -> None:
        """By default a trunk takes any transport, and no CA is set."""
        config = loadConfig(writeConfig(self.directory, DEMO_TOML))
        trunk = config.trunk("demo")
        assert trunk is not None
        self.assertFalse(trunk.requireTls)
        self.assertEqual(trunk.tlsIdentities, ())
        self.assertEqual(config.tlsTrunks, frozenset())

    def test_identitiesNeedRequireTls(self) -> None:
        """tls_identities without require_tls is refused, naming the key."""
        error = self.refused(TLS_TOML.replace("require_tls = true\n", ""))
        self.assertEqual(error.key, "trunks.demo.tls_identities")

    def test_badName(self) -> None:
        """An identity that is not a DNS name is refused, naming the key."""
        error = self.refused(TLS_TOML.replace('"pbx.peer.example"', '"not a name"'))
        self.assertEqual(error.key, "trunks.demo.tls_identities")

    def test_identitiesNeedCA(self) -> None:
        """tls_identities without [tls] ca is refused: no name is proven by an unverified certificate."""
        error = self.refused(TLS_TOML.replace('ca = "peers-ca.pem"\n', ""))
        self.assertEqual(error.key, "trunks.demo.tls_identities")

    def test_plainGatewayRefused(self) -> None:
        """A TLS-only trunk with a gateway that is not TLS is refused: its answers would come in plain."""
        error = self.refused(TLS_TOML.replace("127.0.0.2:5081;transport=tls", "127.0.0.2:5080"))
        self.assertEqual(error.key, "trunks.demo.gateways")
        self.assertIn("needs transport=tls", error.reason)

    def test_requireTlsNeedsListener(self) -> None:
        """require_tls without a TLS listener is refused: the trunk could never reach us."""
        toml = TLS_TOML.replace('[[listen]]\ntransport = "tls"\nhost = "127.0.0.1"\nport = 5061\n', "")
        toml = toml.replace('tls_identities = ["pbx.peer.example"]\n', "")
        error = self.refused(toml)
        self.assertEqual(error.key, "trunks.demo.require_tls")
