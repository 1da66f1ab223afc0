# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Calls through the real service (C{twistd -n sbc}) between SIPp processes: a peer trunk, registered
phones and outside gateways, each SIPp on an address of its own.

  - 127.0.0.2: the demo trunk (whitelisted), as the caller or as the gateway calls go out to;
  - 127.0.0.3: a second gateway of the demo trunk (whitelisted by the test that uses it);
  - 127.0.0.4 and 127.0.0.5: phones in the demo's device network, which register (digest) as alice
    and bob before they take calls, and authenticate (407) the calls they place.

A phone is two SIPp runs on one port: register_auth.xml registers it, then a call_*_uas-style
scenario binds that port and answers, since the SBC sends a phone's calls to the address its
REGISTER came from.  (One SIPp cannot do both: a scenario that starts by sending is a client, and a
client drops requests with a Call-ID it did not make.)

Every test starts a service of its own: the demo config, with the demo trunk's gateways moved to free
ports where a test needs them, and the media relay on a loopback address of its own.  The topology
tests look at every byte each side received, SDP included.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort, udpPortBound
from .service import ServiceProcess, startService
from .sipp import SippProcess, SippRun, TracedMessage, freeMediaPort, runSipp, startSipp
from .tools import requireTool

ALICE = ("alice", "alice-demo")
BOB = ("bob", "bob-demo")
TRUNK = "127.0.0.2"
GATEWAY_B = "127.0.0.3"
PHONE_A = "127.0.0.4"
PHONE_B = "127.0.0.5"

# The demo DIDs of the shipped config ([routing.dids]): alice's, and a number no user has.
ALICE_DID = "+15550100"
OUTSIDE_NUMBER = "+15557777"

# The demo trunk's failover_timeout in the shipped config: a silent gateway is abandoned after it.
FAILOVER_TIMEOUT = 2.0
# How much later than failover_timeout the next gateway may get the INVITE (a loaded test machine).
FAILOVER_SLACK = 1.5

# The User-Agent of every scenario: the SBC writes its own Server and User-Agent, so neither side may
# ever receive this one.
SIPP_USER_AGENT = "sbc-interop-sipp"

# SIPp's -timeout for one call's processes: far above what a call takes, far below the test's budget.
CALL_TIMEOUT = 15.0
# How long an answered call stays up before its BYE (SIPp's -d, in milliseconds).
HOLD_MS = 300

# The load test: LOAD_CALLS calls placed at LOAD_RATE per second, each up for LOAD_HOLD_MS, so that all
# of them are up at once.
LOAD_CALLS = 100
LOAD_RATE = 200
LOAD_HOLD_MS = 2000
LOAD_TIMEOUT = 30.0

# The first RTP port of the shipped config's media relay ([media] port_min).
MEDIA_PORT_MIN = 20000


_PEAK = re.compile(r"Peak was (\d+) calls")
_TAG = re.compile(r";\s*tag=([^;>,\s]+)", re.IGNORECASE)
_BRANCH = re.compile(r";\s*branch=([^;,\s]+)", re.IGNORECASE)


def mediaAddress() -> str:
    """
    A random loopback address outside 127.0.0.0/24 (where the SIPp roles live) whose first media port
    is free: the shipped config's relay binds 127.0.0.1, ports 20000 and up, and two services relaying
    calls at once on one address would take each other's ports (the loser answers 503).
    """
    for _ in range(100):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if not udpPortBound(address, MEDIA_PORT_MIN):
            return address
    raise RuntimeError("no free loopback address for the media relay")


def peakCalls(run: SippRun) -> int:
    """
    The most calls C{run} had open at once, from the last "Peak was N calls" of its screen output.
    """
    peaks = _PEAK.findall(run.output)
    if not peaks:
        raise AssertionError(f"no peak in SIPp's output:\n{run.output[-2000:]}")
    return int(peaks[-1])


@dataclass(frozen=True)
class Footprint:
    """
    What identifies one side of a call on the wire, which the other side must never see.

    @ivar addresses: its IP address.
    @ivar ports: its SIP port and its media port.
    @ivar tokens: the Call-IDs, tags and Via branches of its dialog with the SBC: its own and the
        SBC's on that leg.
    """

    addresses: frozenset[str]
    ports: frozenset[int]
    tokens: frozenset[str]


def footprintOf(run: SippRun) -> Footprint:
    """
    The footprint of the side C{run} played: its address and ports, and every Call-ID, tag and branch of
    the messages it sent and received.
    """
    assert run.local is not None
    host, port = run.local
    ports = {port}
    if "-mp" in run.args:
        ports.add(int(run.args[run.args.index("-mp") + 1]))
    tokens: set[str] = set()
    for message in run.traced:
        tokens.update(message.headers("call-id"))
        for value in message.headers("from") + message.headers("to"):
            tokens.update(_TAG.findall(value))
        for value in message.headers("via"):
            tokens.update(_BRANCH.findall(value))
    return Footprint(frozenset({host}), frozenset(ports), frozenset(t for t in tokens if t))


def leaks(footprint: Footprint, run: SippRun) -> list[str]:
    """
    Each place where something of C{footprint} appears in the messages C{run} received: what, and the
    line it is on (saying whether that line is in the SDP body or in the SIP headers).
    """
    patterns = [
        *((f"address {a}", re.compile(rf"(?<![0-9.]){re.escape(a)}(?![0-9])")) for a in footprint.addresses),
        *((f"port {p}", re.compile(rf"(?<![0-9A-Za-z-]){p}(?![0-9A-Za-z-])")) for p in footprint.ports),
        *((f"{t!r}", re.compile(re.escape(t))) for t in footprint.tokens),
    ]
    found = []
    for message in run.traced:
        if message.sent:
            continue
        head, _, body = message.text.partition("\n\n")
        for part, text in (("header", head), ("SDP", body)):
            for line in text.split("\n"):
                for what, pattern in patterns:
                    if pattern.search(line):
                        found.append(f"{what} in {part} line {line!r} of {message.firstLine!r}")
    return found


def accountArgs(account: tuple[str, str]) -> tuple[str, ...]:
    """
    SIPp options for an account: the user in the scenarios (C{-s}) and the digest credentials.
    """
    user, password = account
    return ("-s", user, "-au", user, "-ap", password)


class CallTestCase(SynchronousTestCase):
    """
    What call tests share: starting the service, SIPp phones, gateways and callers, and assertions on
    what they saw.
    """

    service: ServiceProcess

    def startWith(
        self,
        gateways: Sequence[tuple[str, int]] = (),
        whitelist: Sequence[str] = (),
    ) -> ServiceProcess:
        """
        Check that SIPp is installed, then start the service, with the demo trunk's gateways set to
        C{gateways} (when given) and C{whitelist} added to the demo trunk's whitelist.

        The media relay binds an address of its own (see L{mediaAddress}), so that services of tests
        running in parallel never compete for its RTP ports.
        """
        requireTool("sipp")
        settings: dict[str, dict[str, object]] = {"media": {"address": mediaAddress()}}
        if gateways:
            settings["trunks.demo"] = {"gateways": [f"{host}:{port}" for host, port in gateways]}
        additions = {"whitelist/demo.txt": list(whitelist)} if whitelist else {}
        self.service = startService(self, settings=settings, additions=additions)
        return self.service

    def detail(self, *runs: SippRun) -> str:
        """
        Everything about the runs and the service, for a failure message.
        """
        return "\n".join(run.describe() for run in runs) + "\n" + self.service.describe()

    def phone(
        self,
        scenario: str,
        account: tuple[str, str] = ALICE,
        host: str = PHONE_A,
        *,
        calls: int = 1,
        timeout: float = CALL_TIMEOUT,
        statistics: bool = False,
        extraArgs: Sequence[str] = (),
    ) -> SippProcess:
        """
        Register C{account} from a free port of C{host}, then start C{scenario} in the background on
        that port, as the phone that takes the account's calls.  Returns once it listens.
        """
        port = freePort(host, (UDP,))
        registration = runSipp(
            self,
            "register_auth.xml",
            self.service.address("udp"),
            localHost=host,
            localPort=port,
            extraArgs=accountArgs(account),
        )
        self.assertEqual(registration.exitCode, 0, self.detail(registration))
        self.assertEqual(
            [r.statusCode for r in registration.responses], [401, 200], self.detail(registration)
        )
        return startSipp(
            self,
            scenario,
            localHost=host,
            localPort=port,
            timeout=timeout,
            calls=calls,
            mediaPort=freeMediaPort(host, avoid=(port,)),
            statistics=statistics,
            listening=True,
            extraArgs=("-s", account[0], *extraArgs),
        )

    def gateway(
        self, scenario: str, host: str, port: int, *, timeout: float = CALL_TIMEOUT, user: str = "gateway"
    ) -> SippProcess:
        """
        Start C{scenario} in the background on C{host}:C{port}, as a gateway of the demo trunk, whose
        scenario user (C{-s}) is C{user}.
        """
        return startSipp(
            self,
            scenario,
            localHost=host,
            localPort=port,
            timeout=timeout,
            mediaPort=freeMediaPort(host, avoid=(port,)),
            listening=True,
            extraArgs=("-s", user),
        )

    def caller(
        self,
        scenario: str,
        target: str,
        host: str = TRUNK,
        *,
        calls: int = 1,
        timeout: float = CALL_TIMEOUT,
        statistics: bool = False,
        holdMs: int = HOLD_MS,
        extraArgs: Sequence[str] = (),
        remote: tuple[str, int] | None = None,
    ) -> SippRun:
        """
        Run the client scenario C{scenario} from C{host}, calling C{target} (C{-s}) at the SBC (or at
        C{remote}, a proxy in front of it), to the end; an answered call stays up for C{holdMs}
        milliseconds (C{-d}).
        """
        return runSipp(
            self,
            scenario,
            self.service.address("udp") if remote is None else remote,
            localHost=host,
            timeout=timeout,
            calls=calls,
            mediaPort=freeMediaPort(host),
            statistics=statistics,
            extraArgs=("-s", target, "-d", str(holdMs), *extraArgs),
        )

    def assertCompleted(self, *runs: SippRun) -> None:
        """
        Every run completed its scenario (exit code 0), and the service still runs and logged no error.
        """
        detail = self.detail(*runs)
        for run in runs:
            self.assertEqual(run.exitCode, 0, detail)
        self.assertTrue(self.service.running, detail)
        self.assertEqual(self.service.errors(), [], detail)

    def device(
        self,
        target: str,
        account: tuple[str, str] = ALICE,
        host: str = PHONE_A,
        *,
        timeout: float = CALL_TIMEOUT,
    ) -> SippRun:
        """
        Run call_device_uac.xml from C{host}: C{account} calls C{target}, answering the SBC's 407.
        """
        user, password = account
        return self.caller(
            "call_device_uac.xml",
            target,
            host,
            timeout=timeout,
            extraArgs=("-au", user, "-ap", password, "-set", "caller", user),
        )

    def assertStatuses(self, run: SippRun, statuses: list[int], *others: SippRun) -> None:
        """
        The responses C{run} received, 100 Trying and retransmissions left out, were C{statuses}.
        """
        seen: list[int | None] = []
        keys: set[tuple[int | None, str, str]] = set()
        for response in run.responses:
            # A retransmission repeats the status, the CSeq and the branch.
            key = (response.statusCode, " ".join(response.headers("cseq")), " ".join(response.headers("via")))
            if response.statusCode != 100 and key not in keys:
                keys.add(key)
                seen.append(response.statusCode)
        self.assertEqual(seen, statuses, self.detail(run, *others))

    def requests(self, run: SippRun, method: str) -> list[TracedMessage]:
        """
        The C{method} requests C{run} received, in order.
        """
        return [m for m in run.traced if not m.sent and m.firstLine.startswith(f"{method} ")]


class CallTests(CallTestCase):
    """
    Calls between a trunk and registered phones, between phones, and from phones out through the trunk.
    """

    def test_trunkToAliceCallerHangsUp(self) -> None:
        """
        A trunk call to sip:alice@sbc rings her phone; 180 and 200 with SDP reach the caller; its BYE ends it.
        """
        self.startWith()
        phone = self.phone("call_uas.xml")
        caller = self.caller("call_uac.xml", ALICE[0])
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        self.assertStatuses(caller, [180, 200, 200], callee)
        detail = self.detail(caller, callee)
        invites = self.requests(callee, "INVITE")
        self.assertEqual(len(invites), 1, detail)
        host, port = phone.localHost, phone.localPort
        self.assertTrue(invites[0].firstLine.startswith(f"INVITE sip:alice@{host}:{port}"), detail)
        self.assertEqual(len(self.requests(callee, "BYE")), 1, detail)

    def test_trunkToDidCalleeHangsUp(self) -> None:
        """
        A trunk call to alice's DID reaches her phone; when the phone hangs up, the caller gets the BYE.
        """
        self.startWith()
        phone = self.phone("call_uas_bye.xml", extraArgs=("-d", str(HOLD_MS)))
        caller = self.caller("call_uac_wait.xml", ALICE_DID)
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        self.assertStatuses(caller, [180, 200], callee)
        self.assertStatuses(callee, [200], caller)
        self.assertEqual(len(self.requests(caller, "BYE")), 1, self.detail(caller, callee))

    def cancelledCall(self) -> tuple[SippRun, SippRun]:
        """
        A trunk call to alice that the caller cancels while her phone rings: the caller's run and the
        phone's, both completed.
        """
        self.startWith()
        phone = self.phone("call_uas_cancel.xml")
        caller = self.caller("call_uac_cancel.xml", ALICE[0])
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        return caller, callee

    def test_cancelWhileRinging(self) -> None:
        """
        CANCEL after 180: 200 and 487 to the caller; the phone gets CANCEL (it answers 200, 487) and an ACK.
        """
        caller, callee = self.cancelledCall()
        self.assertStatuses(caller, [180, 200, 487], callee)
        detail = self.detail(caller, callee)
        self.assertEqual(len(self.requests(callee, "CANCEL")), 1, detail)
        self.assertEqual(len(self.requests(callee, "ACK")), 1, detail)

    def test_cancelAnswerKeepsToTag(self) -> None:
        """
        The 200 for the caller's CANCEL carries the To tag of the 180 and the 487 (RFC 3261 section 9.2).
        """
        caller, callee = self.cancelledCall()
        detail = self.detail(caller, callee)
        ringing, cancelled, terminated = (
            self.toTag(caller, status, cseq)
            for status, cseq in ((180, "1 INVITE"), (200, "1 CANCEL"), (487, "1 INVITE"))
        )
        self.assertIsNotNone(ringing, detail)
        self.assertEqual(terminated, ringing, detail)
        self.assertEqual(
            cancelled,
            ringing,
            f"the 200 for CANCEL has To tag {cancelled}, the 180 and 487 {ringing}\n{detail}",
        )

    def toTag(self, run: SippRun, status: int, cseq: str) -> str | None:
        """
        The To tag of the first response C{status} with CSeq C{cseq} that C{run} received.
        """
        for response in run.responses:
            if response.statusCode == status and response.headers("cseq") == [cseq]:
                tags = _TAG.findall(" ".join(response.headers("to")))
                return tags[0] if tags else None
        self.fail(f"no {status} for {cseq}\n{self.detail(run)}")

    def test_reinviteFromEachSide(self) -> None:
        """
        A hold re-INVITE from the caller reaches the phone and its 200 comes back; then the other way.
        """
        self.startWith()
        phone = self.phone("call_uas_reinvite.xml")
        caller = self.caller("call_uac_reinvite.xml", ALICE[0])
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        self.assertStatuses(caller, [180, 200, 200, 200], callee)
        self.assertStatuses(callee, [200], caller)
        self.assertEqual(len(self.requests(caller, "INVITE")), 1, detail)
        self.assertEqual(len(self.requests(callee, "INVITE")), 2, detail)

    def test_busy(self) -> None:
        """
        A 486 Busy Here from the phone reaches the trunk caller as 486, and both sides' ACKs complete.
        """
        self.startWith()
        phone = self.phone("call_uas_busy.xml")
        caller = self.caller("call_uac_busy.xml", ALICE[0])
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        self.assertStatuses(caller, [486], callee)
        self.assertEqual(len(self.requests(callee, "ACK")), 1, self.detail(caller, callee))

    def test_failoverToSecondGateway(self) -> None:
        """
        alice calls a number; the trunk's first gateway stays silent, so the second one takes the call.
        """
        silentPort, answeringPort = freePort(TRUNK, (UDP,)), freePort(GATEWAY_B, (UDP,))
        self.startWith(
            gateways=[(TRUNK, silentPort), (GATEWAY_B, answeringPort)], whitelist=[f"{GATEWAY_B}/32"]
        )
        silent = self.gateway("call_gateway_silent.xml", TRUNK, silentPort)
        answering = self.gateway("call_uas.xml", GATEWAY_B, answeringPort)
        caller = self.device(OUTSIDE_NUMBER)
        first, second = silent.wait(), answering.wait()
        self.assertCompleted(caller, first, second)
        detail = self.detail(caller, first, second)
        self.assertStatuses(caller, [407, 180, 200, 200], first, second)
        arrivals = []
        for gateway, run in ((silent, first), (answering, second)):
            invites = self.requests(run, "INVITE")
            self.assertTrue(invites, detail)
            self.assertTrue(
                invites[0].firstLine.startswith(
                    f"INVITE sip:{OUTSIDE_NUMBER}@{gateway.localHost}:{gateway.localPort}"
                ),
                detail,
            )
            arrivals.append(invites[0].time)
        self.assertEqual([m for m in first.traced if m.sent], [], detail)
        # The second gateway was tried once the first had been silent for failover_timeout.
        silentAt, answeringAt = arrivals
        assert silentAt is not None and answeringAt is not None
        self.assertGreaterEqual(answeringAt - silentAt, FAILOVER_TIMEOUT - 0.1, detail)
        self.assertLess(answeringAt - silentAt, FAILOVER_TIMEOUT + FAILOVER_SLACK, detail)

    def test_aliceToBob(self) -> None:
        """
        alice's INVITE to sip:bob@sbc gets 407; with her credentials it rings bob's phone, which answers.
        """
        self.startWith()
        phone = self.phone("call_uas.xml", BOB, PHONE_B)
        caller = self.device(BOB[0])
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        self.assertStatuses(caller, [407, 180, 200, 200], callee)
        invites = self.requests(callee, "INVITE")
        self.assertEqual(len(invites), 1, detail)
        self.assertTrue(
            invites[0].firstLine.startswith(f"INVITE sip:bob@{PHONE_B}:{phone.localPort}"), detail
        )
        # The caller's name crosses (policy passes user parts); her credentials do not.
        self.assertRegex(invites[0].headers("from")[0], r"<sip:alice@", detail)
        self.assertEqual(invites[0].headers("proxy-authorization"), [], detail)

    def test_aliceToOutsideNumber(self) -> None:
        """
        alice calls a number of no user's; it goes out through the demo trunk to its gateway, which answers.
        """
        port = freePort(TRUNK, (UDP,))
        self.startWith(gateways=[(TRUNK, port)])
        gateway = self.gateway("call_uas.xml", TRUNK, port)
        caller = self.device(OUTSIDE_NUMBER)
        outside = gateway.wait()
        self.assertCompleted(caller, outside)
        detail = self.detail(caller, outside)
        self.assertStatuses(caller, [407, 180, 200, 200], outside)
        invites = self.requests(outside, "INVITE")
        self.assertEqual(len(invites), 1, detail)
        self.assertTrue(
            invites[0].firstLine.startswith(f"INVITE sip:{OUTSIDE_NUMBER}@{TRUNK}:{port}"), detail
        )

    def test_hundredConcurrentCalls(self) -> None:
        """
        100 trunk calls, all up at once for 2 s, every one succeeds at the caller and at the phone.
        """
        self.startWith()
        phone = self.phone("call_uas.xml", calls=LOAD_CALLS, timeout=LOAD_TIMEOUT, statistics=True)
        caller = self.caller(
            "call_uac.xml",
            ALICE[0],
            calls=LOAD_CALLS,
            timeout=LOAD_TIMEOUT,
            statistics=True,
            holdMs=LOAD_HOLD_MS,
            extraArgs=("-r", str(LOAD_RATE), "-l", str(LOAD_CALLS)),
        )
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        for run in (caller, callee):
            self.assertEqual(run.count("SuccessfulCall"), LOAD_CALLS, detail)
            self.assertEqual(run.count("FailedCall"), 0, detail)
            self.assertEqual(peakCalls(run), LOAD_CALLS, detail)

    def test_topologyHiddenTrunkToPhone(self) -> None:
        """
        Trunk to phone, re-INVITEs both ways: no byte received names the other side's address or dialog.
        """
        self.startWith()
        phone = self.phone("call_uas_reinvite.xml")
        caller = self.caller("call_uac_reinvite.xml", ALICE_DID)
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        self.assertNoLeaks(caller, "trunk caller", callee, "alice's phone")

    def test_topologyHiddenPhoneToTrunk(self) -> None:
        """
        alice out through the trunk: no byte either side receives names the other side's address or dialog.
        """
        port = freePort(TRUNK, (UDP,))
        self.startWith(gateways=[(TRUNK, port)])
        gateway = self.gateway("call_uas.xml", TRUNK, port)
        caller = self.device(OUTSIDE_NUMBER)
        outside = gateway.wait()
        self.assertCompleted(caller, outside)
        self.assertNoLeaks(caller, "alice's phone", outside, "trunk gateway")

    def assertNoLeaks(self, a: SippRun, aName: str, b: SippRun, bName: str) -> None:
        """
        Nothing of C{a}'s footprint appears in what C{b} received, and the other way round.
        """
        for run in (a, b):
            # The check can see: a side's own identifiers are all over what it received.
            self.assertTrue(leaks(footprintOf(run), run), self.detail(run))
            # Server and User-Agent are the SBC's own.
            self.assertNotIn(SIPP_USER_AGENT, run.receivedText, self.detail(a, b))
        found = [
            f"{receiver} received {what}"
            for sender, receiver, run in ((a, bName, b), (b, aName, a))
            for what in leaks(footprintOf(sender), run)
        ]
        self.assertEqual(found, [], "\n".join(found) + "\n" + self.detail(a, b))
