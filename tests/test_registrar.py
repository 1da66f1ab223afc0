"""Tests for sbc.registrar.registrar: REGISTER with digest auth, bindings, bans and flows."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransportWithDisconnection

from sbc.config import loadConfig
from sbc.config.users import formatAccount
from sbc.registrar.registrar import PRUNE_INTERVAL
from sbc.server import SIPServer
from sbc.sip import Request, Response, parseMessage
from sbc.sip.digest import formatCredentials, makeCredentials, parseChallenge
from sbc.transport import SIPStreamFactory, StreamConnections
from tests.fakes import RecordingTransport, connectStream
from tests.registrar import DEVICE, DOMAIN, REGISTRAR_TOML, RegistrarTestCase, register
from tests.rfc4475 import load


class ChallengeTests(RegistrarTestCase):
    def test_trunkRefused(self) -> None:
        """A trunk is never challenged: its REGISTER gets 403."""
        response = self.send(register(), ("127.0.0.2", 5060))
        assert response is not None
        self.assertEqual(response.status, 403)

    def test_oneChallengeByDefault(self) -> None:
        """Without [registrar] algorithms the 401 carries one challenge, MD5, qop=auth (libre phones)."""
        response = self.send(register())
        assert response is not None
        self.assertEqual(response.status, 401)
        offers = [parseChallenge(v) for v in response.headers.getAll("www-authenticate")]
        self.assertEqual([o.algorithm for o in offers], ["MD5"])
        self.assertEqual({o.realm for o in offers}, {DOMAIN})
        self.assertEqual([o.qop for o in offers], [("auth",)])

    def test_sha256RefusedByDefault(self) -> None:
        """SHA-256 credentials, not offered by default, get a fresh MD5 challenge instead of a 200."""
        response = self.authorized(register(), algorithm="SHA-256", offered="MD5")
        assert response is not None
        self.assertEqual(response.status, 401)
        offers = [parseChallenge(v).algorithm for v in response.headers.getAll("www-authenticate")]
        self.assertEqual(offers, ["MD5"])

    def test_md5(self) -> None:
        """MD5 credentials register, and the 200 lists the binding with its expiry."""
        response = self.authorized(register(expires="600"))
        assert response is not None
        self.assertEqual(response.status, 200)
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5:5070>;expires=600"])
        self.assertIn("Date", response.headers)

    def test_wrongPassword(self) -> None:
        """A wrong password gets a fresh challenge, not a 200."""
        response = self.authorized(register(), password="nope")
        assert response is not None
        self.assertEqual(response.status, 401)

    def test_unknownUserSameChallenge(self) -> None:
        """An unknown user gets the same challenge as a known one, and then another 401."""
        known = self.send(register())
        unknown = self.send(register(user="mallory", branch="z9hG4bKm"))
        assert known is not None and unknown is not None
        self.assertEqual(unknown.status, 401)
        self.assertEqual(
            [parseChallenge(v).realm for v in unknown.headers.getAll("www-authenticate")],
            [parseChallenge(v).realm for v in known.headers.getAll("www-authenticate")],
        )
        response = self.authorized(register(user="mallory", branch="z9hG4bKm2"), user="mallory")
        assert response is not None
        self.assertEqual(response.status, 401)

    def test_userMismatch(self) -> None:
        """Credentials of one user for another's AOR get 403."""
        response = self.authorized(register(user="bob"), user="alice", password="alice-pw")
        assert response is not None
        self.assertEqual(response.status, 403)

    def test_foreignDomain(self) -> None:
        """A domain we do not serve gets 403 without a challenge."""
        response = self.send(register(domain="elsewhere.test"))
        assert response is not None
        self.assertEqual(response.status, 403)

    def test_staleNonce(self) -> None:
        """An expired nonce gets 401 with stale=true."""
        challenge = self.send(register())
        assert challenge is not None
        offer = parseChallenge(challenge.headers.getAll("www-authenticate")[0])
        self.clock.advance(301)
        credentials = makeCredentials(
            username="alice",
            password="alice-pw",
            realm=DOMAIN,
            nonce=offer.nonce,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
            qop="auth",
            nc="00000001",
            cnonce="x",
        )
        response = self.send(
            register(branch="z9hG4bKs", cseq=2, extra=f"Authorization: {formatCredentials(credentials)}\r\n")
        )
        assert response is not None
        self.assertEqual(response.status, 401)
        self.assertIn("stale=true", response.headers.getAll("www-authenticate")[0])

    def test_replay(self) -> None:
        """The same nonce count twice is refused the second time."""
        challenge = self.send(register())
        assert challenge is not None
        offer = parseChallenge(challenge.headers.getAll("www-authenticate")[0])
        credentials = makeCredentials(
            username="alice",
            password="alice-pw",
            realm=DOMAIN,
            nonce=offer.nonce,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
            qop="auth",
            nc="00000001",
            cnonce="x",
        )
        header = f"Authorization: {formatCredentials(credentials)}\r\n"
        first = self.send(register(branch="z9hG4bKr1", cseq=2, extra=header))
        second = self.send(register(branch="z9hG4bKr2", cseq=3, extra=header))
        assert first is not None and second is not None
        self.assertEqual(first.status, 200)
        self.assertEqual(second.status, 401)

    def test_demoAccountOnlyOnLoopback(self) -> None:
        """A demo account fails when the SBC listens on anything but loopback."""
        users = self.directory / "users.txt"
        users.write_text(formatAccount("alice", DOMAIN, "alice-pw", demo=True) + "\n")
        config = loadConfig(self.directory / "sbc.toml")
        self.server.setConfig(config)
        response = self.authorized(register(branch="z9hG4bKd1"))
        assert response is not None
        self.assertEqual(response.status, 200)
        toml = (self.directory / "sbc.toml").read_text().replace('host = "127.0.0.1"', 'host = "192.0.2.1"')
        (self.directory / "sbc.toml").write_text(toml)
        self.server.setConfig(loadConfig(self.directory / "sbc.toml"))
        response = self.authorized(register(branch="z9hG4bKd2", callId="reg-2"))
        assert response is not None
        self.assertEqual(response.status, 401)


def offered(response: Response | None) -> list[str]:
    """The algorithms of the WWW-Authenticate challenges of a 401, in order."""
    assert response is not None and response.status == 401, response
    return [parseChallenge(v).algorithm for v in response.headers.getAll("www-authenticate")]


class NetworkChallengeTests(RegistrarTestCase):
    toml = (
        REGISTRAR_TOML
        + """
[registrar.networks.modern]
addresses = ["127.0.0.4/30"]
algorithms = ["SHA-256", "MD5"]

[registrar.networks.legacy]
whitelist = "whitelist/legacy.txt"
algorithms = ["MD5"]
"""
    )
    files = {"whitelist/legacy.txt": "# one old phone\n127.0.0.5\n"}

    def test_networkChallenge(self) -> None:
        """A source in a network gets that network's challenges, in its order."""
        self.assertEqual(offered(self.send(register())), ["SHA-256", "MD5"])

    def test_longestPrefixWins(self) -> None:
        """A /32 (from a whitelist file) inside a wider network picks its own algorithms."""
        self.assertEqual(offered(self.send(register(), ("127.0.0.5", 5070))), ["MD5"])

    def test_sha256Registers(self) -> None:
        """SHA-256 credentials register where the network offers SHA-256 (RFC 8760)."""
        response = self.authorized(register(), algorithm="SHA-256")
        assert response is not None
        self.assertEqual(response.status, 200)

    def test_accountBeatsNetwork(self) -> None:
        """An MD5-only account that proves its password with SHA-256 is asked again with MD5 alone."""
        data = register(user="dave", contact="<sip:dave@10.0.0.5:5070>")
        again = self.authorized(data, user="dave", password="dave-pw", algorithm="SHA-256")
        self.assertEqual(offered(again), ["MD5"])
        assert again is not None
        final = self.answer(again, data, "dave", "dave-pw", "MD5")
        assert final is not None
        self.assertEqual(final.status, 200)


class AccountChallengeTests(RegistrarTestCase):
    def test_firstChallengeFollowsNetwork(self) -> None:
        """Before credentials the account is unknown: a SHA-256 account is first challenged with MD5."""
        self.assertEqual(offered(self.send(register(user="carol"))), ["MD5"])

    def test_accountChallengeAfterProof(self) -> None:
        """The right password under MD5 gets the account's SHA-256 challenge, which then registers."""
        data = register(user="carol", contact="<sip:carol@10.0.0.5:5070>")
        again = self.authorized(data, user="carol", password="carol-pw")
        self.assertEqual(offered(again), ["SHA-256"])
        assert again is not None
        self.assertEqual(
            offered(self.answer(again, data, "carol", "carol-pw", "MD5", offered="SHA-256")), ["SHA-256"]
        )
        final = self.answer(again, data, "carol", "carol-pw", "SHA-256")
        assert final is not None
        self.assertEqual(final.status, 200)

    def test_wrongPasswordKeepsNetworkChallenge(self) -> None:
        """A wrong password never learns the account's algorithms: the network's challenge again."""
        response = self.authorized(register(user="carol"), user="carol", password="nope")
        self.assertEqual(offered(response), ["MD5"])


class BanTests(RegistrarTestCase):
    def test_banAfterFailures(self) -> None:
        """N failed attempts ban the source; it then gets no answer until the ban ends."""
        for i in range(3):
            response = self.authorized(register(branch=f"z9hG4bKb{i}"), password="wrong")
            assert response is not None
        self.assertFalse(self.server.admit(DEVICE[0]))
        self.assertIsNone(self.send(register(branch="z9hG4bKb9")))
        self.assertEqual(self.server.metrics["banned_dropped"], 2)
        self.assertTrue(self.server.admit("127.0.0.5"))
        self.clock.advance(601)
        self.assertTrue(self.server.admit(DEVICE[0]))

    def test_successResets(self) -> None:
        """A success clears the failure count of its source."""
        for i in range(2):
            self.authorized(register(branch=f"z9hG4bKs{i}"), password="wrong")
        self.authorized(register(branch="z9hG4bKok"))
        for i in range(2):
            self.authorized(register(branch=f"z9hG4bKt{i}", callId="reg-9"), password="wrong")
        self.assertTrue(self.server.admit(DEVICE[0]))

    def test_successClearsOnlyItsUser(self) -> None:
        """Good REGISTERs for the attacker's own account do not reset its guesses at another."""
        for i in range(3):
            self.authorized(
                register(user="bob", branch=f"z9hG4bKg{i}", callId=f"own-{i}"), user="bob", password="bob-pw"
            )
            self.authorized(register(branch=f"z9hG4bKw{i}", callId=f"guess-{i}"), password="wrong")
        self.assertFalse(self.server.admit(DEVICE[0]))


class StreamBanTests(RegistrarTestCase):
    """A ban reaches the source's open TCP/TLS connections, not only its next datagram."""

    def setUp(self) -> None:
        super().setUp()
        self.connections = StreamConnections()
        self.server = SIPServer(self.server.config, self.clock, closeConnections=self.connections.closeWhere)
        self.factory = SIPStreamFactory(
            self.server, "TCP", self.clock, 300.0, 65536, connections=self.connections
        )

    def connect(self, source: tuple[str, int] = DEVICE) -> StringTransportWithDisconnection:
        return connectStream(self.factory, IPv4Address("TCP", *source))

    def exchange(self, stream: StringTransportWithDisconnection, data: bytes) -> Response | None:
        """Send ``data`` on ``stream``; the response it got, if any."""
        stream.clear()
        assert stream.protocol is not None
        stream.protocol.dataReceived(data)
        answer = stream.value()
        if not answer:
            return None
        response = parseMessage(answer)
        assert isinstance(response, Response)
        return response

    def guess(self, stream: StringTransportWithDisconnection, password: str, i: int) -> Response | None:
        """REGISTER on ``stream``, then answer its 401 with ``password``; the final response."""
        data = register(transport="TCP", branch=f"z9hG4bKc{i}", callId=f"tcp-{i}")
        challenge = self.exchange(stream, data)
        if challenge is None:
            return None
        offer = parseChallenge(challenge.headers.get("www-authenticate") or "")
        request = parseMessage(data)
        assert isinstance(request, Request)
        credentials = makeCredentials(
            username="alice",
            password=password,
            realm=offer.realm,
            nonce=offer.nonce,
            method="REGISTER",
            uri=str(request.uri),
            algorithm="MD5",
            qop="auth",
            nc="00000001",
            cnonce="c0ffee",
        )
        request.headers.add("Authorization", formatCredentials(credentials))
        request.headers.set("CSeq", "2 REGISTER")
        request.headers.set("Via", f"SIP/2.0/TCP 10.0.0.5:5070;branch=z9hG4bKd{i};rport")
        return self.exchange(stream, request.toBytes())

    def test_sameConnection(self) -> None:
        """Wrong passwords on one connection ban the source and close it: the right one gets no 200."""
        stream = self.connect()
        for i in range(2):
            response = self.guess(stream, "wrong", i)
            assert response is not None
            self.assertEqual(response.status, 401)
        self.assertIsNone(self.guess(stream, "wrong", 2))  # the third failure bans, and closes
        self.assertFalse(stream.connected)
        self.assertIsNone(self.guess(stream, "alice-pw", 3))
        self.assertEqual(len(self.connections), 0)

    def test_otherTransport(self) -> None:
        """A ban earned over UDP closes the source's open TCP connection; another source's stays."""
        stream = self.connect()
        other = self.connect(("127.0.0.5", 5070))
        for i in range(3):
            self.authorized(register(branch=f"z9hG4bKu{i}"), password="wrong")
        self.assertFalse(stream.connected)
        self.assertTrue(other.connected)
        self.assertEqual(self.connections.count(DEVICE[0]), 0)
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", *DEVICE)))


class FlowTests(RegistrarTestCase):
    """Which flow a binding uses, and what closing a flow takes with it."""

    def aor(self) -> list[str]:
        return [
            b.contact for b in self.successResultOf(self.server.registrar.store.lookup(f"alice@{DOMAIN}"))
        ]

    def test_reRegisterOverNewConnection(self) -> None:
        """After a device re-registers over a new connection, closing the old one keeps the binding."""
        old = RecordingTransport("TCP", reliable=True)
        new = RecordingTransport("TCP", reliable=True)
        self.authorized(register(transport="TCP"), transport=old)
        self.authorized(register(transport="TCP", callId="reg-2", branch="z9hG4bKr2"), transport=new)
        self.server.connectionClosed(old)
        self.assertEqual(self.aor(), ["sip:alice@10.0.0.5:5070"])
        (binding,) = self.successResultOf(self.server.registrar.store.lookup(f"alice@{DOMAIN}"))
        self.assertEqual(self.server.registrar.flowOf(binding), (new, DEVICE))
        self.server.connectionClosed(new)
        self.assertEqual(self.aor(), [])

    def test_movedToUDP(self) -> None:
        """A binding moved from a connection to UDP is not the connection's to remove any more."""
        tcp = RecordingTransport("TCP", reliable=True)
        self.authorized(register(transport="TCP"), transport=tcp)
        self.authorized(register(callId="reg-2", branch="z9hG4bKr2"))
        self.server.connectionClosed(tcp)
        self.assertEqual(self.aor(), ["sip:alice@10.0.0.5:5070"])

    def test_closedFlowForgotten(self) -> None:
        """A closed connection leaves no trace in the registrar, whether or not it still had bindings."""
        registrar = self.server.registrar
        emptied = RecordingTransport("TCP", reliable=True)
        self.authorized(register(transport="TCP"), transport=emptied)
        self.authorized(register(transport="TCP", expires="0", branch="z9hG4bKz"), transport=emptied)
        self.server.connectionClosed(emptied)
        live = RecordingTransport("TCP", reliable=True)
        self.authorized(register(transport="TCP", callId="reg-3", branch="z9hG4bKl"), transport=live)
        self.server.connectionClosed(live)
        self.assertEqual((registrar.flows, registrar.flowBindings), ({}, {}))

    def test_datagramRoutesPruned(self) -> None:
        """Routes of UDP bindings that expired are forgotten, so many sources over time cost nothing."""
        for i in range(5):
            self.authorized(
                register(contact=f"<sip:alice@10.0.0.5:{6000 + i}>", expires="60", branch=f"z9hG4bKp{i}"),
                source=("127.0.0.4", 6000 + i),
            )
        self.assertEqual(len(self.server.registrar.flows), 5)
        self.clock.advance(61 + PRUNE_INTERVAL)
        self.authorized(register(callId="later", branch="z9hG4bKq"))
        self.assertEqual(list(self.server.registrar.flows), [(f"alice@{DOMAIN}", "sip:alice@10.0.0.5:5070")])

    def test_massDisconnectLinear(self) -> None:
        """Closing a connection touches only its own bindings: no scan of every flow (O(n), not O(n^2))."""
        registrar = self.server.registrar
        flows = [RecordingTransport("TCP", reliable=True) for _ in range(3)]
        for i, flow in enumerate(flows):
            contact = f"<sip:alice@10.0.0.5:{7000 + i}>"
            self.authorized(register(transport="TCP", contact=contact, branch=f"z9hG4bKm{i}"), transport=flow)
        registrar.flows = NoScan(registrar.flows)
        registrar.flowBindings = NoScan(registrar.flowBindings)
        for flow in flows:
            self.server.connectionClosed(flow)
        self.assertEqual(self.aor(), [])
        self.assertEqual(len(registrar.flowBindings), 0)


class NoScan(dict):
    """A dict that fails the test when anything walks all of it."""

    def _scan(self, *args: object) -> Any:
        raise AssertionError("scanned every entry")

    __iter__ = items = values = keys = _scan


class BindingTests(RegistrarTestCase):
    def test_tooBrief(self) -> None:
        """An expiry below the minimum gets 423 with Min-Expires."""
        response = self.authorized(register(expires="30"))
        assert response is not None
        self.assertEqual(response.status, 423)
        self.assertEqual(response.headers.get("min-expires"), "60")

    def test_capped(self) -> None:
        """An expiry above the maximum is cut to it."""
        response = self.authorized(register(expires="99999"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5:5070>;expires=3600"])

    def test_severalContacts(self) -> None:
        """Each contact keeps its own expiry and q; the 200 lists all, best q first."""
        contact = "<sip:a@10.0.0.5>;expires=120;q=0.5, <sip:b@10.0.0.6>;q=0.9"
        response = self.authorized(register(contact=contact, expires="300"))
        self.assertEqual(
            self.contacts(response),
            ["<sip:b@10.0.0.6>;expires=300;q=0.9", "<sip:a@10.0.0.5>;expires=120;q=0.5"],
        )

    def test_expiryOnClock(self) -> None:
        """A binding is gone once its expiry passes on the clock."""
        self.authorized(register(expires="60"))
        self.clock.advance(61)
        response = self.authorized(register(contact=None, callId="q", branch="z9hG4bKq"))
        self.assertEqual(self.contacts(response), [])

    def test_query(self) -> None:
        """A REGISTER without Contact lists the current bindings and changes nothing."""
        self.authorized(register(expires="600"))
        self.clock.advance(100)
        response = self.authorized(register(contact=None, branch="z9hG4bKq"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5:5070>;expires=500"])

    def test_unregister(self) -> None:
        """Expires 0 on a contact removes that binding only."""
        self.authorized(register(contact="<sip:a@10.0.0.5>, <sip:b@10.0.0.6>"))
        response = self.authorized(register(contact="<sip:a@10.0.0.5>;expires=0", branch="z9hG4bKu"))
        self.assertEqual(self.contacts(response), ["<sip:b@10.0.0.6>;expires=3600"])

    def test_wildcard(self) -> None:
        """Contact: * with Expires: 0 removes every binding."""
        self.authorized(register(contact="<sip:a@10.0.0.5>, <sip:b@10.0.0.6>"))
        response = self.authorized(register(contact="*", expires="0", branch="z9hG4bKw"))
        assert response is not None
        self.assertEqual(response.status, 200)
        self.assertEqual(self.contacts(response), [])

    def test_wildcardNeedsExpiresZero(self) -> None:
        """Contact: * without Expires: 0 is a bad request."""
        response = self.authorized(register(contact="*", expires="60"))
        assert response is not None
        self.assertEqual(response.status, 400)

    def test_cseqOrder(self) -> None:
        """On the same Call-ID, a REGISTER whose CSeq is not higher cannot change a binding."""
        self.authorized(register(expires="600"))
        self.cseq -= 5  # the next authorized() request carries a lower CSeq on the same Call-ID
        response = self.authorized(register(expires="0", branch="z9hG4bKo"))
        assert response is not None
        self.assertEqual(response.status, 500)
        response = self.authorized(register(contact=None, callId="other", branch="z9hG4bKp"))
        self.assertEqual(len(self.contacts(response)), 1)

    def test_newCallIdReplaces(self) -> None:
        """A different Call-ID (a rebooted phone) replaces the binding whatever its CSeq."""
        self.authorized(register(expires="600"))
        self.cseq = 0
        response = self.authorized(register(expires="900", callId="reboot", branch="z9hG4bKn"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5:5070>;expires=900"])

    def test_routeThroughNat(self) -> None:
        """Requests to a UDP binding go to the address the REGISTER came from, not its Contact."""
        self.authorized(register())
        (binding,) = self.successResultOf(self.server.registrar.store.lookup(f"alice@{DOMAIN}"))
        self.assertEqual(binding.source, DEVICE)
        self.assertEqual(self.server.registrar.flowOf(binding), (self.udp, DEVICE))

    def test_flowClosedRemovesBinding(self) -> None:
        """A binding made over TCP uses that connection, and goes when the connection closes."""
        tcp = RecordingTransport("TCP", reliable=True)
        self.authorized(register(transport="TCP"), transport=tcp)
        (binding,) = self.successResultOf(self.server.registrar.store.lookup(f"alice@{DOMAIN}"))
        self.assertEqual(self.server.registrar.flowOf(binding), (tcp, DEVICE))
        self.server.connectionClosed(tcp)
        self.assertEqual(self.successResultOf(self.server.registrar.store.lookup(f"alice@{DOMAIN}")), [])


class TortureRegisterTests(RegistrarTestCase):
    """RFC 4475's REGISTER messages, authenticated and sent from a device network."""

    def torture(self, name: str, user: str) -> Response | None:
        return self.authorized(load(name), user=user, password="pw")

    def bindings(self, aor: str) -> list[str]:
        return [b.contact for b in self.successResultOf(self.server.registrar.store.lookup(aor))]

    def test_cparam01(self) -> None:
        """unknownparam after an addr-spec is a header parameter, not part of the bound URI."""
        response = self.torture("cparam01.dat", "watson")
        assert response is not None
        self.assertEqual(response.status, 200)
        self.assertEqual(self.bindings("watson@example.com"), ["sip:+19725552222@gw1.example.net"])

    def test_cparam02(self) -> None:
        """unknownparam inside <> stays a URI parameter of the binding."""
        self.torture("cparam02.dat", "watson")
        self.assertEqual(
            self.bindings("watson@example.com"), ["sip:+19725552222@gw1.example.net;unknownparam"]
        )

    def test_regescrt(self) -> None:
        """The escaped Route header in the contact URI is kept in the binding."""
        self.torture("regescrt.dat", "user")
        self.assertEqual(
            self.bindings("user@example.com"), ["sip:user@example.com?Route=%3Csip:sip.example.com%3E"]
        )

    def test_unksm2(self) -> None:
        """A REGISTER whose To is not a SIP URI gets 400."""
        response = self.send(load("unksm2.dat"))
        assert response is not None
        self.assertEqual(response.status, 400)


class QualifyTests(RegistrarTestCase):
    def setUp(self) -> None:
        super().setUp()
        from sbc.registrar.qualify import Qualifier

        self.qualifier = Qualifier(self.server.registrar, self.server.transactions, "sbc")
        self.authorized(register())
        self.aor = f"alice@{DOMAIN}"

    def ping(self) -> Request:
        before = len(self.udp.sent)
        self.qualifier.qualifyAll()
        (data, address) = self.udp.sent[before]
        self.assertEqual(address, DEVICE)
        request = parseMessage(data)
        assert isinstance(request, Request)
        self.assertEqual(request.method, "OPTIONS")
        return request

    def test_answeredKeepsBinding(self) -> None:
        """A device that answers OPTIONS (even with an error) keeps its binding."""
        request = self.ping()
        response = Response(405, headers=request.headers.copy())
        self.server.messageReceived(response.toBytes(), self.udp, DEVICE)
        self.clock.advance(64)
        self.assertEqual(len(self.successResultOf(self.server.registrar.store.lookup(self.aor))), 1)
        self.assertEqual(self.qualifier.removed, 0)

    def test_silentLosesBinding(self) -> None:
        """A device that never answers loses its binding when timer F fires."""
        self.ping()
        for _ in range(70):
            self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(self.server.registrar.store.lookup(self.aor)), [])
        self.assertEqual(self.qualifier.removed, 1)
