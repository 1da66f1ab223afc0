# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
REGISTER against the real service (C{twistd -n sbc}) from real SIP clients: SIPp and sipsak.

The shipped demo config lets devices register from 127.0.0.4/30 (127.0.0.4 to 127.0.0.7) with digest
authentication, realm C{demo.acme.sbc.test}; its demo accounts are alice (password C{alice-demo}) and
bob (C{bob-demo}).  The trunk 127.0.0.2 may not register, and 127.0.0.9 is a stranger.

Every test starts a service of its own, so bans and bindings never leak from one test to another.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort
from .service import ServiceProcess, startService
from .sipp import SippRun, TracedMessage, runSipp
from .tools import requireTool

DOMAIN = "demo.acme.sbc.test"
ALICE = ("alice", "alice-demo")
BOB = ("bob", "bob-demo")
TRUNK = "127.0.0.2"
STRANGER = "127.0.0.9"
# The demo's device network, 127.0.0.4/30.  Tests that must not share a source pick different ones.
DEVICE_A = "127.0.0.4"
DEVICE_B = "127.0.0.5"
DEVICE_C = "127.0.0.6"
DEVICE_D = "127.0.0.7"

# The registrar's limits in the shipped sbc.toml ([registrar] min_expires, [bans] failures).
MIN_EXPIRES = 60
BAN_FAILURES = 5
# What register_*.xml ask for, and what sipsak asks for.
SIPP_EXPIRES = 3600
SIPSAK_EXPIRES = 120

# How long a client waits for an answer that must not come.
SILENCE = 2.0
# How long sipsak may take for a registration (it retransmits over UDP for a while on its own).
SIPSAK_TIMEOUT = 10.0

# A Contact value the registrar lists in a 200: "<uri>;expires=N", maybe with more parameters.
_BINDING = re.compile(r"^<([^>]+)>\s*;(.*)$")
_EXPIRES_PARAM = re.compile(r"(?:^|;)\s*expires\s*=\s*(\d+)\s*(?:;|$)", re.IGNORECASE)
_SIPSAK_STATUS = re.compile(r"^SIP/2\.0 (\d{3}) ", re.MULTILINE)


def accountArgs(account: tuple[str, str]) -> tuple[str, ...]:
    """
    SIPp options for an account: the scenarios' user (C{-s}, in To, From and Contact) and the digest
    credentials (C{-au}, C{-ap}) that C{[authentication]} answers a challenge with.
    """
    user, password = account
    return ("-s", user, "-au", user, "-ap", password)


def bindingsOf(response: TracedMessage) -> dict[str, int]:
    """
    The bindings a 200 to REGISTER lists: contact URI -> the expires parameter of its Contact value.

    Raises C{AssertionError} for a Contact value that is not C{<uri>;...expires=N...}.
    """
    bindings = {}
    for header in response.headers("contact"):
        # The registrar writes one binding per header line; a comma between "<...>" values would join
        # several, and a comma inside "<...>" belongs to the URI.
        for value in re.findall(r"<[^>]*>[^,]*", header):
            match = _BINDING.match(value.strip())
            expires = _EXPIRES_PARAM.search(match.group(2)) if match else None
            if match is None or expires is None:
                raise AssertionError(f"a Contact value that is not <uri>;expires=N: {value!r}")
            bindings[match.group(1)] = int(expires.group(1))
    return bindings


def sippContact(run: SippRun, user: str, transport: str = "UDP") -> str:
    """
    The contact URI that register_*.xml put in their Contact header for C{run}.
    """
    assert run.local is not None
    host, port = run.local
    return f"sip:{user}@{host}:{port};transport={transport}"


@dataclass(frozen=True)
class SipsakRun:
    """
    One run of sipsak in usrloc mode.

    @ivar args: the command line.
    @ivar exitCode: sipsak's exit code (0: registered; C{-9} when we killed it).
    @ivar output: what it printed; with C{-vvv} that includes every request and reply.
    @ivar local: the (host, port) it sent from and received on.
    """

    args: tuple[str, ...]
    exitCode: int
    output: str
    local: tuple[str, int]

    @property
    def statusCodes(self) -> list[int]:
        """
        The status codes of the replies sipsak printed, in order.
        """
        return [int(code) for code in _SIPSAK_STATUS.findall(self.output)]

    def describe(self) -> str:
        """
        Everything about the run, for a failure message.
        """
        return f"--- sipsak exited with {self.exitCode}: {' '.join(self.args)}\n--- output:\n{self.output}"


def sipsakRegister(
    testCase: SynchronousTestCase,
    remote: tuple[str, int],
    account: tuple[str, str],
    localHost: str,
    expires: int = SIPSAK_EXPIRES,
    timeout: float = SIPSAK_TIMEOUT,
) -> SipsakRun:
    """
    Register C{account} with sipsak from C{localHost}, sending to the SBC at C{remote} as outbound proxy.

    sipsak builds the REGISTER itself (To and From C{sip:user@DOMAIN}, Contact C{sip:user@host:port})
    and answers the 401 with a digest response of its own making.
    """
    sipsak = requireTool("sipsak")
    user, password = account
    localPort = freePort(localHost, (UDP,))
    directory = Path(tempfile.mkdtemp(prefix="sipsak-"))
    testCase.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    args = (
        sipsak,
        "-vvv",  # in usrloc mode only the third -v prints the replies
        # The outbound proxy must come before --sip-uri: sipsak resolves the URI's host (which no DNS
        # knows here) while it reads --sip-uri, unless a proxy is already set.
        f"--outbound-proxy={remote[0]}:{remote[1]}",
        f"--local-ip={localHost}",
        f"--hostname={localHost}",  # for Via and Contact; sipsak would name 127.0.0.1
        f"--local-port={localPort}",
        "--symmetric",  # send from the port in Via and Contact, not from a second socket
        "--usrloc-mode",  # register only: no -I/-M
        "--no-via",  # usrloc mode writes its own Via anyway; this only silences a warning
        f"--sip-uri=sip:{user}@{DOMAIN}",
        f"--auth-username={user}",  # or sipsak sends "user@" as the digest username
        f"--password={password}",
        f"--expires={expires}",
    )
    try:
        completed = subprocess.run(
            args,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        output = (e.output or b"").decode("utf-8", errors="replace")
        return SipsakRun(args, -9, output, (localHost, localPort))
    return SipsakRun(
        args, completed.returncode, completed.stdout.decode("utf-8", errors="replace"), (localHost, localPort)
    )


class RegisterTests(SynchronousTestCase):
    """
    Devices register, unregister and query their bindings with digest authentication; bindings survive
    a restart; password guessing gets the source banned.
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

    def sipp(
        self,
        scenario: str,
        localHost: str,
        account: tuple[str, str] = ALICE,
        *,
        transport: str = "u1",
        timeout: float = 10.0,
    ) -> SippRun:
        """
        Run a register_*.xml scenario as C{account} from C{localHost} against the service.
        """
        remote = self.service.address("udp" if transport.startswith("u") else "tcp")
        return runSipp(
            self,
            scenario,
            remote,
            transport=transport,
            localHost=localHost,
            timeout=timeout,
            extraArgs=accountArgs(account),
        )

    def detail(self, run: SippRun | SipsakRun) -> str:
        return run.describe() + "\n" + self.service.describe()

    def assertExchange(self, run: SippRun, statuses: list[int]) -> list[TracedMessage]:
        """
        SIPp completed its scenario (exit code 0), it got exactly C{statuses} in that order, and the
        service still runs.  Returns the responses.
        """
        detail = self.detail(run)
        self.assertEqual(run.exitCode, 0, detail)
        responses = run.responses
        self.assertEqual([r.statusCode for r in responses], statuses, detail)
        self.assertTrue(self.service.running, detail)
        return responses

    def assertSilent(self, run: SippRun) -> None:
        """
        SIPp got nothing at all and failed by its timeout, and the service still runs.
        """
        detail = self.detail(run)
        self.assertNotEqual(run.exitCode, 0, detail)
        self.assertFalse(run.received, detail)
        self.assertIn("REGISTER sip:", run.messages, detail)  # it did send
        self.assertTrue(self.service.running, detail)

    def assertChallenge(self, response: TracedMessage, detail: str) -> None:
        """
        A 401 offering digest for our realm with qop=auth: one WWW-Authenticate, MD5, as the shipped
        config says (libre-based phones stop at a first challenge that is not MD5).
        """
        challenges = response.headers("www-authenticate")
        self.assertEqual(len(challenges), 1, detail)
        for challenge, algorithm in zip(challenges, ("MD5",), strict=True):
            self.assertTrue(challenge.startswith("Digest "), detail)
            self.assertRegex(challenge, rf"(^|[ ,])algorithm={re.escape(algorithm)}(,|$)", detail)
            self.assertRegex(challenge, rf'(^|[ ,])realm="{re.escape(DOMAIN)}"(,|$)', detail)
            self.assertRegex(challenge, r'(^|[ ,])qop="auth"(,|$)', detail)
            self.assertRegex(challenge, r'(^|[ ,])nonce="[^"]+"', detail)

    def assertBindings(self, response: TracedMessage, expected: dict[str, int], detail: str) -> None:
        """
        The 200 lists exactly the contacts in C{expected}, each with a lifetime above 0 and at most
        the one asked for (C{expected}'s value): the registrar may count down, never up.
        """
        bindings = bindingsOf(response)
        self.assertEqual(sorted(bindings), sorted(expected), detail)
        for contact, expires in bindings.items():
            self.assertGreater(expires, 0, detail)
            self.assertLessEqual(expires, expected[contact], detail)
            # A second or two may pass between the REGISTER and a later query, never minutes.
            self.assertGreater(expires, expected[contact] - 60, detail)

    def test_registerWithDigest(self) -> None:
        """
        REGISTER gets 401 (one MD5 challenge), then with MD5 credentials 200 listing its binding.
        """
        self.startWith("sipp")
        run = self.sipp("register_auth.xml", DEVICE_A)
        challenge, ok = self.assertExchange(run, [401, 200])
        detail = self.detail(run)
        self.assertChallenge(challenge, detail)
        self.assertBindings(ok, {sippContact(run, "alice"): SIPP_EXPIRES}, detail)
        # The credentials SIPp sent answered the (MD5) challenge.
        authorizations = [m.headers("authorization") for m in run.traced if m.sent]
        self.assertEqual(authorizations[0], [], detail)
        self.assertEqual(len(authorizations[1]), 1, detail)
        self.assertRegex(authorizations[1][0], r"(^|[ ,])algorithm=MD5(,|$)", detail)

    def test_registerOverTCP(self) -> None:
        """
        The same registration over TCP gets 401 then a 200 listing the binding.
        """
        self.startWith("sipp")
        run = self.sipp("register_auth.xml", DEVICE_D, transport="t1")
        challenge, ok = self.assertExchange(run, [401, 200])
        detail = self.detail(run)
        self.assertIn("TCP message received", run.messages, detail)
        self.assertChallenge(challenge, detail)
        self.assertBindings(ok, {sippContact(run, "alice", "TCP"): SIPP_EXPIRES}, detail)

    def test_banAfterFailures(self) -> None:
        """
        After 5 wrong passwords (401 each) the source gets no answer, even with the right one; others do.
        """
        service = self.startWith("sipp")
        bans = tomllib.loads(service.configPath.read_text(encoding="utf-8")).get("bans", {})
        self.assertEqual(
            bans.get("failures"),
            BAN_FAILURES,
            "register_ban.xml guesses exactly 5 times; change it with [bans] failures in etc/sbc.toml",
        )
        guesses = self.sipp("register_ban.xml", DEVICE_B, ("alice", "not-alice-demo"))
        responses = self.assertExchange(guesses, [401] * (1 + BAN_FAILURES))
        for response in responses:
            self.assertChallenge(response, self.detail(guesses))

        # The source is banned: even the right password gets no answer (SIPp times out).
        self.assertSilent(self.sipp("register_auth.xml", DEVICE_B, timeout=SILENCE))
        # The ban is for that source only.
        other = self.sipp("register_auth.xml", DEVICE_C)
        self.assertExchange(other, [401, 200])

    def test_banSurvivesRestart(self) -> None:
        """
        A source banned before a restart on the same state directory still gets no answer after it.
        """
        service = self.startWith("sipp")
        guesses = self.sipp("register_ban.xml", DEVICE_D, ("alice", "not-alice-demo"))
        self.assertExchange(guesses, [401] * (1 + BAN_FAILURES))

        service.restart()
        self.assertSilent(self.sipp("register_auth.xml", DEVICE_D, timeout=SILENCE))
        self.assertExchange(self.sipp("register_auth.xml", DEVICE_A), [401, 200])

    def test_unregister(self) -> None:
        """
        expires=0 for the contact, and Contact: * with Expires: 0, unregister: 200s and a query list nothing.
        """
        self.startWith("sipp")
        run = self.sipp("register_unregister.xml", DEVICE_A)
        responses = self.assertExchange(run, [401, 200, 200, 200, 200, 200])
        detail = self.detail(run)
        contact = sippContact(run, "alice")
        _, registered, removed, again, cleared, query = responses
        self.assertBindings(registered, {contact: SIPP_EXPIRES}, detail)
        self.assertEqual(removed.headers("contact"), [], detail)
        self.assertBindings(again, {contact: SIPP_EXPIRES}, detail)
        self.assertEqual(cleared.headers("contact"), [], detail)
        self.assertEqual(query.headers("contact"), [], detail)

    def test_bindingSurvivesRestart(self) -> None:
        """
        After a restart on the same state directory, a query from another device lists the earlier binding.
        """
        service = self.startWith("sipp")
        registration = self.sipp("register_auth.xml", DEVICE_A)
        self.assertExchange(registration, [401, 200])
        contact = sippContact(registration, "alice")

        service.restart()
        query = self.sipp("register_query.xml", DEVICE_C)
        _, ok = self.assertExchange(query, [401, 200])
        self.assertBindings(ok, {contact: SIPP_EXPIRES}, self.detail(query))

    def test_sipsak(self) -> None:
        """
        sipsak registers bob via the SBC as outbound proxy (401, then 200); a SIPp query lists its binding.
        """
        self.startWith("sipsak", "sipp")
        registration = sipsakRegister(self, self.service.address("udp"), BOB, DEVICE_B)
        detail = self.detail(registration)
        self.assertEqual(registration.exitCode, 0, detail)
        self.assertEqual(registration.statusCodes, [401, 200], detail)
        self.assertIn(f'username="{BOB[0]}"', registration.output, detail)

        host, port = registration.local
        query = self.sipp("register_query.xml", DEVICE_C, BOB)
        _, ok = self.assertExchange(query, [401, 200])
        self.assertBindings(ok, {f"sip:{BOB[0]}@{host}:{port}": SIPSAK_EXPIRES}, self.detail(query))

    def test_intervalTooBrief(self) -> None:
        """
        An authenticated REGISTER for 30 s gets 423 with Min-Expires: 60.
        """
        self.startWith("sipp")
        run = self.sipp("register_brief.xml", DEVICE_A)
        _, brief = self.assertExchange(run, [401, 423])
        self.assertEqual(brief.headers("min-expires"), [str(MIN_EXPIRES)], self.detail(run))

    def test_trunkForbidden(self) -> None:
        """
        A REGISTER from the trunk's address gets 403 straight away, never a challenge.
        """
        self.startWith("sipp")
        run = self.sipp("register_forbidden.xml", TRUNK)
        self.assertExchange(run, [403])

    def test_stranger(self) -> None:
        """
        A REGISTER from outside every whitelist and device network gets no answer; SIPp times out.
        """
        self.startWith("sipp")
        self.assertSilent(self.sipp("register_auth.xml", STRANGER, timeout=SILENCE))
