"""
A trunk gateway over TLS for interop tests: C{openssl s_server} (OpenSSL's own TLS server, no code
shared with the service) holds the TLS side, demanding a client certificate, and a small scripted UAS
reads the requests it prints and writes answers into it: 200 (with SDP) to INVITE, 200 to BYE and
OPTIONS, nothing to ACK.

Debian's SIPp is built without TLS, so it cannot be this gateway itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .service import terminate
from .tools import requireTool

_START_TIMEOUT = 10.0
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)\s*:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_COPIED = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")


class TLSGateway:
    """
    C{openssl s_server} on C{host}:C{port} with C{certificate}, requiring a client certificate that
    C{clientCA} trusts, and a thread answering what arrives.  Every request seen is kept in
    L{requests} (its bytes).
    """

    def __init__(self, host: str, port: int, certificate: Path, key: Path, clientCA: Path) -> None:
        self.host = host
        self.port = port
        self.requests: list[bytes] = []
        self.process = subprocess.Popen(
            [
                "openssl",
                "s_server",
                "-accept",
                f"{host}:{port}",
                "-cert",
                str(certificate),
                "-key",
                str(key),
                "-CAfile",
                str(clientCA),
                "-Verify",
                "1",
                "-quiet",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buffer = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def methods(self) -> list[str]:
        """The method of each request seen, in order."""
        return [request.split(b" ", 1)[0].decode() for request in self.requests]

    def stop(self) -> None:
        """Kill s_server."""
        terminate(self.process)

    def _read(self) -> None:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while True:
            try:
                chunk = os.read(descriptor, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._buffer += chunk
            for message in self._messages():
                self.requests.append(message)
                self._answer(message)

    def _messages(self) -> list[bytes]:
        found: list[bytes] = []
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")  # keepalives
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return found
            head = self._buffer[: end + 4]
            match = _CONTENT_LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self._buffer) < end + 4 + length:
                return found
            found.append(self._buffer[: end + 4 + length])
            self._buffer = self._buffer[end + 4 + length :]

    def _answer(self, request: bytes) -> None:
        method = request.split(b" ", 1)[0]
        if method == b"ACK" or method.startswith(b"SIP/"):
            return
        head = request.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")[1:]
        copied = []
        for line in head:
            name = line.split(":", 1)[0].strip().lower()
            if name in _COPIED:
                if name in ("to", "t") and ";tag=" not in line:
                    line += ";tag=tlsgw"
                copied.append(line)
        if method == b"INVITE":
            self._write(["SIP/2.0 180 Ringing", *copied])
            body = (
                f"v=0\r\no=gw 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
                "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            ).encode()
            contact = f"Contact: <sip:gw@{self.host}:{self.port};transport=tls>"
            self._write(["SIP/2.0 200 OK", *copied, contact, "Content-Type: application/sdp"], body)
        else:
            self._write(["SIP/2.0 200 OK", *copied])

    def _write(self, lines: list[str], body: bytes = b"") -> None:
        """One response into s_server, which sends it to the service over TLS."""
        data = ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except OSError:
            return


def startTLSGateway(
    testCase: SynchronousTestCase, host: str, port: int, certificate: Path, key: Path, clientCA: Path
) -> TLSGateway:
    """Start a L{TLSGateway} for C{testCase}, listening before this returns; killed at cleanup."""
    requireTool("openssl")
    gateway = TLSGateway(host, port, certificate, key, clientCA)
    testCase.addCleanup(gateway.stop)
    deadline = time.monotonic() + _START_TIMEOUT
    while not _listening(host, port):
        if gateway.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"openssl s_server did not listen on {host}:{port}")
        time.sleep(0.05)
    return gateway


def _listening(host: str, port: int) -> bool:
    """Whether a TCP socket listens on C{host}:C{port} (from /proc/net/tcp, without connecting to it:
    s_server serves one connection at a time, and a probe would take its turn)."""
    want = "".join(f"{int(part):02X}" for part in reversed(host.split("."))) + f":{port:04X}"
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return False
    return any(line.split()[1] == want and line.split()[3] == "0A" for line in table.splitlines()[1:])
