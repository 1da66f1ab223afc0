# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Mutual TLS on a trunk against the real service (C{twistd -n sbc}): the demo trunk requires TLS and
names C{pbx.peer.example}, and C{[tls] ca} trusts two self-signed client certificates, one for that
name and one for C{evil.example}.  Python's C{ssl} (OpenSSL, no code shared with the service) sends
an OPTIONS from the trunk's address with either certificate.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.certs import makeCertificate

from .service import ServiceProcess, startService
from .tlsclients import firstResponse, optionsRequest

TRUNK = "127.0.0.2"
IDENTITY = "pbx.peer.example"
# How long a client waits for an answer that must not come.
SILENCE = 2.0


class TLSTrunkTests(SynchronousTestCase):
    """
    A trunk with C{require_tls} and C{tls_identities}: the named certificate is answered, the rest refused.
    """

    service: ServiceProcess

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-tls-trunk-"))
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.clients: dict[str, tuple[Path, Path]] = {}
        for name in (IDENTITY, "evil.example"):
            folder = self.directory / name
            folder.mkdir()
            self.clients[name] = makeCertificate(folder, name)
        ca = self.directory / "peers-ca.pem"
        ca.write_bytes(b"".join(cert.read_bytes() for cert, _ in self.clients.values()))
        self.service = startService(
            self,
            settings={
                "tls": {"ca": str(ca)},
                "trunks.demo": {
                    "require_tls": True,
                    "tls_identities": [IDENTITY],
                    "gateways": ["127.0.0.2:5081;transport=tls"],
                },
            },
        )

    def exchange(self, clientName: str | None, timeout: float = 5.0) -> tuple[bytes | None, bool]:
        """
        Send OPTIONS over TLS from the trunk's address with C{clientName}'s certificate (C{None}: none);
        return the first response (or C{None}) and whether the service closed the connection.
        """
        remote = self.service.address("tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.service.directory / "state" / "tls" / "sbc.crt")
        if clientName is not None:
            cert, key = self.clients[clientName]
            context.load_cert_chain(cert, key)
        received = b""
        closed = False
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:
            raw.settimeout(timeout)
            raw.bind((TRUNK, 0))
            raw.connect(remote)
            with context.wrap_socket(raw, server_hostname="localhost") as client:
                client.sendall(optionsRequest(remote, TRUNK, client.getsockname()[1]))
                while firstResponse(received) is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    client.settimeout(remaining)
                    try:
                        chunk = client.recv(65536)
                    except TimeoutError:
                        break
                    except (ConnectionError, ssl.SSLError):
                        closed = True
                        break
                    if not chunk:
                        closed = True
                        break
                    received += chunk
        return firstResponse(received), closed

    def test_namedCertificateAnswered(self) -> None:
        """
        OPTIONS over TLS with a client certificate for the configured name gets 200.
        """
        response, _ = self.exchange(IDENTITY)
        detail = self.service.describe()
        self.assertIsNotNone(response, detail)
        assert response is not None
        self.assertTrue(response.startswith(b"SIP/2.0 200 "), response.decode(errors="replace") + detail)

    def test_otherNameRefused(self) -> None:
        """
        A certificate the CA trusts for another name, or none at all: no answer, the connection closed.
        """
        for clientName in ("evil.example", None):
            response, closed = self.exchange(clientName, timeout=SILENCE)
            detail = f"client certificate {clientName}\n" + self.service.describe()
            self.assertIsNone(response, detail)
            self.assertTrue(closed, detail)
        self.assertTrue(self.service.running, self.service.describe())

    def test_udpRefused(self) -> None:
        """
        Plain UDP from the TLS trunk's address gets no answer.
        """
        remote = self.service.address("udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(SILENCE)
            client.bind((TRUNK, 0))
            client.sendto(optionsRequest(remote, TRUNK, client.getsockname()[1], transport="UDP"), remote)
            with self.assertRaises(TimeoutError, msg=self.service.describe()):
                client.recv(65536)
        self.assertTrue(self.service.running, self.service.describe())
