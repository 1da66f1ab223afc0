"""Call fixtures shared by the call tests (not a test module): the demo trunk and alice, an INVITE
and its answers, SIP-I bodies, and test cases that run a server on a Clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from netaddr import IPSet
from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICE_NETWORK, AccessPolicy, Peer
from sbc.access import TRUNK as TRUNK_PEER
from sbc.calls.call import Call
from sbc.config import CallSettings, Config, Listener, RegistrarSettings, SIPSettings, Transport, Trunk
from sbc.config.gateways import Gateway
from sbc.registrar.location import Binding
from sbc.routing import CallRequest, Decision, Reject, RoutingSettings, TrunkTarget, UserTarget
from sbc.server import SIPServer
from sbc.sip import Request, Response, parseMessage
from tests.fakes import RecordingCDRs, RecordingTransport, SortedClock

DOMAIN = "demo.acme.sbc.test"
TRUNK = ("127.0.0.2", 5062)
ALICE = ("127.0.0.4", 5070)
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.77\r\ns=-\r\nc=IN IP4 192.0.2.77\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
# Where the devices may be: alice's phones.
DEVICES = IPSet(["127.0.0.4/30"])


def callConfig() -> Config:
    """The call tests' config, built as loadConfig would build it from files (which it does not
    read: the paths only name them): the demo trunk with two gateways, whitelisted, the devices
    network, and alice's registrar domain."""
    etc = Path("etc")
    demo = Trunk(
        name="demo",
        whitelistPaths=(etc / "whitelist" / "demo.txt",),
        whitelist=IPSet(["127.0.0.2/32", "127.0.0.3/32"]),
        gateways=(Gateway("127.0.0.2", 5080), Gateway("127.0.0.3", 5080)),
    )
    state = etc / "state"
    return Config(
        path=etc / "sbc.toml",
        listeners=(Listener(Transport.UDP, "127.0.0.1", 5060),),
        sip=SIPSettings(),
        stateDirectory=state,
        trunks=(demo,),
        whitelistPollInterval=1.0,
        devicesWhitelistPath=etc / "whitelist" / "devices.txt",
        registrar=RegistrarSettings(domains=(DOMAIN,)),
        routing=RoutingSettings(defaultDomain=DOMAIN),
        calls=CallSettings(cdrPath=state / "cdr.jsonl"),
        access=_access((demo,)),
    )


def _access(trunks: tuple[Trunk, ...]) -> AccessPolicy:
    """Who may talk to us, as loadConfig derives it: each trunk's whitelist, then the devices."""
    whitelists = {Peer(TRUNK_PEER, trunk.name): trunk.whitelist for trunk in trunks}
    whitelists[DEVICE_NETWORK] = DEVICES
    return AccessPolicy(whitelists)


def withTrunk(config: Config, name: str, **changes: Any) -> Config:
    """``config`` with the trunk called ``name`` changed as ``changes`` say (Trunk's field names)."""
    trunk = config.trunk(name)
    assert trunk is not None, name
    trunks = tuple(replace(t, **changes) if t is trunk else t for t in config.trunks)
    return replace(config, trunks=trunks, access=_access(trunks))


def withCalls(config: Config, **changes: Any) -> Config:
    """``config`` with its call settings changed as ``changes`` say (CallSettings' field names)."""
    return replace(config, calls=replace(config.calls, **changes))


def withMedia(config: Config, **changes: Any) -> Config:
    """``config`` with its media settings changed as ``changes`` say (MediaSettings' field names)."""
    return replace(config, media=replace(config.media, **changes))


def route(call: CallRequest) -> Decision:
    """The tests' router: it answers at once, as every built-in router does."""
    if call.user in ("alice", "+15550001"):
        return Decision(targets=(UserTarget(f"alice@{DOMAIN}"),))
    if call.user.startswith("+"):
        return Decision(targets=(TrunkTarget("demo", call.user),))
    return Decision(reject=Reject(404, "No route"))


def invite(
    uri: str = "sip:alice@127.0.0.1",
    *,
    callId: str = "a-call-1@127.0.0.2",
    branch: str = "z9hG4bKa1",
    fromTag: str = "atag",
    body: bytes = SDP,
    source: tuple[str, int] = TRUNK,
) -> bytes:
    """An INVITE with SDP from ``source`` (the demo trunk), to be bent by each test."""
    head = (
        f"INVITE {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Caller" <sip:+15551234@{source[0]}>;tag={fromTag}\r\n'
        f"To: <{uri}>\r\n"
        f"Call-ID: {callId}\r\n"
        "CSeq: 10 INVITE\r\n"
        f"Contact: <sip:caller@{source[0]}:{source[1]}>\r\n"
        "Record-Route: <sip:proxy.a.example;lr>\r\n"
        "X-Internal-Secret: a-side-only\r\n"
        "Supported: 100rel, replaces\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answer(
    request: Request, status: int, *, tag: str = "btag", body: bytes = b"", contact: str | None = None
) -> bytes:
    """A response from the far end to ``request``."""
    response = Response(status)
    for field in request.headers.fields:
        if field.key in ("via", "from", "call-id", "cseq"):
            response.headers.fields.append(field)
        elif field.key == "to":
            value = field.value if ";tag=" in field.value or status == 100 else f"{field.value};tag={tag}"
            response.headers.add("To", value)
    if contact and 100 < status < 400:
        response.headers.add("Contact", contact)
    response.headers.add("Server", "far-end/9.9 (b-side internals)")
    response.headers.add("Warning", '399 b-internal.example "internal detail"')
    response.setBody(body, "application/sdp" if body else None)
    return response.toBytes()


class CallTestCase(SynchronousTestCase):
    """A server on a Clock, with the demo trunk, a devices network and alice's domain, that sends
    through a recording UDP transport."""

    def setUp(self) -> None:
        self.clock = SortedClock()
        self.clock.advance(1_800_000_000)
        self.cdrs = RecordingCDRs()
        self.server = SIPServer(callConfig(), self.clock, route=route, cdrs=self.cdrs)  # type: ignore[arg-type]
        self.udp = RecordingTransport()
        self.server.transportStarted(self.udp)

    def bind(
        self, source: tuple[str, int] = ALICE, contact: str = "sip:alice@10.1.1.1:5070", q: float = 1.0
    ) -> None:
        binding = Binding(
            aor=f"alice@{DOMAIN}",
            contact=contact,
            expires=self.clock.seconds() + 3600,
            q=q,
            source=source,
        )
        self.successResultOf(self.server.registrar.store.save(binding))

    def receive(self, data: bytes, source: tuple[str, int]) -> None:
        self.assertTrue(self.server.admit(source[0]))
        self.server.messageReceived(data, self.udp, source)

    def sentTo(self, address: tuple[str, int]) -> list[Request | Response]:
        return [parseMessage(data) for data, where in self.udp.sent if where == address]

    def requestsTo(self, address: tuple[str, int], method: str) -> list[Request]:
        return [m for m in self.sentTo(address) if isinstance(m, Request) and m.method == method]

    def responsesTo(self, address: tuple[str, int]) -> list[Response]:
        return [m for m in self.sentTo(address) if isinstance(m, Response)]

    def statuses(self, address: tuple[str, int]) -> list[int]:
        return [r.status for r in self.responsesTo(address)]

    def connect(self) -> Request:
        """Trunk calls alice: INVITE, 180, 200 and ACK. Returns the B-side INVITE."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        ok = self.responsesTo(TRUNK)[-1]
        self.assertEqual(ok.status, 200)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        return bInvite

    def breakTrunkLegs(self) -> None:
        """Route every call to a trunk whose legs cannot be built (as with no UDP listener)."""

        def broken(*args: object) -> NoReturn:
            raise RuntimeError("no UDP listener to reach trunk gateways")

        self.server.calls.decide = lambda call: Decision(targets=(TrunkTarget("demo", "+15550002"),))
        self.server.calls.legs.trunkLeg = broken  # type: ignore[method-assign,assignment]
        self.patch(Call, "log", Logger(observer=LogPublisher()))  # quiet: the failure is logged

    def aRequest(self, method: str, cseq: int, branch: str) -> bytes:
        """A request from the caller inside the A-leg dialog."""
        ok = next(r for r in self.responsesTo(TRUNK) if r.status == 200)
        return (
            f"{method} sip:sbc@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.2:5062;branch={branch};rport\r\n"
            f'Max-Forwards: 70\r\nFrom: "Caller" <sip:+15551234@127.0.0.2>;tag=atag\r\n'
            f"To: {ok.headers.get('to')}\r\nCall-ID: a-call-1@127.0.0.2\r\nCSeq: {cseq} {method}\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()

    def bRequest(self, bInvite: Request, method: str, cseq: int, branch: str, body: bytes = b"") -> bytes:
        """A request from alice inside the B-leg dialog."""
        request = Request(method, bInvite.fromHeader().uri)
        request.headers.add("Via", f"SIP/2.0/UDP 127.0.0.4:5070;branch={branch};rport")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", f"{bInvite.headers.get('to')};tag=btag")
        request.headers.add("To", bInvite.headers.get("from") or "")
        request.headers.add("Call-ID", bInvite.callId)
        request.headers.add("CSeq", f"{cseq} {method}")
        request.setBody(body, "application/sdp" if body else None)
        return request.toBytes()

    def drain(self) -> None:
        """Run every timer out, as if minutes passed."""
        for _ in range(200):
            self.clock.advance(1)


class RelayedCallTestCase(CallTestCase):
    """Calls whose media goes through the built-in relay (on a fake UDP reactor)."""

    def setUp(self) -> None:
        from sbc.media.ports import PortPool
        from sbc.media.relay import MediaRelay
        from tests.fakes import FakeUDPReactor

        super().setUp()
        self.udpReactor = FakeUDPReactor()
        self.relay = MediaRelay(self.udpReactor, self.clock, "127.0.0.1", PortPool(30000, 30099), timeout=30)
        self.server.calls.relay = self.relay
        self.aSDP = SDP.replace(b"192.0.2.77", b"127.0.0.2").replace(b"4000", b"6000")
        self.bSDP = SDP.replace(b"192.0.2.77", b"10.1.1.1").replace(b"4000", b"7000")

    def call(self) -> Request:
        """Trunk calls alice with SDP on both sides, answered and ACKed. Returns the B-side INVITE."""
        self.bind()
        self.receive(invite(body=self.aSDP), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        return bInvite


# An ISUP IAM's first octets, binary as SIP-I sends them.
ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x19\x88\x05"
ISUP_HEADERS = (
    b"Content-Type: application/isup;version=itu-t92+;base=itu-t92+\r\n"
    b"Content-Disposition: signal;handling=optional\r\n"
)
MIXED = 'multipart/mixed;boundary="caller-boundary-77"'


def sipI(sdp: bytes | None, isup: bool = True, boundary: str = "caller-boundary-77") -> bytes:
    """A SIP-I body: the SDP and an ISUP part (either may be left out)."""
    parts = []
    if sdp is not None:
        parts.append(b"Content-Type: application/sdp\r\n\r\n" + sdp)
    if isup:
        parts.append(ISUP_HEADERS + b"X-Part-Internal: gw7.carrier.example\r\n\r\n" + ISUP)
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts) + delimiter + b"--\r\n"


def typed(message: bytes, contentType: str | None) -> bytes:
    """A message built with an SDP Content-Type, given another (or none)."""
    line = b"" if contentType is None else f"Content-Type: {contentType}\r\n".encode()
    return message.replace(b"Content-Type: application/sdp\r\n", line, 1)
