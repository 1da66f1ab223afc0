# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Calls through a peer operator's record-routing proxy: Debian's Kamailio with kamailio_proxy.cfg,
between its customers (SIPp on 127.0.0.10, an address no whitelist of the SBC holds) and the SBC,
which knows its trunk side (on 127.0.0.2) as the demo trunk.

Kamailio forwards in-dialog requests only by its own Route (loose_route()): an ACK or BYE that skips
it never reaches anyone, and the SBC drops anything the customers send it straight.  So a call
completes only when each side's Record-Route rules hold: the SBC echoes the proxy's Record-Route in
its 18x/2xx and sends its own requests to the customer by that route set (RFC 3261 section 12.1.1),
and on calls out it routes its ACK and BYE by the reversed Record-Route of the 2xx (12.1.2).  The
registered phone on the other side never sees the proxy: no Record-Route, no Via of it.
"""

from __future__ import annotations

from .kamailio import KamailioProxy
from .ports import UDP, freePort
from .sipp import SippRun
from .test_calls import ALICE_DID, HOLD_MS, CallTestCase
from .tools import requireTool

OUTSIDE_NUMBER = "+15557777"
# The demo trunk's whitelisted address: Kamailio's side towards the SBC.
TRUNK = "127.0.0.2"
# The operator's customers and Kamailio's side towards them: outside every whitelist of the SBC.
CUSTOMERS = "127.0.0.10"

SIPP_USER_AGENT = "sbc-interop-sipp"


class ProxyCallTests(CallTestCase):
    """
    Both directions through the operator's proxy complete, ACK and BYE through it, and the phone
    never learns of it.  alice's phone and her calls are L{CallTestCase}'s, from 127.0.0.4.
    """

    proxy: KamailioProxy

    def startThroughProxy(self, customer: tuple[str, int] = (CUSTOMERS, 9)) -> None:
        """
        Start the service, with the demo trunk's gateway at Kamailio's trunk side, then Kamailio in
        front of it, sending the calls it gets from the SBC to C{customer}.
        """
        requireTool("sipp")
        self.proxy = KamailioProxy(self, trunkHost=TRUNK, customerHost=CUSTOMERS, customer=customer)
        self.startWith(gateways=[self.proxy.trunkSide])
        self.proxy.start(self.service.address("udp"))

    def detail(self, *runs: SippRun) -> str:
        """
        Everything about the runs, Kamailio and the service, for a failure message.
        """
        return (
            "\n".join(run.describe() for run in runs)
            + "\n"
            + self.proxy.describe()
            + "\n"
            + self.service.describe()
        )

    def customerCall(self, scenario: str, target: str) -> SippRun:
        """
        A customer calls C{target} through Kamailio's customer side, to the end of C{scenario}.
        """
        return self.caller(scenario, target, CUSTOMERS, remote=self.proxy.customerSide)

    def assertProxyHidden(self, phone: SippRun, *others: SippRun) -> None:
        """
        Nothing the phone received names the proxy: no Record-Route, no Via but the SBC's own, none of
        Kamailio's addresses or ports, no User-Agent of the customer's.
        """
        detail = self.detail(phone, *others)
        self.assertTrue(self.requests(phone, "INVITE") or phone.responses, detail)
        sbcHost, sbcPort = self.service.address("udp")
        for message in phone.traced:
            if message.sent:
                continue
            self.assertEqual(message.headers("record-route"), [], detail)
            if message.statusCode is None:
                self.assertEqual(len(message.headers("via")), 1, detail)
                self.assertIn(f"{sbcHost}:{sbcPort}", message.headers("via")[0], detail)
        for host, port in (self.proxy.trunkSide, self.proxy.customerSide):
            self.assertNotIn(f"{host}:{port}", phone.receivedText, detail)
        self.assertNotIn(CUSTOMERS, phone.receivedText, detail)
        self.assertNotIn(SIPP_USER_AGENT, phone.receivedText, detail)

    def assertThroughProxy(self, customer: SippRun) -> None:
        """
        The customer's side of the call went by the proxy: every request it received came from
        Kamailio (its Via on top), and the responses that make the dialog (18x, 2xx to the INVITE)
        carried its Record-Route.
        """
        detail = self.detail(customer)
        proxyVia = f"{self.proxy.customerSide[0]}:{self.proxy.customerSide[1]}"
        for message in customer.traced:
            if message.sent:
                continue
            if message.statusCode is None:
                self.assertIn(proxyVia, message.headers("via")[0], detail)
            elif 100 < message.statusCode < 300 and message.headers("cseq")[0].endswith("INVITE"):
                self.assertTrue(message.headers("record-route"), detail)

    def test_customerCallsDidCallerHangsUp(self) -> None:
        """
        A customer calls alice's DID through the proxy; ACK and the customer's BYE go through it.
        """
        self.startThroughProxy()
        phone = self.phone("call_uas.xml")
        caller = self.customerCall("proxy_uac.xml", ALICE_DID)
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        self.assertEqual(len(self.requests(callee, "ACK")), 1, detail)
        self.assertEqual(len(self.requests(callee, "BYE")), 1, detail)
        self.assertThroughProxy(caller)
        self.assertProxyHidden(callee, caller)

    def test_customerCallsDidCalleeHangsUp(self) -> None:
        """
        A customer calls alice's DID; alice hangs up, and the SBC's BYE reaches the customer by the
        proxy's route set.
        """
        self.startThroughProxy()
        phone = self.phone("call_uas_bye.xml", extraArgs=("-d", str(HOLD_MS)))
        caller = self.customerCall("proxy_uac_wait.xml", ALICE_DID)
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        (bye,) = self.requests(caller, "BYE")
        self.assertEqual(len(bye.headers("via")), 2, detail)  # the proxy's, then the SBC's
        self.assertThroughProxy(caller)
        self.assertProxyHidden(callee, caller)

    def test_phoneCallsCustomer(self) -> None:
        """
        alice calls a number out through the demo trunk, whose gateway is the proxy; a customer
        answers; the SBC's ACK and BYE go through the proxy by the 2xx's Record-Route.
        """
        customerPort = freePort(CUSTOMERS, (UDP,))
        self.startThroughProxy(customer=(CUSTOMERS, customerPort))
        customer = self.gateway("proxy_uas.xml", CUSTOMERS, customerPort, user="customer")
        caller = self.device(OUTSIDE_NUMBER)
        callee = customer.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        (invite,) = self.requests(callee, "INVITE")
        self.assertEqual(len(invite.headers("via")), 2, detail)  # the proxy's, then the SBC's
        self.assertEqual(len(self.requests(callee, "ACK")), 1, detail)
        self.assertEqual(len(self.requests(callee, "BYE")), 1, detail)
        self.assertThroughProxy(callee)
        self.assertProxyHidden(caller, callee)
