# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Real softphones through the real service: Debian's baresip 1.0.0 (libre), driven headless by
L{tests.interop.baresip}, as alice (127.0.0.4) and bob (127.0.0.5) of the demo.

libre gives up at the first digest challenge that is not MD5, so these tests also guard the shipped
default of one MD5 challenge: with two challenges no phone here would register.
"""

from __future__ import annotations

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from sbc.config import MediaSettings

from .baresip import Baresip, accountLine
from .service import ServiceProcess, startService
from .sipp import runSipp
from .test_calls import ALICE_DID, mediaAddress
from .tools import requireTool

DOMAIN = "demo.acme.sbc.test"
ALICE = ("alice", "alice-demo", "127.0.0.4")
BOB = ("bob", "bob-demo", "127.0.0.5")
TRUNK = "127.0.0.2"
# The phones of the UDP call: the relay latches only to a party's SDP address or its SIP source IP
# (issue 15), and baresip's RTP leaves from 127.0.0.1 whatever its SIP address, so a UDP phone that
# talks SIP from 127.0.0.4 could never get media through. On 127.0.0.1 its SIP and RTP sources agree,
# as a phone's do behind a NAT.
LOOPBACK_PHONES = (("alice", "alice-demo", "127.0.0.1"), ("bob", "bob-demo", "127.0.0.1"))
# Bounds of every wait: a call is set up in well under a second on loopback.
WAIT = 10.0

_SDP_PORT = re.compile(r"^m=audio (\d+) ", re.MULTILINE)
_CALL_ID = re.compile(r"^(?:Call-ID|i):\s*(\S+)", re.MULTILINE | re.IGNORECASE)


class BaresipTests(SynchronousTestCase):
    """
    Two baresip phones register with digest, call each other, and talk through the relay.
    """

    service: ServiceProcess

    def setUp(self) -> None:
        self.phones: list[Baresip] = []

    def startService(self, transport: str = "udp") -> ServiceProcess:
        """
        The shipped config, with the media relay on a loopback address of its own.

        libre 1.1.0 does not bind its TCP and TLS client connections to the C{sip_listen} address, nor
        its RTP sockets to any: over those transports both phones connect from 127.0.0.1, whatever
        their own address, and every phone's RTP leaves from 127.0.0.1.  So that address joins the
        device network for the calls between phones, and in the UDP call the phones listen there too
        (see L{LOOPBACK_PHONES}).
        """
        requireTool("baresip")
        additions = {"whitelist/devices.txt": ["127.0.0.1/32"]} if transport != "trunk" else {}
        media: dict[str, object] = {"address": mediaAddress()}
        if transport == "udp":
            # The UDP phones share 127.0.0.1 with the SBC's listener, which "self" forbids as a
            # media target; every other default stays.
            media["forbidden_targets"] = [t for t in MediaSettings.forbiddenTargets if t != "self"]
        self.service = startService(self, settings={"media": media}, additions=additions)
        return self.service

    def phone(self, who: tuple[str, str, str], transport: str, timeout: float = WAIT) -> Baresip:
        """Start baresip as C{who} registering over C{transport}, and wait until it is registered."""
        user, password, host = who
        account = accountLine(user, password, DOMAIN, self.service.address(transport), transport)
        server = [(listener.host, listener.port) for listener in self.service.listeners]
        cafile = self.service.directory / "state" / "tls" / "sbc.crt"
        phone = Baresip(self, user, host, account, server, cafile=cafile)
        phone.start()
        self.phones.append(phone)
        phone.waitRegistered(timeout)
        return phone

    def detail(self, *phones: Baresip) -> str:
        return "\n".join(p.describe() for p in phones) + "\n" + self.service.describe()

    def waitFor(self, phone: Baresip, pattern: str, after: int, *others: Baresip) -> int:
        """Wait until a message C{phone} received after its first C{after} ones matches; its index."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for index, message in enumerate(phone.received()[after:], after):
                if re.search(pattern, message, re.MULTILINE):
                    return index
            time.sleep(0.1)
        self.fail(f"{phone.name} received nothing matching {pattern!r}\n{self.detail(phone, *others)}")

    def assertNoLeak(self, source: Baresip, callId: str, sink: Baresip) -> None:
        """Nothing that identifies C{source} (address, SIP and RTP ports, Call-ID) reaches C{sink}."""
        sent = source.sent()
        ports = {*source.sourcePorts(), *(int(p) for m in sent for p in _SDP_PORT.findall(m))}
        # A phone sharing 127.0.0.1 with the SBC's own listener is told apart by its ports alone.
        secrets = [callId, *(str(p) for p in ports)] + ([source.host] if source.host != "127.0.0.1" else [])
        secrets += [c for m in sent for c in _CALL_ID.findall(m)]
        received = sink.received()
        self.assertTrue(received, self.detail(source, sink))
        for message in received:
            for secret in secrets:
                self.assertIsNone(
                    re.search(rf"(?<![0-9A-Za-z.-]){re.escape(secret)}(?![0-9A-Za-z-]|\.[0-9])", message),
                    f"{secret!r} of {source.name} reached {sink.name} in:\n{message}",
                )

    def call(self, transport: str, *, calleeHangsUp: bool) -> None:
        """
        alice calls bob over C{transport}; RTP is established on both sides; alice holds and resumes
        (re-INVITE); one side hangs up and the other sees the call close; nothing of either phone
        reaches the other.
        """
        self.startService(transport)
        if transport == "udp":
            alice, bob = (self.phone(who, transport) for who in LOOPBACK_PHONES)
        else:
            alice, bob = self.phone(ALICE, transport), self.phone(BOB, transport)
        alice.command("dial", f"sip:bob@{DOMAIN}")
        incoming = bob.waitEvent("CALL_ESTABLISHED", WAIT)
        outgoing = alice.waitEvent("CALL_ESTABLISHED", WAIT)
        # baresip reports RTP established when the first packet arrives: media flows both ways.
        alice.waitEvent("CALL_RTPESTAB", WAIT)
        bob.waitEvent("CALL_RTPESTAB", WAIT)

        before = len(bob.received())
        self.assertTrue(alice.command("hold").get("ok"), self.detail(alice, bob))
        held = self.waitFor(bob, r"^a=sendonly", before, alice)
        self.assertRegex(bob.received()[held], r"^INVITE ", self.detail(alice, bob))
        self.waitFor(alice, r"^a=recvonly", 0, bob)
        self.assertTrue(alice.command("resume").get("ok"), self.detail(alice, bob))
        resumed = self.waitFor(bob, r"^a=sendrecv", held + 1, alice)
        self.assertRegex(bob.received()[resumed], r"^INVITE ", self.detail(alice, bob))

        ender, other = (bob, alice) if calleeHangsUp else (alice, bob)
        self.assertTrue(ender.command("hangup").get("ok"), self.detail(alice, bob))
        other.waitEvent("CALL_CLOSED", WAIT)
        ender.waitEvent("CALL_CLOSED", WAIT)
        self.waitFor(other, r"^BYE ", 0, ender)

        self.assertNoLeak(alice, str(outgoing["id"]), bob)
        self.assertNoLeak(bob, str(incoming["id"]), alice)
        self.assertTrue(self.service.running, self.detail(alice, bob))
        self.assertEqual(self.service.errors(), [], self.detail(alice, bob))

    def test_callOverUDPCalleeHangsUp(self) -> None:
        """Over UDP: register, call, RTP both ways, hold/resume, bob hangs up, no address leaks."""
        self.call("udp", calleeHangsUp=True)

    def test_callOverTCPCallerHangsUp(self) -> None:
        """Over TCP: register, call, RTP both ways, hold/resume, alice hangs up, no address leaks."""
        self.call("tcp", calleeHangsUp=False)

    def test_callOverTLS(self) -> None:
        """Over TLS (the service's self-signed certificate as CA): the same call, bob hangs up."""
        self.call("tls", calleeHangsUp=True)

    def test_trunkCallToPhone(self) -> None:
        """A trunk call (SIPp on 127.0.0.2) to alice's DID reaches her baresip, which answers; BYE ends it."""
        requireTool("sipp")
        self.startService()
        alice = self.phone(ALICE, "udp")
        run = runSipp(
            self,
            "call_uac.xml",
            self.service.address("udp"),
            localHost=TRUNK,
            timeout=WAIT,
            extraArgs=("-s", ALICE_DID, "-d", "1000"),
        )
        detail = run.describe() + self.detail(alice)
        self.assertEqual(run.exitCode, 0, detail)
        self.assertIn(200, [r.statusCode for r in run.responses], detail)
        alice.waitEvent("CALL_ESTABLISHED", WAIT)
        alice.waitEvent("CALL_CLOSED", WAIT)
        self.waitFor(alice, r"^BYE ", 0)
        for message in alice.received():
            self.assertNotIn(TRUNK, message, detail)

    def test_twoChallengesStopLibre(self) -> None:
        """
        Why MD5 alone is the default: with an SHA-256 challenge beside the MD5 one, baresip never
        registers, and says "Function not implemented".
        """
        requireTool("baresip")
        self.service = startService(
            self,
            settings={"media": {"address": mediaAddress()}, "registrar": {"algorithms": ["MD5", "SHA-256"]}},
        )
        with self.assertRaises(AssertionError):
            self.phone(ALICE, "udp", timeout=3.0)
        (alice,) = self.phones
        self.assertIn("Function not implemented", alice.log(), self.detail(alice))
