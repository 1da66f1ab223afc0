# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
A trunk's calls-per-second limit through the real service (C{twistd -n sbc}): SIPp on 127.0.0.2,
the demo trunk, places calls faster than the trunk's C{max_cps}; the excess gets 503 with
Retry-After, and the calls within the limit complete at alice's phone (SIPp on 127.0.0.4).

The bucket is set so that the outcome does not depend on the machine's speed: a burst of
L{BURST} and a refill of one call every 1/L{CPS} = 5 seconds, far longer than SIPp takes to place
all L{CALLS} calls, so exactly L{BURST} are taken.
"""

from __future__ import annotations

from .service import startService
from .sipp import SippRun
from .test_calls import ALICE, CallTestCase, mediaAddress
from .tools import requireTool

# The demo trunk's limit in this test: a burst of 5 INVITEs, then one every 5 seconds.
CPS = 0.2
BURST = 5
# Calls SIPp places, and how fast: all of them within well under 1/CPS seconds.
CALLS = 20
RATE = 40
# SIPp's -timeout: far above what the run takes (about a second), far below the test's budget.
TIMEOUT = 20.0


def finalStatuses(run: SippRun) -> dict[str, tuple[int, list[str]]]:
    """
    The final response to each INVITE C{run} sent, by Call-ID: its status and its Retry-After values.
    """
    finals: dict[str, tuple[int, list[str]]] = {}
    for response in run.responses:
        status = response.statusCode
        if status is None or status < 200 or "INVITE" not in " ".join(response.headers("cseq")):
            continue
        (callId,) = response.headers("call-id")
        finals.setdefault(callId, (status, response.headers("retry-after")))
    return finals


class TrunkLimitTests(CallTestCase):
    """
    The demo trunk's calls per second, enforced on a real SIPp caller.
    """

    def test_excessGets503WithRetryAfter(self) -> None:
        """
        20 INVITEs at once from the demo trunk with max_cps = 0.2 and cps_burst = 5: 5 calls are
        answered and completed at alice's phone, 15 get 503 with a Retry-After of at most 5 s.
        """
        requireTool("sipp")
        settings: dict[str, dict[str, object]] = {
            "media": {"address": mediaAddress()},
            "trunks.demo": {"max_cps": CPS, "cps_burst": BURST},
        }
        self.service = startService(self, settings=settings)
        phone = self.phone("call_uas.xml", calls=BURST, timeout=TIMEOUT, statistics=True)
        caller = self.caller(
            "call_uac_limited.xml",
            ALICE[0],
            calls=CALLS,
            timeout=TIMEOUT,
            statistics=True,
            extraArgs=("-r", str(RATE), "-l", str(CALLS)),
        )
        callee = phone.wait()
        self.assertCompleted(caller, callee)
        detail = self.detail(caller, callee)
        finals = finalStatuses(caller)
        self.assertEqual(len(finals), CALLS, detail)
        statuses = sorted(status for status, _ in finals.values())
        self.assertEqual(statuses, [200] * BURST + [503] * (CALLS - BURST), detail)
        for status, retryAfter in finals.values():
            if status == 503:
                self.assertEqual(len(retryAfter), 1, detail)
                self.assertIn(int(retryAfter[0]), range(1, int(1 / CPS) + 1), detail)
        self.assertEqual(callee.count("SuccessfulCall"), BURST, detail)
        self.assertEqual(caller.count("FailedCall"), 0, detail)
