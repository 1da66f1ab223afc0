# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Tests for the interop harness itself, against stand-ins instead of the service.

They check that the SIPp scenarios, the SIPp runner and the TLS clients tell a good answer from a bad one
or from none, so that a failure in C{test_options} points at the service and not at the harness.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from unittest import SkipTest, mock

from twisted.trial.unittest import SynchronousTestCase

from . import service
from .ports import TCP, UDP, freePort, tcpPortListening
from .service import Listener, listenersOf, rewriteListenPorts, writeSelfSignedCertificate
from .sipp import SippProcess, runSipp
from .tlsclients import firstResponse, opensslOverTLS, sipsakOverTLS
from .tools import MissingToolError, requireTool

STAND_IN = "127.0.0.3"
CLIENT = "127.0.0.2"


class RequireToolTests(SynchronousTestCase):
    """
    L{requireTool} skips outside CI and fails inside it.
    """

    def test_found(self) -> None:
        """
        An installed program is returned by its absolute path.
        """
        path = requireTool("sh")
        self.assertTrue(os.path.isabs(path))

    def test_missingSkips(self) -> None:
        """
        A missing program raises SkipTest when CI is unset.
        """
        with mock.patch.dict(os.environ, {"CI": ""}):
            self.assertRaises(SkipTest, requireTool, "no-such-tool-for-sbc")

    def test_missingFailsInCI(self) -> None:
        """
        A missing program raises MissingToolError (a test failure) when CI is set.
        """
        with mock.patch.dict(os.environ, {"CI": "true"}):
            self.assertRaises(MissingToolError, requireTool, "no-such-tool-for-sbc")


SAMPLE_CONFIG = """\
# A comment mentioning port = 5060
[[listen]]
transport = "udp"
host = "127.0.0.1"
port = 5060   # SIP

[[listen]]
transport = "tcp"
host = "127.0.0.1"
port = 5060

[[listen]]
transport = "tls"
host = "127.0.0.1"
port = 5061

[[trunk]]
name = "demo"
gateway = { host = "127.0.0.2", port = 5060 }
[trunk.limits]
port = 5060
"""


class RewriteListenPortsTests(SynchronousTestCase):
    """
    L{rewriteListenPorts} moves the listeners and nothing else.
    """

    def test_listenTablesOnly(self) -> None:
        """
        Ports of [[listen]] tables change; trunk ports and comments stay.
        """
        text = rewriteListenPorts(SAMPLE_CONFIG, {5060: 40000, 5061: 40001})
        config = tomllib.loads(text)
        self.assertEqual(
            listenersOf(config),
            [
                Listener("udp", "127.0.0.1", 40000),
                Listener("tcp", "127.0.0.1", 40000),
                Listener("tls", "127.0.0.1", 40001),
            ],
        )
        self.assertEqual(config["trunk"][0]["gateway"]["port"], 5060)
        self.assertEqual(config["trunk"][0]["limits"]["port"], 5060)
        self.assertIn("# A comment mentioning port = 5060", text)

    def test_inlineFallback(self) -> None:
        """
        Without [[listen]] headers, every `port = N` for a mapped N changes.
        """
        text = rewriteListenPorts(
            'listen = [{ transport = "udp", host = "127.0.0.1", port = 5060 }]\n', {5060: 1}
        )
        self.assertEqual(text, 'listen = [{ transport = "udp", host = "127.0.0.1", port = 1 }]\n')


class SippScenarioTests(SynchronousTestCase):
    """
    options_uac.xml against the SIPp stand-in options_uas.xml.
    """

    def exchange(self, transport: str, allowHeader: str) -> tuple[int, str, str]:
        uas = SippProcess(
            self,
            "options_uas.xml",
            transport=transport,
            localHost=STAND_IN,
            localPort=freePort(STAND_IN, (UDP, TCP)),
            timeout=8,
            extraArgs=("-set", "allowheader", allowHeader),
        )
        uas.start()
        # SIPp needs a moment to bind; over UDP the client's retransmissions cover it, over TCP not.
        _waitUntil(lambda: transport != "t1" or tcpPortListening(STAND_IN, uas.localPort))
        uac = runSipp(self, "options_uac.xml", (STAND_IN, uas.localPort), transport=transport, timeout=5)
        uas.wait()
        return uac.exitCode, uac.messages, uac.describe()

    def test_udp(self) -> None:
        """
        Over UDP, a 200 with Allow makes SIPp exit 0, and the trace shows the exchange.
        """
        code, messages, description = self.exchange("u1", "Allow")
        self.assertEqual(code, 0, description)
        self.assertIn("UDP message received", messages)
        self.assertIn(f"Via: SIP/2.0/UDP {CLIENT}:", messages)

    def test_tcp(self) -> None:
        """
        Over TCP, a 200 with Allow makes SIPp exit 0.
        """
        code, messages, description = self.exchange("t1", "Allow")
        self.assertEqual(code, 0, description)
        self.assertIn("TCP message received", messages)
        self.assertIn(f"Via: SIP/2.0/TCP {CLIENT}:", messages)

    def test_withoutAllow(self) -> None:
        """
        A 200 without Allow fails the call: SIPp exits 1, even when another header ends in "Allow".
        """
        code, _, description = self.exchange("u1", "X-Not-Allow")
        self.assertEqual(code, 1, description)

    def test_silence(self) -> None:
        """
        With no answer SIPp stops by its timeout, exits non-zero and records nothing received.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind((STAND_IN, 0))
            run = runSipp(self, "options_uac.xml", sink.getsockname(), localHost="127.0.0.9", timeout=2)
            self.assertNotEqual(run.exitCode, 0, run.describe())
            self.assertFalse(run.received, run.describe())
            self.assertIn("Via: SIP/2.0/UDP 127.0.0.9:", run.messages)
            # The request really left, from 127.0.0.9.
            data, source = sink.recvfrom(65536)
            self.assertEqual(source[0], "127.0.0.9")
            self.assertTrue(data.startswith(b"OPTIONS sip:"))


class TLSStandIn:
    """
    A TLS server on a thread that answers the first SIP request with 200 OK and Allow, then closes.

    Python's C{ssl} is fine for the stand-in: the client under test is what must be independent.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        directory = Path(tempfile.mkdtemp(prefix="tls-stand-in-"))
        testCase.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        writeSelfSignedCertificate(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "sbc.pem")
        self.listener = socket.socket()
        self.listener.bind((STAND_IN, 0))
        self.listener.listen(1)
        self.listener.settimeout(8)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.peer: tuple[str, int] | None = None
        self.request = b""
        self.version: str | None = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        testCase.addCleanup(self.close)

    def serve(self) -> None:
        try:
            connection, self.peer = self.listener.accept()
            connection.settimeout(8)
            with self.context.wrap_socket(connection, server_side=True) as tls:
                self.version = tls.version()
                while b"\r\n\r\n" not in self.request:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    self.request += chunk
                head = self.request.split(b"\r\n\r\n")[0].split(b"\r\n")
                copied = [
                    line
                    for line in head[1:]
                    if line.split(b":")[0].strip().lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
                ]
                tls.sendall(
                    b"SIP/2.0 200 OK\r\n"
                    + b"".join(line + b"\r\n" for line in copied)
                    + b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\nContent-Length: 0\r\n\r\n"
                )
                tls.recv(1)  # until the client closes, or the timeout
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


class TLSClientTests(SynchronousTestCase):
    """
    sipsak and openssl s_client get a 200 from a TLS stand-in, from 127.0.0.2.
    """

    def test_sipsak(self) -> None:
        """
        sipsak (capped at TLS 1.2) sends a well-formed OPTIONS from 127.0.0.2 and reads the 200.
        """
        server = TLSStandIn(self)
        exchange = sipsakOverTLS(self, server.address)
        self.assertEqual(exchange.statusCode, 200, exchange.describe())
        self.assertEqual(exchange.exitCode, 0, exchange.describe())
        self.assertEqual(exchange.header("Allow"), "INVITE, ACK, BYE, CANCEL, OPTIONS")
        server.thread.join(10)
        self.assertEqual(server.version, "TLSv1.2")
        self.assertIsNotNone(server.peer)
        assert server.peer is not None
        self.assertEqual(server.peer[0], CLIENT)
        self.assertEqual(server.request, exchange.request)

    def test_openssl(self) -> None:
        """
        openssl s_client (TLS 1.3) sends a well-formed OPTIONS from 127.0.0.2 and reads the 200.
        """
        server = TLSStandIn(self)
        exchange = opensslOverTLS(self, server.address)
        self.assertEqual(exchange.statusCode, 200, exchange.describe())
        self.assertIsNotNone(exchange.header("Allow"), exchange.describe())
        server.thread.join(10)
        self.assertEqual(server.version, "TLSv1.3")
        assert server.peer is not None
        self.assertEqual(server.peer[0], CLIENT)
        self.assertEqual(server.request, exchange.request)

    def test_noAnswer(self) -> None:
        """
        A TLS server that never answers gives no response, within the timeout.
        """
        with socket.socket() as silent:
            silent.bind((STAND_IN, 0))
            silent.listen(1)
            exchange = opensslOverTLS(self, silent.getsockname(), timeout=1)
        self.assertIsNone(exchange.response, exchange.describe())
        self.assertIsNone(exchange.statusCode)


class FirstResponseTests(SynchronousTestCase):
    """
    L{firstResponse} finds one complete response in a byte stream.
    """

    def test_incomplete(self) -> None:
        """
        Headers without their blank line, or a short body, are not complete yet.
        """
        self.assertIsNone(firstResponse(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n"))
        self.assertIsNone(firstResponse(b"SIP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nab"))

    def test_complete(self) -> None:
        """
        Text around the response (sipsak's chatter) is cut off, the body is kept.
        """
        data = b"noise\nSIP/2.0 200 OK\r\nl: 2\r\n\r\nokmore"
        self.assertEqual(firstResponse(data), b"SIP/2.0 200 OK\r\nl: 2\r\n\r\nok")


def _waitUntil(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _closeAll(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


class PortRaceTests(SynchronousTestCase):
    """
    The service is started on ports chosen free a moment earlier: one taken in between must not fail
    the test that wanted the service.
    """

    def test_portTakenBeforeBind(self) -> None:
        """A listen port another process takes between choice and bind gets the service restarted on
        fresh ports, which it then binds."""
        squatters: list[socket.socket] = []
        self.addCleanup(_closeAll, squatters)
        calls = 0

        def choose(host: str, kinds: object = (UDP, TCP), avoid: object = ()) -> int:
            """The first choice is a port that is free when chosen and taken before the bind."""
            nonlocal calls
            calls += 1
            port = freePort(host, avoid=avoid)  # type: ignore[arg-type]
            if calls == 1:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    sock.bind((host, port))
                    squatters.append(sock)
                squatters[-1].listen(1)
            return port

        self.patch(service, "freePort", choose)
        running = service.startService(self)
        taken = squatters[0].getsockname()[1]
        self.assertEqual(running.portRetries, 1, running.describe())
        self.assertNotIn(taken, [listener.port for listener in running.listeners])
        self.assertTrue(running.running, running.describe())
        self.assertIn("Address already in use", running.log())


class SetSettingTests(SynchronousTestCase):
    """
    L{service.setSetting} edits one key of one table and keeps everything else.
    """

    TEXT = '[api]\nlisten = "127.0.0.1:8080"\ntoken = "demo"\n\n[sip]\nt1 = 0.5\n'

    def test_replaceAndAdd(self) -> None:
        """
        A key of the table is replaced in place; a new one goes under the header.
        """
        text = service.setSetting(self.TEXT, "api", "token", "other")
        text = service.setSetting(text, "api", "token_file", "api.token")
        parsed = tomllib.loads(text)
        self.assertEqual(
            parsed["api"], {"listen": "127.0.0.1:8080", "token": "other", "token_file": "api.token"}
        )
        self.assertEqual(parsed["sip"], {"t1": 0.5})

    def test_noneRemoves(self) -> None:
        """
        C{None} removes the key from its table only, and L{service.lookupSetting} then finds C{None}.
        """
        text = service.setSetting(self.TEXT + 'token = "elsewhere"\n', "api", "token", None)
        parsed = tomllib.loads(text)
        self.assertEqual(parsed["api"], {"listen": "127.0.0.1:8080"})
        self.assertEqual(parsed["sip"]["token"], "elsewhere")
        self.assertIsNone(service.lookupSetting(parsed, "api", "token"))
