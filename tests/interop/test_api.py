# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
The HTTP API of the real service (C{twistd -n sbc}): one plain HTTP request to each side of it,
public C{/media-resources} and the token-guarded C{/status}, made with urllib on loopback; and
C{sbc-ctl trunks} and C{status} (sbc.ops.apictl) run as real processes against it.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from .ports import TCP, freePort
from .service import startService
from .tools import requireTool

TOKEN = "interop-test-token-0123456789"
# Seconds any one HTTP request may take.
HTTP_TIMEOUT = 5.0
# Seconds one sbc-ctl run may take (its own request times out after 5).
COMMAND_TIMEOUT = 30.0


class APITests(SynchronousTestCase):
    """The API listens on its own loopback port beside SIP, and guards its ops endpoints."""

    def test_mediaResourcesAndStatus(self) -> None:
        """/media-resources answers anyone with our listeners; /status needs the token."""
        port = freePort("127.0.0.1", (TCP,))
        service = startService(self, settings={"api": {"listen": f"127.0.0.1:{port}", "token": TOKEN}})
        base = f"http://127.0.0.1:{port}"

        with urllib.request.urlopen(f"{base}/media-resources", timeout=HTTP_TIMEOUT) as answer:
            self.assertEqual(answer.status, 200, service.describe())
            self.assertTrue(answer.headers["ETag"])
            body = json.load(answer)
        [own] = [node for node in body["sbcs"] if node["node"] == "self"]
        host, udpPort = service.address("udp")
        self.assertIn({"transport": "udp", "address": host, "port": udpPort}, own["signalling"])
        self.assertTrue(body["mediaservers"])

        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/status", timeout=HTTP_TIMEOUT)
        self.assertEqual(refused.exception.code, 401)
        refused.exception.close()

        request = urllib.request.Request(f"{base}/status", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
            status = json.load(answer)
        self.assertEqual(status["config_generation"], 1, service.describe())
        self.assertGreaterEqual(status["uptime"], 0)
        self.assertNotIn(TOKEN, service.log())


class CtlTests(SynchronousTestCase):
    """sbc-ctl reads the running SBC through its API, with the address and token of the config."""

    def test_trunksAndStatus(self) -> None:
        """`sbc-ctl trunks` shows the demo trunk and its pinged gateway's state; `status` the uptime;
        a token the SBC does not hold gets a clear 401 message and exit 1."""
        sbcCtl = requireTool("sbc-ctl")
        port = freePort("127.0.0.1", (TCP,))
        service = startService(
            self,
            settings={
                "api": {"listen": f"127.0.0.1:{port}", "token": None, "token_file": "api.token"},
                "trunks.demo": {"ping_interval": 1},
            },
            additions={"api.token": [TOKEN]},
        )

        def run(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sbcCtl, *argv, "--config", str(service.configPath)],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )

        trunks = run("trunks")
        detail = f"{trunks.stdout}\n{trunks.stderr}\n{service.describe()}"
        self.assertEqual(trunks.returncode, 0, detail)
        lines = trunks.stdout.splitlines()
        self.assertEqual(lines[0].split()[:2], ["TRUNK", "WHITELIST"], detail)
        self.assertEqual(lines[1].split()[0], "demo", detail)
        [gateway] = [line.split() for line in lines if "127.0.0.2:5080" in line]
        self.assertEqual(gateway[0], "demo", detail)
        self.assertIn(gateway[2], ("up", "down"), detail)

        status = run("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"(?m)^uptime +\d\d:\d\d \(\d+ s\)$")
        self.assertRegex(status.stdout, r"(?m)^config generation +1$")

        (service.configPath.parent / "api.token").write_text("not-the-running-token-0123\n")
        refused = run("status")
        self.assertEqual((refused.returncode, refused.stdout), (1, ""))
        self.assertIn("refused the token (401)", refused.stderr)
        self.assertNotIn(TOKEN, service.log())
