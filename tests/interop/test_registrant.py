# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Calls through a registration (issue 18, point 2): the SBC registers to a peer's registrar as one SIP
phone, and the peer's calls for that AOR reach a user of ours through the Contact it registered.

The registrar is Debian's Kamailio with kamailio_registrar.cfg (bindings in memory, digest against
one static account) on 127.0.0.20.  The real service (C{twistd -n sbc}) runs with a
C{[registrants.peer-kam]} table pointing at it, routed to the demo user alice
(C{route = "user:alice"}); alice's phone is a SIPp UAS on 127.0.0.4 that registers at the SBC.  A
caller on 127.0.0.21 (an address no whitelist of the SBC holds) calls the AOR at Kamailio, which
looks up the SBC's binding and forwards the call there, record-routed: the INVITE, the caller's ACK
and BYE all reach the SBC from the registrar's address, the one source it takes them from.
"""

from __future__ import annotations

import re
import subprocess
import time

from .kamailio import KamailioRegistrar
from .service import startService
from .sipp import SippRun
from .test_calls import ALICE, CallTestCase, mediaAddress
from .tools import requireTool

# The peer's registrar, and a caller of the peer's: outside every whitelist of the SBC.
REGISTRAR_HOST = "127.0.0.20"
CALLER_HOST = "127.0.0.21"
# Our registration there: its name is our Contact's user; the account is Kamailio's one account.
REGISTRANT = "peer-kam"
AOR_USER = "sbc-demo"
PASSWORD = "kam-demo-secret"
# How long the SBC may take to register (a 401, then the REGISTER with credentials).
REGISTER_TIMEOUT = 15.0
# How long the binding may take to go once the service is stopped (it unregisters within 2 s).
UNREGISTER_TIMEOUT = 10.0


class RegistrantCallTests(CallTestCase):
    """
    A call for our AOR at the peer's registrar reaches alice through the SBC, and completes.
    """

    registrar: KamailioRegistrar

    def startRegistered(self) -> str:
        """
        Start Kamailio, then the service registering to it, and wait until Kamailio saved the
        SBC's binding; returns the binding as Kamailio logged it ("AOR -> CONTACT").
        """
        requireTool("sipp")
        self.registrar = KamailioRegistrar(self, host=REGISTRAR_HOST, authUser=AOR_USER, password=PASSWORD)
        self.registrar.run()
        host, port = self.registrar.address
        registrant: dict[str, object] = {
            "registrar": f"sip:{host}:{port}",
            "aor": f"sip:{AOR_USER}@peer-kam.example",
            "auth_user": AOR_USER,
            "password": PASSWORD,
            "expires": 600,
            "transport": "udp",
            "route": f"user:{ALICE[0]}",
        }
        settings: dict[str, dict[str, object]] = {
            "media": {"address": mediaAddress()},
            f"registrants.{REGISTRANT}": registrant,
        }
        self.service = startService(self, settings=settings)
        try:
            return self.registrar.waitForBinding(REGISTER_TIMEOUT)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.service.describe()}") from None

    def detail(self, *runs: SippRun) -> str:
        """
        Everything about the runs, Kamailio and the service, for a failure message.
        """
        return super().detail(*runs) + "\n" + self.registrar.describe()

    def test_callThroughRegistrationReachesAlice(self) -> None:
        """
        The SBC's binding at Kamailio is its Contact; a call for the AOR at Kamailio rings alice's
        phone through the SBC, is answered, ACKed and hung up by the caller (through Kamailio).
        """
        binding = self.startRegistered()
        sbcHost, sbcPort = self.service.address("udp")
        # Our Contact's user is the name and 16 hex digits (sbc.registrant.contact): not guessable.
        contact = re.compile(rf"sip:{REGISTRANT}-[0-9a-f]{{16}}@{re.escape(sbcHost)}:{sbcPort}")
        self.assertRegex(binding, contact, self.detail())
        phone = self.phone("call_uas.xml")
        caller = self.caller("proxy_uac.xml", AOR_USER, CALLER_HOST, remote=self.registrar.address)
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        self.assertStatuses(caller, [180, 200, 200], callee)
        detail = self.detail(caller, callee)
        (invite,) = self.requests(callee, "INVITE")
        self.assertTrue(invite.firstLine.startswith(f"INVITE sip:{ALICE[0]}@"), detail)
        self.assertEqual(len(self.requests(callee, "ACK")), 1, detail)
        self.assertEqual(len(self.requests(callee, "BYE")), 1, detail)
        # Topology hiding: alice never learns of the registrar, the caller or our registration.
        for hidden in (REGISTRAR_HOST, CALLER_HOST, REGISTRANT, AOR_USER):
            self.assertNotIn(hidden, callee.receivedText, detail)

    def bound(self) -> int:
        """
        sipsak's exit code for an OPTIONS query of the AOR at Kamailio (kamailio_registrar.cfg
        answers 200 while it has a binding: exit 0; 404 once it has none: exit 1).
        """
        sipsak = requireTool("sipsak")
        host, port = self.registrar.address
        result = subprocess.run(
            [sipsak, "-s", f"sip:{AOR_USER}@{host}:{port}", "-H", "127.0.0.1"],
            capture_output=True,
            timeout=15,
            check=False,
        )
        return result.returncode

    def test_unregisteredOnStop(self) -> None:
        """
        Kamailio took the SBC's REGISTER (digest with qop=auth: qop, nc and cnonce checked); once
        the service is stopped, the binding is gone from Kamailio (we unregistered).
        """
        self.startRegistered()
        self.assertEqual(self.bound(), 0, self.detail())
        self.service.stop()
        deadline = time.monotonic() + UNREGISTER_TIMEOUT
        while self.bound() != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(self.bound(), 1, self.detail())
