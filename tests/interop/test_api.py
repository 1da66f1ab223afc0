# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
The HTTP API of the real service (C{twistd -n sbc}): one plain HTTP request to each side of it,
public C{/media-resources} and the token-guarded C{/status}, made with urllib on loopback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from .ports import TCP, freePort
from .service import startService

TOKEN = "interop-test-token-0123456789"
# Seconds any one HTTP request may take.
HTTP_TIMEOUT = 5.0


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
