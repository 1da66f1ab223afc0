"""Tests for sbc.ops.probe: one OPTIONS from a chosen source, retransmitted until a final answer."""

from __future__ import annotations

import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.probe import ProbeError, sendOptions
from sbc.sip import Request, Response, parseMessage


class Responder:
    """A UDP peer on 127.0.0.1 that ignores the first ``ignore`` requests, then answers 100 and 200."""

    def __init__(self, test: SynchronousTestCase, ignore: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port: int = self.sock.getsockname()[1]
        self.ignore = ignore
        self.received: list[tuple[Request, tuple[str, int]]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def serve(self) -> None:
        try:
            while True:
                data, source = self.sock.recvfrom(65535)
                request = parseMessage(data)
                assert isinstance(request, Request)
                self.received.append((request, source))
                if len(self.received) <= self.ignore:
                    continue
                for status in (100, 200):
                    response = Response(status, "Trying" if status == 100 else "OK")
                    for name in ("via", "from", "to", "call-id", "cseq"):
                        response.headers.add(name, request.headers.get(name) or "")
                    response.setBody(b"")
                    self.sock.sendto(response.toBytes(), source)
                return
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


class SendOptionsTests(SynchronousTestCase):
    def test_answered(self) -> None:
        """The final answer is the result; the request left from the address asked for."""
        peer = Responder(self)
        result = sendOptions(f"sip:127.0.0.1:{peer.port}", "127.0.0.3", timeout=3)
        assert result.response is not None
        self.assertEqual(result.response.status, 200)
        ((request, source),) = peer.received
        self.assertEqual((request.method, source[0]), ("OPTIONS", "127.0.0.3"))
        self.assertEqual(request.topVia().host, "127.0.0.3")

    def test_retransmitted(self) -> None:
        """An unanswered request is sent again (T1 later), and the answer to the retransmission counts."""
        peer = Responder(self, ignore=1)
        result = sendOptions(f"sip:127.0.0.1:{peer.port}", "127.0.0.1", timeout=3)
        assert result.response is not None
        self.assertEqual(result.response.status, 200)
        self.assertEqual(len(peer.received), 2)
        self.assertGreaterEqual(result.waited, 0.5)
        first, second = (request for request, _ in peer.received)
        self.assertEqual(first.toBytes(), second.toBytes())

    def test_silence(self) -> None:
        """Nobody answering gives no response once the timeout has passed."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            result = sendOptions(f"sip:127.0.0.1:{silent.getsockname()[1]}", "127.0.0.1", timeout=0.3)
        self.assertIsNone(result.response)
        self.assertGreaterEqual(result.waited, 0.3)

    def test_refusals(self) -> None:
        """A target that is not a sip: URI, or a source we cannot bind, is a ProbeError."""
        self.assertRaises(ProbeError, sendOptions, "sips:127.0.0.1", "127.0.0.1")
        self.assertRaises(ProbeError, sendOptions, "not a uri", "127.0.0.1")
        self.assertRaises(ProbeError, sendOptions, "sip:127.0.0.1:5", "192.0.2.1")
