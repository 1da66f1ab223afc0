"""
Interop: calls out to a TLS trunk gateway from the real C{twistd -n sbc}.  The gateway is C{openssl
s_server} (see L{tlsgateway}), which demands the SBC's client certificate; the SBC verifies the
gateway's certificate against the name the trunk says it must prove (C{tls_identities}, the gateway
being an address) and against C{[tls] ca}.

alice (a device) calls an outside number, which the demo routing sends to the demo trunk.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from tests.certs import makeCertificate

from .ports import TCP, freePort
from .service import startService
from .test_calls import GATEWAY_B, OUTSIDE_NUMBER, CallTestCase, mediaAddress
from .tlsgateway import TLSGateway, startTLSGateway
from .tools import requireTool

IDENTITY = "gw.peer.test"


class TLSGatewayTests(CallTestCase):
    """A trunk whose gateway speaks TLS only."""

    def setUp(self) -> None:
        requireTool("sipp")
        requireTool("openssl")
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-tls-gateway-"))
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.certificates: dict[str, tuple[Path, Path]] = {}
        for name in (IDENTITY, "evil.peer.test"):
            folder = self.directory / name
            folder.mkdir()
            self.certificates[name] = makeCertificate(folder, name)
        # [tls] ca trusts both (each self-signed): only the name tells them apart.
        self.ca = self.directory / "gateways-ca.pem"
        self.ca.write_bytes(b"".join(cert.read_bytes() for cert, _ in self.certificates.values()))

    def start(self, gateways: list[str]) -> None:
        """The service with the demo trunk's ``gateways``; GATEWAY_B whitelisted for their answers."""
        self.service = startService(
            self,
            settings={
                "media": {"address": mediaAddress()},
                "tls": {"ca": str(self.ca)},
                "trunks.demo": {"gateways": gateways, "require_tls": True, "tls_identities": [IDENTITY]},
            },
            additions={"whitelist/demo.txt": [f"{GATEWAY_B}/32"]},
        )

    def gatewayOn(self, port: int, name: str) -> TLSGateway:
        """s_server on GATEWAY_B:``port`` with ``name``'s certificate, trusting the service's."""
        certificate, key = self.certificates[name]
        ours = self.service.directory / "state" / "tls" / "sbc.crt"
        return startTLSGateway(self, GATEWAY_B, port, certificate, key, ours)

    def test_callOverTLS(self) -> None:
        """
        The INVITE, ACK and BYE reach the gateway over TLS once its certificate proves the trunk's
        name (and ours satisfied it): the call completes end to end.
        """
        port = freePort(GATEWAY_B, (TCP,))
        self.start([f"{GATEWAY_B}:{port};transport=tls"])
        gateway = self.gatewayOn(port, IDENTITY)
        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        deadline = time.monotonic() + 5
        while "BYE" not in gateway.methods() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(gateway.methods(), ["INVITE", "ACK", "BYE"], self.detail(caller))
        invite = gateway.requests[0].decode(errors="replace")
        self.assertIn(";transport=tls SIP/2.0", invite.split("\r\n", 1)[0])
        self.assertIn("Via: SIP/2.0/TLS ", invite)

    def test_wrongNameFailsOver(self) -> None:
        """
        A gateway whose (trusted) certificate names someone else gets nothing: the handshake fails,
        and the call fails over at once to the trunk's next gateway, which proves the name.
        """
        port, backup = freePort(GATEWAY_B, (TCP,)), freePort(GATEWAY_B, (TCP,))
        self.start([f"{GATEWAY_B}:{port};transport=tls", f"{GATEWAY_B}:{backup};transport=tls"])
        evil = self.gatewayOn(port, "evil.peer.test")
        second = self.gatewayOn(backup, IDENTITY)
        started = time.monotonic()
        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        self.assertEqual(evil.requests, [], self.detail(caller))
        self.assertEqual(second.methods()[:2], ["INVITE", "ACK"], self.detail(caller))
        self.assertIn(f"TLS connection to {GATEWAY_B}:{port} failed", self.service.log())
        # A failed handshake is a failed step at once, not one after failover_timeout.
        self.assertLess(time.monotonic() - started, 10, self.detail(caller))
