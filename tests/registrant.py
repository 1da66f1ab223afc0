"""Registrant fixtures shared by the registrant tests (not a test module): a registrant, a peer
registrar that answers our REGISTERs by hand, and a test case that runs clients on a Clock."""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.names.common import ResolverBase
from twisted.trial.unittest import SynchronousTestCase

from sbc.config.registrants import Registrant
from sbc.interfaces import Address
from sbc.locate import ServerLocator
from sbc.registrant.client import RegistrationClient, TransportFor
from sbc.registrant.contact import contactUser
from sbc.sip import HeaderField, Headers, Request, Response, parseMessage
from sbc.transaction import Timers, TransactionLayer
from tests.fakes import LogRecorder, NoUser, RecordingTransport

REGISTRAR: Address = ("127.0.0.5", 5060)
PROXY: Address = ("127.0.0.6", 5060)
PASSWORD = "s3cret-pass"
PEER_B = Registrant(
    name="peer-b",
    registrar="sip:127.0.0.5:5060",
    aor="sip:sbc-demo@peer-b.example",
    authUser="sbc-auth",
    password=PASSWORD,
    expires=600,
)
# The SBC's state secret in these tests, and the Contact user it gives PEER_B.
SECRET = b"k" * 32
PEER_B_CONTACT = contactUser(SECRET, "peer-b")
# Timer F: a REGISTER with no answer at all ends after this long.
TIMER_F = 64 * Timers.T1


def answer(request: Request, status: int, *extra: tuple[str, str], toTag: str = "reg1") -> Response:
    """The registrar's answer to ``request``, through the codec, with ``extra`` headers."""
    fields: list[HeaderField] = []
    for field in request.headers.fields:
        if field.key == "to":
            fields.append(HeaderField("to", f"{field.value};tag={toTag}"))
        elif field.key in ("via", "from", "call-id", "cseq"):
            fields.append(field)
    headers = Headers(fields)
    for name, value in extra:
        headers.add(name, value)
    headers.add("Content-Length", "0")
    message = parseMessage(Response(status, headers=headers).toBytes())
    assert isinstance(message, Response)
    return message


class RegistrantTestCase(SynchronousTestCase):
    """A transaction layer on a Clock, one UDP transport that records, and the log recorded."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)  # a clock far from 0, so times are not confused with delays
        self.udp = RecordingTransport(localAddress=("127.0.0.1", 5060))
        self.layer = TransactionLayer(self.clock, NoUser(), Timers())  # type: ignore[arg-type]
        self.locator = ServerLocator(ResolverBase(), self.clock)  # addresses only
        self.events = LogRecorder()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)

    def client(
        self,
        registrant: Registrant = PEER_B,
        seed: int = 1,
        transportFor: TransportFor | None = None,
    ) -> RegistrationClient:
        """A client for ``registrant`` on this test's clock and layer, sending through
        ``transportFor`` (by default this test's UDP transport)."""
        return RegistrationClient(
            registrant,
            self.clock,
            self.layer,
            self.locator.locate,
            (lambda hop: self.udp) if transportFor is None else transportFor,
            random.Random(seed),
            secret=SECRET,
        )

    def tlsContact(self, registrant: Registrant) -> str | None:
        """The Contact of the first REGISTER ``registrant`` sends over a TLS connection from
        127.0.0.1:5061."""
        tls = RecordingTransport("TLS", reliable=True, localAddress=("127.0.0.1", 5061))
        self.client(registrant, transportFor=lambda hop: tls).start()
        request = parseMessage(tls.sent[-1][0])
        assert isinstance(request, Request)
        return request.headers.get("contact")

    def requests(self) -> list[Request]:
        """Every REGISTER sent, once each (retransmissions left out)."""
        seen: set[str] = set()
        requests: list[Request] = []
        for data, _ in self.udp.sent:
            message = parseMessage(data)
            if isinstance(message, Request) and message.method == "REGISTER":
                branch = message.topVia().branch or ""
                if branch not in seen:
                    seen.add(branch)
                    requests.append(message)
        return requests

    def last(self) -> Request:
        """The newest REGISTER sent."""
        return self.requests()[-1]

    def reply(self, status: int, *extra: tuple[str, str], request: Request | None = None) -> None:
        """The registrar answers the newest REGISTER (or ``request``)."""
        self.layer.receiveResponse(answer(request or self.last(), status, *extra), self.udp, REGISTRAR)

    def logText(self) -> str:
        """Every log event, formatted and with its fields, as one text to search."""
        return "\n".join(f"{formatEvent(event)} {event!r}" for event in self.events.events)
