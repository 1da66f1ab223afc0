# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
What the real service logs about relayed calls: one summary line per call attempt, the reason on the
line of a call the SBC had to end, and nothing per relay socket or per packet.
"""

from __future__ import annotations

import re
import secrets
import socket
import time

from sbc.sip import Request, Response, parseMessage

from .service import startService
from .test_calls import ALICE_DID, TRUNK, CallTestCase, mediaAddress
from .tools import requireTool

# A short T1 makes our 2xx's retransmissions give up (64*T1) within seconds.
T1 = 0.1
ANSWERED_CALLS = 3
# The summary lines as twistd writes them: "<time> [sbc.calls#info] call ...".
_SUMMARY = re.compile(r"\[sbc\.calls#(info|warn)\] call (\S+): (.*)$", re.MULTILINE)


def inviteWithoutAck(target: str, service: tuple[str, int], timeout: float = 15.0) -> list[str]:
    """
    Call C{target} from the trunk's address and never ACK the 200: return the status lines received,
    after answering the BYE with which the SBC gives up.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((TRUNK, 0))
        port = sock.getsockname()[1]
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {TRUNK}\r\ns=-\r\nc=IN IP4 {TRUNK}\r\nt=0 0\r\n"
            f"m=audio {port + 2} RTP/AVP 0\r\n"
        ).encode()
        invite = (
            f"INVITE sip:{target}@{service[0]}:{service[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {TRUNK}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:+15551234@{TRUNK}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{target}@{service[0]}>\r\nCall-ID: {secrets.token_hex(8)}@{TRUNK}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:caller@{TRUNK}:{port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
        ).encode() + sdp
        sock.sendto(invite, service)
        statuses: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                break
            message = parseMessage(data)
            if isinstance(message, Response):
                statuses.append(f"{message.status} {message.cseq().method}")
            elif isinstance(message, Request) and message.method == "BYE":
                ok = Response(200, "OK")
                for name in ("via", "from", "to", "call-id", "cseq"):
                    for value in message.headers.getAll(name):
                        ok.headers.add(name, value)
                ok.setBody(b"")
                sock.sendto(ok.toBytes(), source)
                statuses.append("BYE")
                return statuses
        return statuses


class CallLogTests(CallTestCase):
    """
    Relayed calls through the real service, and the lines they leave in its log.
    """

    def test_summaryLines(self) -> None:
        """Answered relayed calls log one line each; a call whose caller never ACKs logs one line with
        the reason; no relay socket logs anything."""
        requireTool("sipp")
        self.service = startService(self, settings={"media": {"address": mediaAddress()}, "sip": {"t1": T1}})
        phone = self.phone("call_uas.xml", calls=ANSWERED_CALLS + 1)
        caller = self.caller("call_uac.xml", ALICE_DID, calls=ANSWERED_CALLS)
        self.assertEqual(caller.exitCode, 0, self.detail(caller))
        statuses = inviteWithoutAck(ALICE_DID, self.service.address("udp"))
        self.assertIn("200 INVITE", statuses, self.detail())
        self.assertEqual(statuses[-1], "BYE", self.detail())
        deadline = time.monotonic() + 5
        while len(_SUMMARY.findall(self.service.log())) < ANSWERED_CALLS + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        log = self.service.log()
        lines = _SUMMARY.findall(log)
        detail = self.detail(caller) + "\n" + "\n".join(map(str, lines))
        self.assertEqual(len(lines), ANSWERED_CALLS + 1, detail)
        self.assertEqual(len({callId for _, callId, _ in lines}), ANSWERED_CALLS + 1, detail)
        answered = [text for level, _, text in lines if level == "info"]
        failed = [text for level, _, text in lines if level == "warn"]
        self.assertEqual(len(answered), ANSWERED_CALLS, detail)
        for text in answered:
            self.assertRegex(text, r"^trunk demo -> user alice@demo\.acme\.sbc\.test .*: 200 answered, ")
        (noAck,) = failed
        self.assertTrue(noAck.endswith("ended by sbc: no ACK"), detail)
        # The relay opened and closed four sockets per call: none of them said a word.
        self.assertNotIn("Closed)", log, detail)
        self.assertNotIn("RelaySocket", log, detail)
        self.assertEqual(self.service.errors(), [], detail)
        phone.wait()
