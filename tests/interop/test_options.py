# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
OPTIONS against the real service (C{twistd -n sbc}) from real SIP clients: SIPp over UDP and TCP,
sipsak and openssl s_client over TLS.

The shipped demo config whitelists 127.0.0.2 for the trunk "demo"; every other source, such as
127.0.0.9, must get no answer at all.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from .service import ServiceProcess, startService
from .sipp import SippRun, runSipp
from .tlsclients import Exchange, opensslOverTLS, optionsRequest, sipsakOverTLS
from .tools import requireTool

TRUNK = "127.0.0.2"
STRANGER = "127.0.0.9"

# How long a client waits for an answer that must not come.
SILENCE = 2.0


class OptionsTests(SynchronousTestCase):
    """
    The service answers OPTIONS from a trunk's address, over every transport, and nothing else.
    """

    service: ServiceProcess

    def startWith(self, *tools: str) -> ServiceProcess:
        """
        Check that the client programs the test drives are installed, then start the service.
        """
        for tool in tools:
            requireTool(tool)
        self.service = startService(self)
        return self.service

    def assertAnswered(self, run: SippRun) -> None:
        """
        SIPp got a 200 with Allow (the scenario checks both) and the service still runs.
        """
        detail = run.describe() + "\n" + self.service.describe()
        self.assertEqual(run.exitCode, 0, detail)
        self.assertIn("SIP/2.0 200 ", run.messages, detail)
        self.assertTrue(self.service.running, detail)

    def assertSilent(self, run: SippRun) -> None:
        """
        SIPp got nothing and failed (by its timeout, or as the service closed the connection), and
        the service still runs.
        """
        detail = run.describe() + "\n" + self.service.describe()
        self.assertNotEqual(run.exitCode, 0, detail)
        self.assertFalse(run.received, detail)
        self.assertNotIn("SIP/2.0 ", run.errors, detail)
        self.assertTrue(self.service.running, detail)

    def assertTLSAnswered(self, exchange: Exchange) -> None:
        """
        The TLS client got a 200 that carries Allow, and the service still runs.
        """
        detail = exchange.describe() + "\n" + self.service.describe()
        self.assertEqual(exchange.statusCode, 200, detail)
        self.assertTrue(exchange.header("Allow"), detail)
        self.assertTrue(self.service.running, detail)

    def test_udpFromTrunk(self) -> None:
        """
        OPTIONS over UDP from the trunk's address gets 200 with Allow.
        """
        self.startWith("sipp")
        run = runSipp(self, "options_uac.xml", self.service.address("udp"), transport="u1", localHost=TRUNK)
        self.assertAnswered(run)
        self.assertIn("UDP message received", run.messages)

    def test_tcpFromTrunk(self) -> None:
        """
        OPTIONS over TCP from the trunk's address gets 200 with Allow.
        """
        self.startWith("sipp")
        run = runSipp(self, "options_uac.xml", self.service.address("tcp"), transport="t1", localHost=TRUNK)
        self.assertAnswered(run)
        self.assertIn("TCP message received", run.messages)

    def test_udpFromStranger(self) -> None:
        """
        OPTIONS over UDP from an address outside every whitelist gets no answer; SIPp times out.
        """
        self.startWith("sipp")
        run = runSipp(
            self,
            "options_uac.xml",
            self.service.address("udp"),
            transport="u1",
            localHost=STRANGER,
            timeout=SILENCE,
        )
        self.assertSilent(run)

    def test_tcpFromStranger(self) -> None:
        """
        OPTIONS over TCP from an address outside every whitelist gets no answer.
        """
        self.startWith("sipp")
        run = runSipp(
            self,
            "options_uac.xml",
            self.service.address("tcp"),
            transport="t1",
            localHost=STRANGER,
            timeout=SILENCE,
        )
        self.assertSilent(run)

    def test_tcpConnectionFromStranger(self) -> None:
        """
        A TCP connection from outside every whitelist receives no byte: it is closed, reset or ignored.
        """
        self.startWith()
        remote = self.service.address("tcp")
        received = b""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(SILENCE)
            client.bind((STRANGER, 0))
            try:
                client.connect(remote)
                client.sendall(optionsRequest(remote, STRANGER, client.getsockname()[1], transport="TCP"))
                while chunk := client.recv(65536):
                    received += chunk
            except (TimeoutError, ConnectionError):
                pass
        self.assertEqual(received, b"", self.service.describe())
        self.assertTrue(self.service.running, self.service.describe())

    def test_tlsSipsak(self) -> None:
        """
        OPTIONS over TLS (1.2) from the trunk's address with sipsak gets 200 with Allow.
        """
        self.startWith("sipsak")
        exchange = sipsakOverTLS(self, self.service.address("tls"), localHost=TRUNK)
        self.assertTLSAnswered(exchange)
        self.assertEqual(exchange.exitCode, 0, exchange.describe())

    def test_tlsOpenssl(self) -> None:
        """
        OPTIONS over TLS (1.3) from the trunk's address with openssl s_client gets 200 with Allow.
        """
        self.startWith("openssl")
        exchange = opensslOverTLS(self, self.service.address("tls"), localHost=TRUNK)
        self.assertTLSAnswered(exchange)

    def test_tlsFromStranger(self) -> None:
        """
        OPTIONS over TLS from an address outside every whitelist gets no answer.
        """
        self.startWith("openssl")
        exchange = opensslOverTLS(self, self.service.address("tls"), localHost=STRANGER, timeout=SILENCE)
        self.assertIsNone(exchange.response, exchange.describe() + "\n" + self.service.describe())
        self.assertTrue(self.service.running, self.service.describe())
