"""
Send one SIP request over TLS with a client that shares no code with the service: sipsak or openssl.

Debian's SIPp is built without TLS, so TLS interop uses

  - C{sipsak} (built with GnuTLS), which sends the request from a file and parses the reply itself.
    sipsak 0.9.8.1 cannot read a reply over TLS 1.3: the server's post-handshake session tickets make
    its C{select} loop give up with "nothing received, select returned error".  We cap it at TLS 1.2
    through a GnuTLS priority override file (C{GNUTLS_SYSTEM_PRIORITY_FILE}).
  - C{openssl s_client}, which negotiates TLS 1.3 and copies bytes both ways; we read its stdout until
    one complete response has arrived.

Neither verifies the service's self-signed certificate: these tests are about SIP over TLS, not PKI.
"""

from __future__ import annotations

import os
import re
import secrets
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .tools import requireTool

_STATUS_LINE = re.compile(rb"^SIP/2\.0 (\d{3}) ", re.MULTILINE)

# GnuTLS reads this instead of /etc/gnutls/config when GNUTLS_SYSTEM_PRIORITY_FILE names it.
_GNUTLS_NO_TLS13 = "[overrides]\ndisabled-version = tls1.3\n"


def optionsRequest(
    remote: tuple[str, int], localHost: str, localPort: int = 5061, transport: str = "TLS"
) -> bytes:
    """
    A well-formed OPTIONS request for C{remote}, from C{localHost}, with CRLF line ends.

    The Via names C{localPort}; with C{rport} the answer comes back over the same connection anyway.
    """
    host, port = remote
    token = secrets.token_hex(8)
    lines = [
        f"OPTIONS sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} {localHost}:{localPort};branch=z9hG4bK{token};rport",
        "Max-Forwards: 70",
        f"From: <sip:interop@{localHost}>;tag={token[:8]}",
        f"To: <sip:{host}:{port}>",
        f"Call-ID: {token}@{localHost}",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "User-Agent: sbc-interop",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


@dataclass(frozen=True)
class Exchange:
    """
    One request sent by an external client, and the response it got.

    @ivar client: the command line of the client.
    @ivar exitCode: its exit code (C{-9} when we had to kill it).
    @ivar request: the request sent.
    @ivar response: the first complete SIP response received, or C{None}.
    @ivar output: the client's stdout and stderr, for failure messages.
    """

    client: tuple[str, ...]
    exitCode: int
    request: bytes
    response: bytes | None
    output: str

    @property
    def statusCode(self) -> int | None:
        """
        The status code of L{response}, or C{None} when none arrived.
        """
        if self.response is None:
            return None
        match = _STATUS_LINE.match(self.response)
        return int(match.group(1)) if match else None

    def header(self, name: str) -> str | None:
        """
        The value of the first header C{name} (case-insensitive, long form only) in the response.
        """
        if self.response is None:
            return None
        head = self.response.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
        for line in head.replace("\r\n", "\n").split("\n")[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    def describe(self) -> str:
        """
        Everything about the exchange, for a failure message.
        """
        return (
            f"--- client exited with {self.exitCode}: {' '.join(self.client)}\n"
            f"--- request:\n{self.request.decode('ascii', errors='replace')}"
            f"--- response:\n{(self.response or b'(none)').decode('utf-8', errors='replace')}\n"
            f"--- output:\n{self.output}"
        )


def firstResponse(data: bytes) -> bytes | None:
    """
    The first complete SIP response in C{data} (status line, headers and a body of C{Content-Length}
    bytes), or C{None} when C{data} does not hold one yet.
    """
    match = _STATUS_LINE.search(data)
    if match is None:
        return None
    start = match.start()
    end = data.find(b"\r\n\r\n", start)
    if end == -1:
        return None
    length = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", data[start:end])
    bodyEnd = end + 4 + (int(length.group(1)) if length else 0)
    return data[start:bodyEnd] if len(data) >= bodyEnd else None


def sipsakOverTLS(
    testCase: SynchronousTestCase,
    remote: tuple[str, int],
    localHost: str = "127.0.0.2",
    timeout: float = 10.0,
) -> Exchange:
    """
    Send an OPTIONS request to C{remote} over TLS with sipsak from C{localHost}, and wait for the reply.
    """
    sipsak = requireTool("sipsak")
    directory = Path(tempfile.mkdtemp(prefix="sipsak-"))
    testCase.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    request = optionsRequest(remote, localHost)
    (directory / "request.sip").write_bytes(request)
    (directory / "gnutls.conf").write_text(_GNUTLS_NO_TLS13, encoding="ascii")
    args = (
        sipsak,
        "-vv",
        "--transport=tls",
        f"--local-ip={localHost}",
        "--no-via",  # keep our own Via; sipsak would put the host name and its port on top
        "--tls-ignore-cert-failure",
        f"--sip-uri=sip:{remote[0]}:{remote[1]}",
        f"--filename={directory / 'request.sip'}",
    )
    env = dict(os.environ, GNUTLS_SYSTEM_PRIORITY_FILE=str(directory / "gnutls.conf"))
    try:
        completed = subprocess.run(
            args,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        output = e.output or b""
        return Exchange(args, -9, request, firstResponse(output), output.decode("utf-8", errors="replace"))
    # With -vv, sipsak prints the reply it received (with CRLF line ends).
    return Exchange(
        args,
        completed.returncode,
        request,
        firstResponse(completed.stdout),
        completed.stdout.decode("utf-8", errors="replace"),
    )


def opensslOverTLS(
    testCase: SynchronousTestCase,
    remote: tuple[str, int],
    localHost: str = "127.0.0.2",
    timeout: float = 5.0,
) -> Exchange:
    """
    Send an OPTIONS request to C{remote} over TLS with C{openssl s_client} bound to C{localHost}, and
    read its stdout until one complete response has arrived or C{timeout} seconds have passed.
    """
    openssl = requireTool("openssl")
    request = optionsRequest(remote, localHost)
    args = (
        openssl,
        "s_client",
        "-connect",
        f"{remote[0]}:{remote[1]}",
        "-bind",
        f"{localHost}:0",
        "-quiet",  # print only application data on stdout (and keep the connection when stdin ends)
        "-noservername",
    )
    process = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    testCase.addCleanup(_kill, process)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write(request)
    process.stdin.flush()

    received = b""
    diagnostics = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        while firstResponse(received) is None and selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is process.stdout:
                    received += chunk
                else:
                    diagnostics += chunk
    _kill(process)
    assert process.returncode is not None
    return Exchange(
        args,
        process.returncode,
        request,
        firstResponse(received),
        (received + b"\n" + diagnostics).decode("utf-8", errors="replace"),
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(5)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
