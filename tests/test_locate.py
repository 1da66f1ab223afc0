"""Tests for sbc.locate: RFC 3263 server location (NAPTR, SRV, A/AAAA) with a TTL cache."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.names.error import DNSQueryTimeoutError, DNSServerError
from twisted.trial.unittest import SynchronousTestCase

from sbc.config.sip import Transport
from sbc.locate import NEGATIVE_TTL, STALE_LIMIT, Hop, LocateError, ServerLocator
from tests.fakes import FakeResolver, LogRecorder


def naptr(order: int, preference: int, service: bytes, replacement: str) -> dns.Record_NAPTR:
    """A NAPTR record with the "s" flag, as RFC 3263 uses them."""
    return dns.Record_NAPTR(order, preference, b"s", service, b"", replacement.encode())


class LocateTestCase(SynchronousTestCase):
    """A locator on a fake resolver and a Clock."""

    def setUp(self) -> None:
        self.resolver = FakeResolver()
        self.clock = Clock()
        self.locator = ServerLocator(self.resolver, self.clock, random.Random(7))

    def hops(self, host: str, **kwargs: Any) -> list[Hop]:
        """The hops, whether they came at once or through an already fired Deferred."""
        result = self.locator.locate(host, **kwargs)
        if isinstance(result, defer.Deferred):
            return self.successResultOf(result)
        return result


class LiteralTests(LocateTestCase):
    """Addresses need no DNS."""

    def test_address(self) -> None:
        """An IP address is one hop on the transport's default port, with no query at all."""
        self.assertEqual(self.hops("192.0.2.1"), [Hop("192.0.2.1", 5060, Transport.UDP, "192.0.2.1")])
        self.assertEqual(
            self.hops("[2001:db8::1]", transport=Transport.TLS),
            [Hop("2001:db8::1", 5061, Transport.TLS, "[2001:db8::1]")],
        )
        self.assertEqual(self.resolver.queries, [])

    def test_explicitPort(self) -> None:
        """A name with a port is looked up by A/AAAA only (RFC 3263 section 4.2)."""
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("192.0.2.5"))
        self.resolver.add(dns.AAAA, "gw.peer.test", dns.Record_AAAA("2001:db8::5"))
        self.assertEqual(
            self.hops("gw.peer.test", port=5080),
            [
                Hop("192.0.2.5", 5080, Transport.UDP, "gw.peer.test"),
                Hop("2001:db8::5", 5080, Transport.UDP, "gw.peer.test"),
            ],
        )
        self.assertEqual({kind for kind, _ in self.resolver.queries}, {dns.A, dns.AAAA})


class NaptrTests(LocateTestCase):
    """NAPTR picks the transport and the SRV domain (RFC 3263 section 4.1)."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver.add(dns.NAPTR, "peer.test", naptr(50, 50, b"SIP+D2U", "_sip._udp.peer.test"))
        self.resolver.add(dns.NAPTR, "peer.test", naptr(10, 50, b"SIP+D2T", "_sip._tcp.peer.test"))
        self.resolver.add(dns.NAPTR, "peer.test", naptr(5, 50, b"X-UNKNOWN", "_x._tcp.peer.test"))
        self.resolver.add(dns.NAPTR, "peer.test", naptr(60, 50, b"SIPS+D2T", "_sips._tcp.peer.test"))
        self.resolver.add(dns.SRV, "_sip._tcp.peer.test", dns.Record_SRV(10, 0, 5070, "a.peer.test"))
        self.resolver.add(dns.SRV, "_sips._tcp.peer.test", dns.Record_SRV(10, 0, 5071, "a.peer.test"))
        self.resolver.add(dns.A, "a.peer.test", dns.Record_A("192.0.2.10"))

    def test_bestSupportedNaptr(self) -> None:
        """The lowest-order NAPTR whose service we support wins; its SRV names the port."""
        self.assertEqual(self.hops("peer.test"), [Hop("192.0.2.10", 5070, Transport.TCP, "peer.test")])

    def test_secureTakesOnlySips(self) -> None:
        """A sips gateway follows only SIPS+D2T records."""
        self.assertEqual(
            self.hops("peer.test", secure=True), [Hop("192.0.2.10", 5071, Transport.TLS, "peer.test")]
        )


class SrvTests(LocateTestCase):
    """SRV without NAPTR, ordered by priority and weight (RFC 2782)."""

    def test_transportGivenAsksItsSrv(self) -> None:
        """A transport parameter skips NAPTR and asks that transport's SRV name."""
        self.resolver.add(dns.SRV, "_sips._tcp.peer.test", dns.Record_SRV(1, 0, 5061, "t.peer.test"))
        self.resolver.add(dns.A, "t.peer.test", dns.Record_A("192.0.2.20"))
        self.assertEqual(
            self.hops("peer.test", transport=Transport.TLS),
            [Hop("192.0.2.20", 5061, Transport.TLS, "peer.test")],
        )
        self.assertNotIn(dns.NAPTR, [kind for kind, _ in self.resolver.queries])

    def test_priorityThenFailover(self) -> None:
        """Each SRV target is one hop, the lower priority first."""
        self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(20, 0, 5062, "backup.peer.test"))
        self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(10, 0, 5061, "main.peer.test"))
        self.resolver.add(dns.A, "main.peer.test", dns.Record_A("192.0.2.1"))
        self.resolver.add(dns.A, "backup.peer.test", dns.Record_A("192.0.2.2"))
        self.assertEqual(
            [(hop.host, hop.port) for hop in self.hops("peer.test")],
            [("192.0.2.1", 5061), ("192.0.2.2", 5062)],
        )

    def test_tcpWhenNoUdpSrv(self) -> None:
        """Without NAPTR, SRV is asked per transport in turn; the first with records wins."""
        self.resolver.add(dns.SRV, "_sip._tcp.peer.test", dns.Record_SRV(10, 0, 5070, "t.peer.test"))
        self.resolver.add(dns.A, "t.peer.test", dns.Record_A("192.0.2.3"))
        self.assertEqual(self.hops("peer.test"), [Hop("192.0.2.3", 5070, Transport.TCP, "peer.test")])

    def test_weightsSpreadLoad(self) -> None:
        """Within one priority the draw follows the weights: a 90/10 pair leads mostly with the 90."""
        self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(10, 90, 5060, "heavy.peer.test"))
        self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(10, 10, 5060, "light.peer.test"))
        self.resolver.add(dns.A, "heavy.peer.test", dns.Record_A("192.0.2.90"))
        self.resolver.add(dns.A, "light.peer.test", dns.Record_A("192.0.2.10"))
        firsts = [self.hops("peer.test")[0].host for _ in range(400)]
        self.assertGreater(firsts.count("192.0.2.90"), 300)
        self.assertGreater(firsts.count("192.0.2.10"), 10)
        self.assertEqual(len(self.hops("peer.test")), 2)

    def test_dotTargetMeansNoService(self) -> None:
        """An SRV target of "." says there is no service: the name falls back to A records."""
        self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(0, 0, 0, b"."))
        self.resolver.add(dns.A, "peer.test", dns.Record_A("192.0.2.7"))
        self.assertEqual(self.hops("peer.test"), [Hop("192.0.2.7", 5060, Transport.UDP, "peer.test")])

    def test_addressFallback(self) -> None:
        """No NAPTR and no SRV: A/AAAA at the default port over UDP (TLS and 5061 for sips)."""
        self.resolver.add(dns.A, "peer.test", dns.Record_A("192.0.2.8"))
        self.assertEqual(self.hops("peer.test"), [Hop("192.0.2.8", 5060, Transport.UDP, "peer.test")])
        self.assertEqual(
            self.hops("peer.test", secure=True), [Hop("192.0.2.8", 5061, Transport.TLS, "peer.test")]
        )


class CacheTests(LocateTestCase):
    """Answers are kept for their TTL on the clock."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("192.0.2.5"), ttl=60)

    def test_cachedAnswerIsPlain(self) -> None:
        """Within the TTL the hops come back at once, as a list, with no new query."""
        self.hops("gw.peer.test", port=5060)
        asked = len(self.resolver.queries)
        again = self.locator.locate("gw.peer.test", port=5060)
        self.assertEqual(again, [Hop("192.0.2.5", 5060, Transport.UDP, "gw.peer.test")])
        self.assertEqual(len(self.resolver.queries), asked)

    def test_expiresWithTtl(self) -> None:
        """Past the TTL the name is asked again, and a changed answer is used."""
        self.hops("gw.peer.test", port=5060)
        self.clock.advance(61)
        self.resolver.records[(dns.A, "gw.peer.test")][0].payload = dns.Record_A("192.0.2.6")
        self.assertEqual(self.hops("gw.peer.test", port=5060)[0].host, "192.0.2.6")


class SharedLookupTests(LocateTestCase):
    """A name being looked up is looked up once, however many calls ask for it meanwhile."""

    def test_oneQueryChainPerName(self) -> None:
        """Two calls while the answer is on its way share one lookup and both get the hops."""
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("192.0.2.5"))
        self.resolver.held = []
        first = self.locator.locate("gw.peer.test", port=5060)
        second = self.locator.locate("gw.peer.test", port=5060)
        assert isinstance(first, defer.Deferred) and isinstance(second, defer.Deferred)
        self.assertEqual(len(self.resolver.queries), 2)  # A and AAAA, once
        self.resolver.release()
        expected = [Hop("192.0.2.5", 5060, Transport.UDP, "gw.peer.test")]
        self.assertEqual(self.successResultOf(first), expected)
        self.assertEqual(self.successResultOf(second), expected)

    def test_sharedFailure(self) -> None:
        """A name that does not resolve fails every call that waited for it."""
        self.resolver.held = []
        first = self.locator.locate("nowhere.test", port=5060)
        second = self.locator.locate("nowhere.test", port=5060)
        assert isinstance(first, defer.Deferred) and isinstance(second, defer.Deferred)
        self.resolver.release()
        self.failureResultOf(first, LocateError)
        self.failureResultOf(second, LocateError)


class FailureTests(LocateTestCase):
    """A name that gives no hops fails with LocateError, and is not asked again at once."""

    def test_unresolvable(self) -> None:
        """NXDOMAIN everywhere is a LocateError."""
        result = self.locator.locate("nowhere.test")
        assert isinstance(result, defer.Deferred)
        self.failureResultOf(result, LocateError)

    def test_serverFailure(self) -> None:
        """A DNS server failure is a LocateError too, never a traceback."""
        self.resolver.failures[(dns.A, "gw.peer.test")] = DNSServerError("SERVFAIL")
        result = self.locator.locate("gw.peer.test", port=5060)
        assert isinstance(result, defer.Deferred)
        self.failureResultOf(result, LocateError)

    def test_negativeCached(self) -> None:
        """A failed name is remembered for NEGATIVE_TTL seconds, then asked again."""
        result = self.locator.locate("nowhere.test", port=5060)
        assert isinstance(result, defer.Deferred)
        self.failureResultOf(result)
        asked = len(self.resolver.queries)
        self.assertRaises(LocateError, self.locator.locate, "nowhere.test", port=5060)
        self.assertEqual(len(self.resolver.queries), asked)
        self.clock.advance(NEGATIVE_TTL + 1)
        self.resolver.add(dns.A, "nowhere.test", dns.Record_A("192.0.2.9"))
        self.assertEqual(self.hops("nowhere.test", port=5060)[0].host, "192.0.2.9")


class StaleTests(LocateTestCase):
    """When DNS does not answer, a name that resolved before keeps its last good answer (RFC 8767)."""

    def setUp(self) -> None:
        super().setUp()
        self.events = LogRecorder()
        self.patch(ServerLocator, "log", self.events.log)
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("192.0.2.5"), ttl=60)
        self.good = [Hop("192.0.2.5", 5060, Transport.UDP, "gw.peer.test")]
        self.assertEqual(self.hops("gw.peer.test", port=5060), self.good)

    def outage(self) -> None:
        """DNS stops answering for gw.peer.test."""
        self.resolver.failures[(dns.A, "gw.peer.test")] = DNSQueryTimeoutError("gw.peer.test")

    def test_servedStaleOnTimeout(self) -> None:
        """Past the TTL, a timeout serves the last answer, asked again after NEGATIVE_TTL, with one
        log line a minute."""
        self.outage()
        self.clock.advance(61)
        self.assertEqual(self.hops("gw.peer.test", port=5060), self.good)
        asked = len(self.resolver.queries)
        self.assertEqual(self.locator.locate("gw.peer.test", port=5060), self.good)
        self.assertEqual(len(self.resolver.queries), asked)
        self.clock.advance(NEGATIVE_TTL + 1)
        self.assertEqual(self.hops("gw.peer.test", port=5060), self.good)
        self.assertGreater(len(self.resolver.queries), asked)
        self.assertEqual(len(self.events.events), 1)
        self.assertEqual(self.events.events[0]["name"], "gw.peer.test")
        self.assertEqual(self.events.events[0]["why"], "DNSQueryTimeoutError")

    def test_serverFailureServedStale(self) -> None:
        """SERVFAIL is an outage too: the last answer is served."""
        self.resolver.failures[(dns.A, "gw.peer.test")] = DNSServerError("SERVFAIL")
        self.clock.advance(61)
        self.assertEqual(self.hops("gw.peer.test", port=5060), self.good)

    def test_bounded(self) -> None:
        """STALE_LIMIT past its TTL, the last answer is no longer served: the name fails."""
        self.outage()
        self.clock.advance(60 + STALE_LIMIT + 1)
        result = self.locator.locate("gw.peer.test", port=5060)
        assert isinstance(result, defer.Deferred)
        self.failureResultOf(result, LocateError)

    def test_answerReplacesStale(self) -> None:
        """Once DNS answers again, its answer is used, and a later outage serves that one."""
        self.outage()
        self.clock.advance(61)
        self.hops("gw.peer.test", port=5060)
        del self.resolver.failures[(dns.A, "gw.peer.test")]
        self.resolver.records[(dns.A, "gw.peer.test")][0].payload = dns.Record_A("192.0.2.6")
        self.clock.advance(NEGATIVE_TTL + 1)
        self.assertEqual(self.hops("gw.peer.test", port=5060)[0].host, "192.0.2.6")
        self.outage()
        self.clock.advance(61)
        self.assertEqual(self.hops("gw.peer.test", port=5060)[0].host, "192.0.2.6")

    def test_noRecordsIsAnAnswer(self) -> None:
        """NXDOMAIN is DNS answering that the name is gone: no stale answer is served."""
        del self.resolver.records[(dns.A, "gw.peer.test")]
        self.clock.advance(61)
        result = self.locator.locate("gw.peer.test", port=5060)
        assert isinstance(result, defer.Deferred)
        self.failureResultOf(result, LocateError)

    def test_survivesForget(self) -> None:
        """A reload drops the cache but not the last good answers: an outage then still serves them."""
        self.outage()
        self.locator.forget()
        self.assertEqual(self.hops("gw.peer.test", port=5060), self.good)
