"""Registrar fixtures shared by the registrar tests (not a test module): a REGISTER and a test
case that runs a server with a registrar on a Clock."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.config.users import formatAccount
from sbc.server import SIPServer
from sbc.sip import Request, Response, parseMessage
from sbc.sip.digest import formatCredentials, makeCredentials, parseChallenge
from tests.fakes import DEMO_TOML, RecordingTransport, writeConfig

DOMAIN = "demo.acme.sbc.test"
DEVICE = ("127.0.0.4", 5070)

REGISTRAR_TOML = (
    DEMO_TOML
    + f"""
[devices]
whitelist = "whitelist/devices.txt"

[registrar]
domains = ["{DOMAIN}", "example.com"]
users = "users.txt"
min_expires = 60
max_expires = 3600

[bans]
failures = 3
window = 60
duration = 600
"""
)


def register(
    *,
    user: str = "alice",
    domain: str = DOMAIN,
    contact: str | None = "<sip:alice@10.0.0.5:5070>",
    expires: str | None = None,
    callId: str = "reg-1",
    cseq: int = 1,
    branch: str = "z9hG4bKreg1",
    extra: str = "",
    transport: str = "UDP",
) -> bytes:
    """A REGISTER from alice's phone, to be bent by each test."""
    lines = [
        f"REGISTER sip:{domain} SIP/2.0",
        f"Via: SIP/2.0/{transport} 10.0.0.5:5070;branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=f1",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {callId}",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    return ("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n").encode()


class RegistrarTestCase(SynchronousTestCase):
    """A server on a Clock with a registrar for two domains and six accounts, and a recording UDP
    transport; sends REGISTERs and answers their challenges as a client would."""

    toml = REGISTRAR_TOML
    # Extra files of the config directory, by relative path.
    files: dict[str, str] = {}

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        path = writeConfig(self.directory, self.toml)
        (self.directory / "whitelist" / "devices.txt").write_text("127.0.0.4/30\n")
        for name, text in self.files.items():
            (self.directory / name).write_text(text)
        (self.directory / "users.txt").write_text(
            formatAccount("alice", DOMAIN, "alice-pw")
            + "\n"
            + formatAccount("bob", DOMAIN, "bob-pw")
            + "\n"
            + formatAccount("watson", "example.com", "pw")
            + "\n"
            + formatAccount("user", "example.com", "pw")
            + "\n"
            + formatAccount("carol", DOMAIN, "carol-pw", algorithms=("SHA-256",))
            + "\n"
            + formatAccount("dave", DOMAIN, "dave-pw", algorithms=("MD5",))
            + "\n"
        )
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.server = SIPServer(loadConfig(path), self.clock)
        self.udp = RecordingTransport()
        self.cseq = 100

    def send(
        self, data: bytes, source: tuple[str, int] = DEVICE, transport: RecordingTransport | None = None
    ) -> Response | None:
        transport = transport or self.udp
        before = len(transport.sent)
        if not self.server.admit(source[0]):
            return None
        self.server.messageReceived(data, transport, source)
        finals = [r for r in transport.responses()[before:] if r.status >= 200]
        self.assertLessEqual(len(finals), 1)
        return finals[0] if finals else None

    def authorized(
        self,
        data: bytes,
        *,
        user: str = "alice",
        password: str = "alice-pw",
        algorithm: str = "MD5",
        source: tuple[str, int] = DEVICE,
        transport: RecordingTransport | None = None,
        offered: str | None = None,
    ) -> Response | None:
        """Send, answer the 401 as a client would, and return the final response.

        ``offered`` names the challenge to take the nonce from when it is not ``algorithm``.
        """
        challenge = self.send(data, source, transport)
        assert challenge is not None and challenge.status == 401, challenge
        return self.answer(challenge, data, user, password, algorithm, source, transport, offered)

    def answer(
        self,
        challenge: Response,
        data: bytes,
        user: str,
        password: str,
        algorithm: str,
        source: tuple[str, int] = DEVICE,
        transport: RecordingTransport | None = None,
        offered: str | None = None,
    ) -> Response | None:
        """Answer ``challenge`` to the request ``data`` with credentials, and return the final response."""
        offers = [parseChallenge(v) for v in challenge.headers.getAll("www-authenticate")]
        (offer,) = [c for c in offers if c.algorithm == (offered or algorithm)]
        request = parseMessage(data)
        assert isinstance(request, Request)
        credentials = makeCredentials(
            username=user,
            password=password,
            realm=offer.realm,
            nonce=offer.nonce,
            method="REGISTER",
            uri=str(request.uri),
            algorithm=algorithm,
            qop="auth",
            nc="00000001",
            cnonce="c0ffee",
        )
        request.headers.add("Authorization", formatCredentials(credentials))
        self.cseq += 1
        request.headers.set("CSeq", f"{self.cseq} REGISTER")
        via = request.topVia()
        request.headers.set("Via", f"SIP/2.0/{via.transport} {via.sentBy};branch=z9hG4bK{self.cseq};rport")
        return self.send(request.toBytes(), source, transport)

    def contacts(self, response: Response | None) -> list[str]:
        assert response is not None
        return response.headers.getAll("contact")
