"""Tests for sbc.registrant (client, auth, messages, timing): one registration's REGISTERs,
refreshes, challenges, 423, Retry-After, each failure class and its backoff, silence, and the
unregister on stop, all on a Clock."""

from __future__ import annotations

import random
from dataclasses import replace

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.names import dns
from zope.interface.verify import verifyObject

import sbc.registrant
from sbc.config.registrants import MAX_EXPIRES
from sbc.config.sip import Transport
from sbc.interfaces import IClientTransactionUser
from sbc.locate import Hop, ServerLocator
from sbc.registrant.client import GUARD_SLACK, RegistrationClient
from sbc.registrant.contact import contactUser
from sbc.registrant.service import RegistrantService
from sbc.registrant.status import RegistrantState, RegistrantStatus
from sbc.registrant.timing import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    PERMANENT_BACKOFF,
    REFRESH_MARGIN,
    refreshDelay,
)
from sbc.sip import Request, parseMessage
from sbc.sip.digest import formatChallenge, ha1, parseCredentials, verify
from tests.fakes import FakeResolver, RecordingTransport
from tests.registrant import (
    PASSWORD,
    PEER_B,
    PEER_B_CONTACT,
    PROXY,
    REGISTRAR,
    SECRET,
    TIMER_F,
    RegistrantTestCase,
    answer,
)

NOW = 1_000_000.0
GUARD = TIMER_F + GUARD_SLACK


def challenge(nonce: str, *, stale: bool = False, algorithm: str = "MD5") -> str:
    """A registrar's digest challenge."""
    return formatChallenge("peer-b.example", nonce, algorithm, stale=stale, opaque="op1")


class RegisterTests(RegistrantTestCase):
    """The REGISTER as sent, and what a 2xx does."""

    def test_register(self) -> None:
        """Start sends one REGISTER to the registrar: AOR in From and To, our Contact, Expires."""
        client = self.client()
        client.start()
        self.assertEqual(client.state, RegistrantState.REGISTERING)
        request = self.last()
        self.assertEqual(str(request.uri), "sip:127.0.0.5:5060")
        self.assertEqual(self.udp.sent[-1][1], REGISTRAR)
        self.assertEqual(str(request.fromHeader().uri), "sip:sbc-demo@peer-b.example")
        self.assertIsNotNone(request.fromHeader().tag)
        self.assertEqual(str(request.toHeader().uri), "sip:sbc-demo@peer-b.example")
        self.assertEqual(request.headers.get("contact"), f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>")
        self.assertEqual(request.headers.get("expires"), "600")
        self.assertEqual(str(request.cseq()), "1 REGISTER")
        self.assertNotIn("route", request.headers)
        self.assertNotIn("authorization", request.headers)

    def test_outboundProxy(self) -> None:
        """With an outbound proxy the REGISTER goes there, with the proxy as a loose Route."""
        self.client(replace(PEER_B, outboundProxy="sip:127.0.0.6:5060")).start()
        self.assertEqual(self.udp.sent[-1][1], PROXY)
        self.assertEqual(self.last().headers.get("route"), "<sip:127.0.0.6:5060;lr>")
        self.assertEqual(str(self.last().uri), "sip:127.0.0.5:5060")

    def test_tcp(self) -> None:
        """Over TCP: the hop asked for is TCP, Via says TCP, the Contact names the transport."""
        tcp = RecordingTransport("TCP", reliable=True, localAddress=("127.0.0.1", 5062))
        hops: list[Hop] = []

        def transportFor(hop: Hop) -> RecordingTransport:
            hops.append(hop)
            return tcp

        self.client(replace(PEER_B, transport=Transport.TCP), transportFor=transportFor).start()
        request = parseMessage(tcp.sent[-1][0])
        assert isinstance(request, Request)
        self.assertEqual([(h.host, h.port, h.transport) for h in hops], [("127.0.0.5", 5060, Transport.TCP)])
        self.assertTrue(str(request.topVia()).startswith("SIP/2.0/TCP 127.0.0.1:5062;"))
        self.assertEqual(
            request.headers.get("contact"), f"<sip:{PEER_B_CONTACT}@127.0.0.1:5062;transport=tcp>"
        )

    def test_registrarByName(self) -> None:
        """A registrar given by DNS name is found by RFC 3263 (here an A record)."""
        resolver = FakeResolver()
        resolver.add(dns.A, "registrar.peer-b.example", dns.Record_A("127.0.0.5"))
        self.locator = ServerLocator(resolver, self.clock)
        self.client(replace(PEER_B, registrar="sip:registrar.peer-b.example")).start()
        self.assertEqual(self.udp.sent[-1][1], REGISTRAR)
        self.assertEqual(str(self.last().uri), "sip:registrar.peer-b.example")

    def test_registered(self) -> None:
        """A 200 registers for the time its Contact's expires grants; the status says so."""
        client = self.client()
        client.start()
        self.reply(200, ("Contact", f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>;expires=300"))
        status = client.status()
        self.assertEqual(status.state, RegistrantState.REGISTERED)
        self.assertEqual((status.lastCode, status.lastReason), (200, "OK"))
        self.assertEqual(status.registeredUntil, NOW + 300)
        self.assertEqual(status.destination, REGISTRAR)
        self.assertEqual(status.failures, 0)
        self.assertTrue(status.isUp(NOW))
        self.assertIn("registered at sip:127.0.0.5:5060", self.logText())

    def test_grantFromExpiresHeader(self) -> None:
        """Without our Contact in the 200, its Expires header says how long."""
        client = self.client()
        client.start()
        self.reply(200, ("Contact", "<sip:other@192.0.2.1>;expires=999"), ("Expires", "120"))
        self.assertEqual(client.registeredUntil, NOW + 120)

    def test_grantDefaultsToAsked(self) -> None:
        """Without either, the time we asked for."""
        client = self.client()
        client.start()
        self.reply(200)
        self.assertEqual(client.registeredUntil, NOW + 600)

    def test_refreshWithinJitterBounds(self) -> None:
        """The refresh comes at 70-85% of the grant (jittered), never later than the margin."""
        delays = set()
        for seed in range(20):
            self.udp.sent.clear()
            client = self.client(seed=seed)
            client.start()
            self.reply(200, ("Expires", "600"))
            assert client.nextAttempt is not None
            delay = client.nextAttempt - self.clock.seconds()
            self.assertTrue(0.70 * 600 <= delay <= 0.85 * 600, delay)
            delays.add(round(delay, 3))
            client.stop()
        self.assertGreater(len(delays), 10)

    def test_refreshSent(self) -> None:
        """The refresh goes at nextAttempt, not before: the same Call-ID, the CSeq one higher."""
        client = self.client()
        client.start()
        first = self.last()
        self.reply(200, ("Expires", "600"))
        assert client.nextAttempt is not None
        self.clock.advance(client.nextAttempt - self.clock.seconds() - 0.5)
        self.assertEqual(len(self.requests()), 1)
        self.clock.advance(0.5)
        refresh = self.last()
        self.assertEqual(len(self.requests()), 2)
        self.assertEqual(refresh.callId, first.callId)
        self.assertEqual(refresh.fromHeader().tag, first.fromHeader().tag)
        self.assertEqual(refresh.cseq().number, 2)
        self.assertNotEqual(refresh.topVia().branch, first.topVia().branch)
        self.assertEqual(client.state, RegistrantState.REGISTERING)
        self.assertTrue(client.status().isUp(self.clock.seconds()))  # still bound meanwhile

    def test_refreshNeverLate(self) -> None:
        """However the draw goes, a refresh comes before the grant lapses, by the margin if it can."""
        for seed in range(200):
            chance = random.Random(seed)
            for granted in (30, 60, 600, 3600):
                self.assertLessEqual(refreshDelay(granted, chance), granted - REFRESH_MARGIN)
            self.assertLess(refreshDelay(4, chance), 4)

    def test_zeroGrantIsTransient(self) -> None:
        """A 200 that keeps our Contact for 0 seconds is no registration: retried soon."""
        client = self.client()
        client.start()
        self.reply(200, ("Contact", f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>;expires=0"))
        self.assertEqual(client.state, RegistrantState.RETRYING)


class ChallengeTests(RegistrantTestCase):
    """401 and 407: answered once per challenge, never in a loop."""

    def credentials(self, request: Request, header: str = "authorization") -> str:
        """The credentials header of ``request``, checked against our password."""
        value = request.headers.get(header)
        assert value is not None
        credentials = parseCredentials(value)
        self.assertEqual(credentials.username, "sbc-auth")
        self.assertEqual(credentials.uri, "sip:127.0.0.5:5060")
        self.assertEqual(credentials.opaque, "op1")
        secret = ha1(credentials.algorithm, "sbc-auth", credentials.realm, PASSWORD)
        self.assertTrue(verify(credentials, secret, "REGISTER"))
        return value

    def test_401Answered(self) -> None:
        """A 401 is answered at once with Authorization (qop auth, nc 1); the 200 registers."""
        client = self.client()
        client.start()
        first = self.last()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        second = self.last()
        self.assertEqual(second.callId, first.callId)
        self.assertEqual(second.cseq().number, 2)
        credentials = parseCredentials(self.credentials(second))
        self.assertEqual((credentials.nonce, credentials.qop, credentials.nc), ("n1", "auth", "00000001"))
        self.reply(200)
        self.assertEqual(client.state, RegistrantState.REGISTERED)

    def test_407AnsweredWithSHA256(self) -> None:
        """A proxy's 407 is answered with Proxy-Authorization, in the algorithm it asked for."""
        client = self.client()
        client.start()
        self.reply(407, ("Proxy-Authenticate", challenge("p1", algorithm="SHA-256")))
        credentials = parseCredentials(self.credentials(self.last(), "proxy-authorization"))
        self.assertEqual(credentials.algorithm, "SHA-256")
        self.assertNotIn("authorization", self.last().headers)
        self.reply(200)
        self.assertEqual(client.state, RegistrantState.REGISTERED)

    def test_firstSupportedAlgorithm(self) -> None:
        """Of several challenges the first one we can compute is answered."""
        client = self.client()
        client.start()
        self.reply(
            401,
            ("WWW-Authenticate", challenge("x", algorithm="SHA-512-256")),
            ("WWW-Authenticate", challenge("n2", algorithm="SHA-256")),
        )
        credentials = parseCredentials(self.credentials(self.last()))
        self.assertEqual((credentials.nonce, credentials.algorithm), ("n2", "SHA-256"))

    def test_proxyThenRegistrar(self) -> None:
        """A 407 then a 401: the third REGISTER carries both answers."""
        client = self.client()
        client.start()
        self.reply(407, ("Proxy-Authenticate", challenge("p1")))
        self.reply(401, ("WWW-Authenticate", challenge("w1")))
        self.credentials(self.last(), "proxy-authorization")
        self.credentials(self.last(), "authorization")
        self.reply(200)
        self.assertEqual(client.state, RegistrantState.REGISTERED)

    def test_sameNonceTwiceFails(self) -> None:
        """A second 401 with the nonce we answered is a refusal: flagged, retried in about an hour."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.assertEqual(len(self.requests()), 2)
        status = client.status()
        self.assertEqual(status.state, RegistrantState.FAILED)
        self.assertEqual(status.lastCode, 401)
        self.assertIn("refused", status.lastReason or "")
        assert status.nextAttempt is not None
        self.assertTrue(0.9 * PERMANENT_BACKOFF <= status.nextAttempt - NOW <= 1.1 * PERMANENT_BACKOFF)
        self.assertFalse(status.isUp(NOW))

    def test_newNonceNotStaleFails(self) -> None:
        """Challenged again (a new nonce, not stale) after answering: refused, not a loop."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.reply(401, ("WWW-Authenticate", challenge("n2")))
        self.assertEqual(len(self.requests()), 2)
        self.assertEqual(client.state, RegistrantState.FAILED)

    def test_staleRetried(self) -> None:
        """stale=true with a new nonce is answered again (the password was right)."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.reply(401, ("WWW-Authenticate", challenge("n2", stale=True)))
        self.assertEqual(parseCredentials(self.credentials(self.last())).nonce, "n2")
        self.reply(200)
        self.assertEqual(client.state, RegistrantState.REGISTERED)

    def test_staleForeverBounded(self) -> None:
        """A registrar that says stale=true for ever gets a bounded number of REGISTERs."""
        client = self.client()
        client.start()
        for n in range(20):
            if client.state is not RegistrantState.REGISTERING:
                break
            self.reply(401, ("WWW-Authenticate", challenge(f"n{n}", stale=True)))
        self.assertEqual(client.state, RegistrantState.FAILED)
        self.assertLessEqual(len(self.requests()), 7)

    def test_unanswerableChallenge(self) -> None:
        """A challenge in an algorithm we do not compute is a refusal."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1", algorithm="SHA-512-256")))
        self.assertEqual(client.state, RegistrantState.FAILED)
        self.assertIn("no Digest challenge", client.lastReason or "")

    def test_credentialsReusedOnRefresh(self) -> None:
        """The refresh carries the credentials again, the nonce count raised."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.reply(200, ("Expires", "600"))
        self.clock.advance(600)
        credentials = parseCredentials(self.credentials(self.last()))
        self.assertEqual((credentials.nonce, credentials.nc), ("n1", "00000002"))

    def test_refreshChallengedAgain(self) -> None:
        """A refresh whose remembered nonce has expired is challenged and answered once."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.reply(200, ("Expires", "600"))
        self.clock.advance(600)
        self.reply(401, ("WWW-Authenticate", challenge("n2")))
        self.assertEqual(parseCredentials(self.credentials(self.last())).nonce, "n2")
        self.reply(200, ("Expires", "600"))
        self.assertEqual(client.state, RegistrantState.REGISTERED)

    def test_secretsNotLogged(self) -> None:
        """Neither the password nor the credentials reach the log or a repr."""
        client = self.client()
        client.start()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        value = self.last().headers.get("authorization") or ""
        response = parseCredentials(value).response
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        text = self.logText()
        self.assertIn("peer-b", text)
        for secret in (PASSWORD, response):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret, repr(client) + repr(client.digest) + repr(client.registrant))
            self.assertNotIn(secret, repr(client.status()))


class MinExpiresTests(RegistrantTestCase):
    """423 Interval Too Brief."""

    def test_minExpiresTaken(self) -> None:
        """A 423's Min-Expires is asked for at once, and kept for the refreshes."""
        client = self.client()
        client.start()
        self.reply(423, ("Min-Expires", "1800"))
        self.assertEqual(self.last().headers.get("expires"), "1800")
        self.assertEqual(self.last().cseq().number, 2)
        self.reply(200)
        self.assertEqual(client.registeredUntil, NOW + 1800)
        self.clock.advance(1800)
        self.assertEqual(self.last().headers.get("expires"), "1800")

    def test_minExpiresUnusable(self) -> None:
        """A 423 without a Min-Expires above what we asked is a refusal, not a loop."""
        client = self.client()
        client.start()
        self.reply(423, ("Min-Expires", "60"))
        self.assertEqual(len(self.requests()), 1)
        self.assertEqual((client.state, client.lastCode), (RegistrantState.FAILED, 423))


class FailureTests(RegistrantTestCase):
    """Each failure class and its backoff."""

    def delay(self, client: RegistrationClient) -> float:
        """Seconds until the client's next attempt."""
        assert client.nextAttempt is not None
        return client.nextAttempt - self.clock.seconds()

    def test_timeoutBacksOffExponentially(self) -> None:
        """No answer until Timer F: retrying, each wait jittered within a doubling bound up to the cap."""
        client = self.client()
        client.start()
        ceiling = BACKOFF_BASE
        for failures in range(1, 10):
            self.clock.advance(TIMER_F)
            status = client.status()
            self.assertEqual(status.state, RegistrantState.RETRYING)
            self.assertEqual((status.lastCode, status.failures), (408, failures))
            self.assertIn("no answer", status.lastReason or "")
            delay = self.delay(client)
            self.assertTrue(ceiling / 2 <= delay <= ceiling, (failures, delay))
            ceiling = min(ceiling * 2, BACKOFF_CAP)
            sent = len(self.requests())
            self.clock.advance(delay)
            self.assertEqual(len(self.requests()), sent + 1)
        self.assertEqual(ceiling, BACKOFF_CAP)

    def test_sameFailureLoggedOnce(self) -> None:
        """A registrar that stays silent is logged once, not at every retry; a new outcome is logged."""
        client = self.client()
        client.start()
        for _ in range(4):
            self.clock.advance(TIMER_F)
            self.clock.advance(self.delay(client))
        self.reply(503)
        warnings = [e for e in self.events.events if e.get("kind") == "failed"]
        self.assertEqual([e["code"] for e in warnings], [408, 503])

    def test_408And5xxTransient(self) -> None:
        """408 and 5xx are transient: retrying after the backoff, the reason kept."""
        for status in (408, 500, 503, 504):
            client = self.client()
            client.start()
            self.reply(status)
            self.assertEqual((client.state, client.lastCode), (RegistrantState.RETRYING, status))
            self.assertTrue(BACKOFF_BASE / 2 <= self.delay(client) <= BACKOFF_BASE)
            client.stop()

    def test_successResetsBackoff(self) -> None:
        """After a success the failures count starts again."""
        client = self.client()
        client.start()
        self.reply(503)
        self.reply(503)  # a retransmitted answer changes nothing
        self.clock.advance(self.delay(client))
        self.reply(200)
        self.assertEqual(client.failures, 0)

    def test_permanentFailures(self) -> None:
        """403, 404 and other 4xx are refusals: flagged, retried after about an hour."""
        for status in (403, 404, 400, 482):
            client = self.client()
            client.start()
            self.reply(status)
            self.assertEqual((client.state, client.lastCode), (RegistrantState.FAILED, status))
            self.assertTrue(0.9 * PERMANENT_BACKOFF <= self.delay(client) <= 1.1 * PERMANENT_BACKOFF)
            client.stop()
        self.assertIn("refused at sip:127.0.0.5:5060: 482", self.logText())

    def test_retryAfterOn503(self) -> None:
        """503 with Retry-After: the next try comes exactly then, not before."""
        client = self.client()
        client.start()
        self.reply(503, ("Retry-After", "120 (maintenance);duration=60"))
        self.assertEqual(self.delay(client), 120)
        self.clock.advance(119)
        self.assertEqual(len(self.requests()), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.requests()), 2)

    def test_retryAfterOn4xx(self) -> None:
        """A refusal's Retry-After shorter than its long wait does not shorten it (a refused
        password must not be tried every second); a longer one lengthens it."""
        client = self.client()
        client.start()
        self.reply(403, ("Retry-After", "1"))
        self.assertEqual(client.state, RegistrantState.FAILED)
        self.assertTrue(0.9 * PERMANENT_BACKOFF <= self.delay(client) <= 1.1 * PERMANENT_BACKOFF)
        self.clock.advance(self.delay(client))
        self.reply(404, ("Retry-After", "7200"))
        self.assertEqual((client.state, self.delay(client)), (RegistrantState.FAILED, 7200))

    def test_retryAfterZeroKeepsBackoff(self) -> None:
        """503 with Retry-After: 0 waits the transient backoff, not a second."""
        client = self.client()
        client.start()
        self.reply(503, ("Retry-After", "0"))
        self.assertTrue(BACKOFF_BASE / 2 <= self.delay(client) <= BACKOFF_BASE)

    def test_noAddressIsTransient(self) -> None:
        """A registrar name that does not resolve is a transient failure."""
        self.locator = ServerLocator(FakeResolver(), self.clock)
        client = self.client(replace(PEER_B, registrar="sip:nowhere.example"))
        client.start()
        self.assertEqual(client.state, RegistrantState.RETRYING)
        self.assertIn("not found", client.lastReason or "")

    def test_noTransportIsTransient(self) -> None:
        """No UDP socket to send from (not bound yet): a transient failure, not a crash."""
        client = RegistrationClient(
            PEER_B, self.clock, self.layer, self.locator.locate, lambda hop: None, random.Random(1)
        )
        client.start()
        self.assertEqual(client.state, RegistrantState.RETRYING)
        self.assertEqual(self.udp.sent, [])


class SilenceTests(RegistrantTestCase):
    """A registration never stays "registering" when nothing answers."""

    def test_dnsNeverAnswers(self) -> None:
        """A lookup that never answers: the guard ends the attempt; its late answer is ignored."""
        pending: Deferred[list[Hop]] = Deferred()
        client = RegistrationClient(
            replace(PEER_B, registrar="sip:slow.example"),
            self.clock,
            self.layer,
            lambda host, port, transport: pending,
            lambda hop: self.udp,
            random.Random(1),
        )
        client.start()
        self.clock.advance(GUARD - 0.1)
        self.assertEqual(client.state, RegistrantState.REGISTERING)
        self.clock.advance(0.1)
        self.assertEqual(client.state, RegistrantState.RETRYING)
        pending.callback([Hop("127.0.0.5", 5060, PEER_B.transport, "slow.example")])
        self.assertEqual(self.udp.sent, [])

    def test_provisionalThenSilence(self) -> None:
        """A 100 Trying and then nothing: the attempt still ends (Timer F)."""
        client = self.client()
        client.start()
        self.reply(100)
        self.clock.advance(TIMER_F)
        self.assertEqual(client.state, RegistrantState.RETRYING)

    def test_lateAnswerIgnored(self) -> None:
        """An answer to an abandoned REGISTER (after a reload restarted the attempt) changes nothing."""
        client = self.client()
        client.start()
        old = self.last()
        client.update(replace(PEER_B, expires=900))
        self.reply(403, request=old)
        self.assertEqual(client.state, RegistrantState.REGISTERING)
        self.reply(200)
        self.assertEqual(client.state, RegistrantState.REGISTERED)


class StopTests(RegistrantTestCase):
    """Stopping removes our Contact from the registrar."""

    def registered(self) -> RegistrationClient:
        """A client the registrar has accepted."""
        client = self.client()
        client.start()
        self.reply(200, ("Expires", "600"))
        return client

    def test_unregister(self) -> None:
        """Stop sends Expires: 0 for our Contact in the same Call-ID; the Deferred fires on the answer."""
        client = self.registered()
        first = self.last()
        done = client.stop()
        request = self.last()
        self.assertEqual(request.headers.get("expires"), "0")
        self.assertEqual(request.headers.get("contact"), f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>")
        self.assertEqual((request.callId, request.cseq().number), (first.callId, 2))
        self.assertEqual(client.state, RegistrantState.UNREGISTERING)
        self.assertNoResult(done)
        self.reply(200)
        self.successResultOf(done)
        self.assertEqual(client.state, RegistrantState.STOPPED)
        self.assertIsNone(client.registeredUntil)
        self.assertIsNone(client.nextAttempt)
        self.clock.advance(7200)
        self.assertEqual(len(self.requests()), 2)  # no refresh after the stop

    def test_unregisterChallenged(self) -> None:
        """The unregister's challenge is answered once."""
        client = self.registered()
        done = client.stop()
        self.reply(401, ("WWW-Authenticate", challenge("u1")))
        self.assertEqual(self.last().headers.get("expires"), "0")
        self.assertIsNotNone(self.last().headers.get("authorization"))
        self.assertNoResult(done)
        self.reply(200)
        self.successResultOf(done)

    def test_unregisterUnanswered(self) -> None:
        """An unregister nobody answers still ends, at Timer F."""
        client = self.registered()
        done = client.stop()
        self.clock.advance(TIMER_F)
        self.successResultOf(done)
        self.assertEqual(client.state, RegistrantState.STOPPED)

    def test_stopWhileRegistering(self) -> None:
        """A REGISTER in flight may yet bind us: stop waits for its answer, then unregisters
        (never while its retransmissions could still re-create the binding)."""
        client = self.client()
        client.start()
        register = self.last()
        done = client.stop()
        self.assertEqual(len(self.requests()), 1)
        self.assertNoResult(done)
        self.reply(200, request=register)
        unregister = self.last()
        self.assertEqual(unregister.headers.get("expires"), "0")
        self.assertGreater(unregister.cseq().number, register.cseq().number)
        self.reply(200)
        self.successResultOf(done)
        self.assertEqual(client.state, RegistrantState.STOPPED)

    def test_stopWhileRegisteringUnanswered(self) -> None:
        """A REGISTER in flight that never gets an answer: the unregister follows its end (it
        may have arrived), and no retransmission of it comes after the unregister."""
        client = self.client()
        client.start()
        done = client.stop()
        self.clock.advance(TIMER_F)
        unregister = self.last()
        self.assertEqual((len(self.requests()), unregister.headers.get("expires")), (2, "0"))
        index = max(i for i, (data, _) in enumerate(self.udp.sent) if b"Expires: 0" in data)
        self.assertFalse([d for d, _ in self.udp.sent[index:] if b"Expires: 600" in d])
        self.reply(200)
        self.successResultOf(done)

    def test_stopWhileChallenged(self) -> None:
        """The REGISTER stop waited for is challenged: not bound, nothing more is sent."""
        client = self.client()
        client.start()
        done = client.stop()
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.successResultOf(done)
        self.assertEqual((len(self.requests()), client.state), (1, RegistrantState.STOPPED))

    def test_stopUnbound(self) -> None:
        """Never bound (refused): stop sends nothing and fires at once."""
        client = self.client()
        client.start()
        self.reply(403)
        self.successResultOf(client.stop())
        self.assertEqual(len(self.requests()), 1)
        self.assertEqual(client.state, RegistrantState.STOPPED)

    def test_stopTwice(self) -> None:
        """A second stop waits for the same unregister; after it, stop fires at once."""
        client = self.registered()
        first, second = client.stop(), client.stop()
        self.assertEqual(len(self.requests()), 2)
        self.reply(200)
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(client.stop())


class ExportTests(RegistrantTestCase):
    """What the package offers the layers above."""

    def test_exports(self) -> None:
        """sbc.registrant exports the client, the service and the status values, as defined."""
        self.assertEqual(
            sorted(sbc.registrant.__all__),
            ["RegistrantService", "RegistrantState", "RegistrantStatus", "RegistrationClient"],
        )
        self.assertIs(sbc.registrant.RegistrationClient, RegistrationClient)
        self.assertIs(sbc.registrant.RegistrantService, RegistrantService)
        self.assertIs(sbc.registrant.RegistrantState, RegistrantState)
        self.assertIs(sbc.registrant.RegistrantStatus, RegistrantStatus)

    def test_clientTransactionUser(self) -> None:
        """The client is what the transaction layer reports to."""
        self.assertTrue(verifyObject(IClientTransactionUser, self.client()))


class ContactTests(RegistrantTestCase):
    """The Contact we register: its scheme and its user."""

    def test_sipsRegistrar(self) -> None:
        """A sips: registrar gets a sips: Contact (RFC 3261 section 8.1.1.8), without transport=tls."""
        registrant = replace(PEER_B, registrar="sips:127.0.0.5:5061", transport=Transport.TLS)
        self.assertEqual(self.tlsContact(registrant), f"<sips:{PEER_B_CONTACT}@127.0.0.1:5061>")

    def test_sipsProxy(self) -> None:
        """A sips: outbound proxy asks for a sips: Contact too."""
        registrant = replace(PEER_B, outboundProxy="sips:127.0.0.6:5061", transport=Transport.TLS)
        self.assertEqual(self.tlsContact(registrant), f"<sips:{PEER_B_CONTACT}@127.0.0.1:5061>")

    def test_sipOverTlsNamesTransport(self) -> None:
        """A sip: registrar over TLS keeps sip: with transport=tls."""
        self.assertEqual(
            self.tlsContact(replace(PEER_B, transport=Transport.TLS)),
            f"<sip:{PEER_B_CONTACT}@127.0.0.1:5061;transport=tls>",
        )

    def test_contactUserStableAndSecret(self) -> None:
        """The Contact user is NAME-<16 hex>: the same for the same secret (across restarts),
        another for another secret, never the bare name."""
        user = contactUser(SECRET, "peer-b")
        self.assertRegex(user, r"^peer-b-[0-9a-f]{16}$")
        self.assertEqual(user, contactUser(bytes(SECRET), "peer-b"))
        self.assertNotEqual(user, contactUser(b"x" * 32, "peer-b"))
        self.assertNotEqual(user, contactUser(SECRET, "peer-c")[: len(user)])
        self.assertEqual(self.client().contactUser, user)


class BoundsTests(RegistrantTestCase):
    """What a registrar's numbers may do to us: bounded."""

    def test_hugeContactExpires(self) -> None:
        """A Contact expires of 5000 digits neither raises nor counts: the Expires header (or
        what we asked) holds."""
        client = self.client()
        client.start()
        self.reply(200, ("Contact", f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>;expires={'9' * 5000}"))
        self.assertEqual((client.state, client.registeredUntil), (RegistrantState.REGISTERED, NOW + 600))

    def test_grantNeverLongerThanAsked(self) -> None:
        """A grant longer than we asked (20 digits, or just more) is cut to what we asked."""
        client = self.client()
        client.start()
        self.reply(200, ("Contact", f"<sip:{PEER_B_CONTACT}@127.0.0.1:5060>;expires=9000"))
        self.assertEqual(client.registeredUntil, NOW + 600)
        self.clock.advance(600)
        self.reply(200, ("Expires", "99999999999999999999"))
        self.assertEqual(client.registeredUntil, NOW + 600 + 600)

    def test_minExpiresCapped(self) -> None:
        """A 423's Min-Expires above the longest expires config allows is taken as that."""
        client = self.client()
        client.start()
        self.reply(423, ("Min-Expires", "9999999999"))
        self.assertEqual(self.last().headers.get("expires"), str(MAX_EXPIRES))

    def test_reasonControlCharacters(self) -> None:
        """A reason phrase with ESC or BEL is stored (and logged) with them replaced."""
        client = self.client()
        client.start()
        response = answer(self.last(), 403)
        response.reason = "Forbidden \x1b[2J\x07now"
        self.layer.receiveResponse(response, self.udp, REGISTRAR)
        self.assertEqual(client.lastReason, "Forbidden ?[2J?now")
        self.assertNotIn("\x1b", self.logText())


class HopTests(RegistrantTestCase):
    """Moving on to the registrar's next address, and a send that finds no transport."""

    def hops(self, host: str, port: int | None, transport: Transport | None) -> list[Hop]:
        """Two addresses for the registrar."""
        return [Hop(h, 5060, Transport.UDP, "registrar") for h in ("127.0.0.5", "127.0.0.8")]

    def test_503MovesToNextHop(self) -> None:
        """A 503 sends the next attempt to the registrar's next address, as a timeout does."""
        client = RegistrationClient(
            PEER_B, self.clock, self.layer, self.hops, lambda hop: self.udp, random.Random(1), secret=SECRET
        )
        client.start()
        self.assertEqual(self.udp.sent[-1][1], ("127.0.0.5", 5060))
        self.reply(503)
        self.clock.advance(self.delay(client))
        self.assertEqual(self.udp.sent[-1][1], ("127.0.0.8", 5060))

    def delay(self, client: RegistrationClient) -> float:
        """Seconds until the client's next attempt."""
        assert client.nextAttempt is not None
        return client.nextAttempt - self.clock.seconds()

    def test_resendWithoutTransportIsTransient(self) -> None:
        """A challenge whose answer finds no transport is a transient failure, not a refusal."""
        transports: list[RecordingTransport | None] = [self.udp]
        client = RegistrationClient(
            PEER_B, self.clock, self.layer, self.locator.locate, lambda hop: transports[-1], random.Random(1)
        )
        client.start()
        transports.append(None)
        self.reply(401, ("WWW-Authenticate", challenge("n1")))
        self.assertEqual(client.state, RegistrantState.RETRYING)
        self.assertLessEqual(self.delay(client), BACKOFF_BASE)

    def test_stoppedIsNotUp(self) -> None:
        """A stop whose unregister got no answer leaves the registration not up."""
        client = self.client()
        client.start()
        self.reply(200)
        done = client.stop()
        self.clock.advance(TIMER_F + GUARD_SLACK)
        self.successResultOf(done)
        self.assertEqual(client.state, RegistrantState.STOPPED)
        self.assertIsNone(client.registeredUntil)
        self.assertFalse(client.status().isUp(self.clock.seconds()))


class KeptStream(RecordingTransport):
    """A TCP connection of ours that counts its keepalives."""

    keepaliveInterval = 100.0

    def __init__(self) -> None:
        super().__init__("TCP", reliable=True, localAddress=("127.0.0.1", 5062))
        self.keepalives: list[float] = []
        self.clock: Clock | None = None

    def keepalive(self) -> None:
        """Record when the keepalive went."""
        assert self.clock is not None
        self.keepalives.append(self.clock.seconds())


class KeepaliveTests(RegistrantTestCase):
    """A TCP or TLS registration keeps its connection open between refreshes."""

    def test_keepalivesWhileRegistered(self) -> None:
        """Registered over TCP: a keepalive every 80-100% of the stream's interval, until stopped."""
        stream = KeptStream()
        stream.clock = self.clock
        registrant = replace(PEER_B, transport=Transport.TCP)
        client = RegistrationClient(
            registrant, self.clock, self.layer, self.locator.locate, lambda hop: stream, random.Random(1)
        )
        client.start()
        request = parseMessage(stream.sent[-1][0])
        assert isinstance(request, Request)
        self.layer.receiveResponse(answer(request, 200), stream, REGISTRAR)
        self.clock.pump([0.5] * 600)
        self.assertGreaterEqual(len(stream.keepalives), 3)
        gaps = [b - a for a, b in zip([NOW, *stream.keepalives], stream.keepalives, strict=False)]
        self.assertTrue(all(80 <= gap <= 100.5 for gap in gaps), gaps)
        client.stop()
        self.clock.advance(1000)
        count = len(stream.keepalives)
        self.clock.advance(1000)
        self.assertEqual(len(stream.keepalives), count)

    def test_noKeepaliveOverUDP(self) -> None:
        """Over UDP nothing extra is sent between refreshes."""
        client = self.client()
        client.start()
        self.reply(200)
        self.clock.advance(300)
        self.assertEqual(len(self.udp.sent), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), client.nextAttempt)
