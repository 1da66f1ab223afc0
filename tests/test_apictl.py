"""Tests for sbc.ops.apictl: ``sbc-ctl status``, ``trunks``, ``calls``, ``registrations`` and
``registrants`` ask the running SBC's HTTP API (here the real resource tree, in memory) and print
tables, or say clearly why they cannot."""

from __future__ import annotations

import io
import json
import shutil
import socket
import sys
import tempfile
import urllib.parse
from pathlib import Path

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sbc.config import loadConfig
from sbc.config.api import APISettings
from sbc.ops import apictl, ctl
from sbc.ops.api import APISources, apiResource
from sbc.ops.apictl import APIClient, APICtlError, baseURL, httpFetch
from sbc.ops.metrics import Metrics
from sbc.ops.reload import ConfigReloader
from sbc.registrar.location import Binding
from tests.fakes import DEMO_TOML, writeConfig

TOKEN = "a-test-token-of-some-length"
API = """
[api]
listen = "127.0.0.1:8089"
token_file = "api.token"
"""


class InMemoryAPI:
    """The API's resource tree, asked through apictl's Fetch: each request rendered in memory."""

    def __init__(self, root: Resource) -> None:
        self.root = root
        self.asked: list[tuple[str, str, dict[str, str], float]] = []
        # /registrants as another SBC build would answer it (the registrant side is not in this tree).
        self.extra: dict[str, object] = {}

    def __call__(self, method: str, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        self.asked.append((method, url, headers, timeout))
        path = urllib.parse.urlsplit(url).path
        if path in self.extra:
            return 200, json.dumps(self.extra[path]).encode()
        request = DummyRequest([part.encode() for part in path.strip("/").split("/")])
        request.method = method.encode()
        for name, value in headers.items():
            request.requestHeaders.setRawHeaders(name.lower().encode(), [value.encode()])
        result = getChildForRequest(self.root, request).render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request.responseCode or 200, b"".join(request.written)


class APICtlTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        (self.directory / "api.token").write_text(TOKEN + "\n")
        self.path = writeConfig(self.directory, DEMO_TOML + API)
        config = loadConfig(self.path)
        assert config.api is not None
        self.clock = Clock()
        self.clock.advance(5000)
        sources = APISources(
            version="9.9",
            clock=self.clock,
            started=1000.0,
            config=lambda: config,
            metrics=Metrics(),
            reloader=ConfigReloader(config, lambda _: None),
            gatewayStates=lambda: {"demo": {"127.0.0.2:5080": "up", "gw.peer.example": "down"}},
            trunkCalls=lambda name: 3,
            bindings=lambda: succeed(
                [
                    Binding(
                        "alice@sbc.test",
                        "sip:alice@192.0.2.9:5070",
                        expires=5400.0,
                        transport="udp",
                        source=("192.0.2.9", 5070),
                    )
                ]
            ),
            calls=lambda: [],
        )
        self.api = InMemoryAPI(apiResource(config.api, sources))
        self.patch(apictl, "FETCH", self.api)

    def sbcCtl(self, *argv: str, config: Path | None = None) -> tuple[int, str, str]:
        """Run sbc-ctl with the test's config; returns (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = ctl.main([*argv, "--config", str(config or self.path)])
        return status, out.getvalue(), err.getvalue()


class CommandTests(APICtlTestCase):
    def test_trunks(self) -> None:
        """trunks prints each trunk's row and each gateway's state, asked with the config's token."""
        status, out, err = self.sbcCtl("trunks")
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(
            lines[0].split(), ["TRUNK", "WHITELIST", "MAX", "CPS", "BURST", "MAX", "CALLS", "CALLS"]
        )
        self.assertEqual(lines[1].split(), ["demo", "1", "no", "limit", "no", "limit", "no", "limit", "3"])
        self.assertIn("127.0.0.2:5080   up", out)
        self.assertIn("gw.peer.example  down", out)
        [(method, url, headers, timeout)] = self.api.asked
        self.assertEqual(
            (method, url, timeout), ("GET", "http://127.0.0.1:8089/trunks", apictl.DEFAULT_TIMEOUT)
        )
        self.assertEqual(headers["Authorization"], f"Bearer {TOKEN}")

    def test_status(self) -> None:
        """status prints the version, the uptime and the config generation."""
        status, out, _ = self.sbcCtl("status")
        self.assertEqual(status, 0)
        self.assertRegex(out, r"(?m)^version +9\.9$")
        self.assertRegex(out, r"(?m)^uptime +01:06:40 \(4000 s\)$")
        self.assertRegex(out, r"(?m)^config generation +1$")
        self.assertRegex(out, r"(?m)^last reload +none since start$")

    def test_registrations(self) -> None:
        """registrations prints each binding's AOR, contact as the API gives it, and seconds left."""
        status, out, _ = self.sbcCtl("registrations")
        self.assertEqual(status, 0)
        header, row = out.splitlines()
        self.assertEqual(header.split()[:2], ["AOR", "CONTACT"])
        self.assertEqual(
            row.split(), ["alice@sbc.test", "sip:alice@192.0.2.9:5070", "udp", "192.0.2.9:5070", "400"]
        )

    def test_callsNone(self) -> None:
        """calls says when there are none."""
        self.assertEqual(self.sbcCtl("calls")[:2], (0, "no calls in progress\n"))

    def test_registrants(self) -> None:
        """registrants prints what /registrants lists."""
        self.api.extra["/registrants"] = {"registrants": [{"name": "peer", "state": "registered"}]}
        status, out, _ = self.sbcCtl("registrants")
        self.assertEqual((status, out.splitlines()[1].split()), (0, ["peer", "registered"]))

    def test_registrantsNone(self) -> None:
        """registrants, from the real endpoint of an SBC without registrants, says there are none."""
        self.assertEqual(self.sbcCtl("registrants")[:2], (0, "no registrants configured\n"))

    def test_apiOverride(self) -> None:
        """--api asks another address, still with the config's token."""
        self.sbcCtl("status", "--api", "http://[::1]:9000/")
        [(_, url, headers, _)] = self.api.asked
        self.assertEqual(url, "http://[::1]:9000/status")
        self.assertEqual(headers["Authorization"], f"Bearer {TOKEN}")


class ErrorTests(APICtlTestCase):
    def test_wrongToken(self) -> None:
        """A token the SBC refuses (401) is named as the cause, never printed; exit 1."""
        (self.directory / "api.token").write_text("another-token-of-some-length\n")
        status, out, err = self.sbcCtl("trunks")
        self.assertEqual((status, out), (1, ""))
        self.assertIn("refused the token (401)", err)
        self.assertIn("sbc.toml", err)
        self.assertNotIn("another-token", err)

    def test_noToken(self) -> None:
        """An [api] without a token: the 401 says to set token_file."""
        path = writeConfig(self.directory, DEMO_TOML + '[api]\nlisten = "127.0.0.1:8089"\n')
        status, _, err = self.sbcCtl("status", config=path)
        self.assertEqual(status, 1)
        self.assertIn("wants a token (401), and none is set: add token_file", err)

    def test_notConfigured(self) -> None:
        """A config without [api] says that the SBC runs no API; nothing is asked."""
        path = writeConfig(self.directory)
        status, _, err = self.sbcCtl("trunks", config=path)
        self.assertEqual(status, 1)
        self.assertIn("has no [api] table", err)
        self.assertEqual(self.api.asked, [])

    def test_badConfig(self) -> None:
        """A config that does not load is reported, with status 1."""
        self.path.write_text("[sip\n")
        status, _, err = self.sbcCtl("status")
        self.assertEqual(status, 1)
        self.assertIn("sbc.toml", err)

    def test_connectionRefused(self) -> None:
        """Nothing listening: says so, naming the address; exit 1."""

        def refused(method: str, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
            raise ConnectionRefusedError(111, "Connection refused")

        self.patch(apictl, "FETCH", refused)
        status, _, err = self.sbcCtl("calls")
        self.assertEqual(status, 1)
        self.assertIn("cannot reach the SBC's API at http://127.0.0.1:8089: connection refused", err)

    def test_timeout(self) -> None:
        """No answer in time: says how long it waited."""

        def silent(method: str, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
            raise TimeoutError("timed out")

        self.patch(apictl, "FETCH", silent)
        status, _, err = self.sbcCtl("status", "--timeout", "0.5")
        self.assertEqual(status, 1)
        self.assertIn("no answer from the SBC's API at http://127.0.0.1:8089 within 0.5 s", err)

    def test_unknownPath(self) -> None:
        """An SBC without the endpoint (404) is told apart from other failures."""
        client = APIClient("http://127.0.0.1:8089", TOKEN, fetch=self.api)
        with self.assertRaises(APICtlError) as caught:
            client.get("/nothing-here")
        self.assertIn("answered 404: /nothing-here is unknown there", str(caught.exception))

    def test_serverError(self) -> None:
        """Another status is reported with the API's own error text."""
        client = APIClient("http://127.0.0.1:1", TOKEN, fetch=lambda *a: (500, b'{"error": "disk gone"}'))
        with self.assertRaises(APICtlError) as caught:
            client.get("/registrations")
        self.assertIn("answered 500: disk gone", str(caught.exception))

    def test_notJSON(self) -> None:
        """A 200 that is not JSON is an error, not a traceback."""
        client = APIClient("http://127.0.0.1:1", TOKEN, fetch=lambda *a: (200, b"<html>"))
        self.assertRaises(APICtlError, client.get, "/status")

    def test_badOverride(self) -> None:
        """--api must be an http(s) URL."""
        status, _, err = self.sbcCtl("status", "--api", "127.0.0.1:8080")
        self.assertEqual(status, 1)
        self.assertIn("give an http:// or https:// URL", err)

    def test_plainHttpElsewhereRefused(self) -> None:
        """--api with plain http to a non-loopback host is refused (the token would go in clear);
        https to it, and plain http to loopback or localhost, are asked."""
        for url in ("http://192.0.2.10:8080", "http://sbc.example:8080/"):
            status, _, err = self.sbcCtl("status", "--api", url)
            self.assertEqual(status, 1)
            self.assertIn("in clear", err)
            self.assertNotIn(TOKEN, err)
        self.assertEqual(self.api.asked, [])
        for url in ("https://sbc.example:8443", "http://localhost:8080", "http://127.0.0.2:8080"):
            self.sbcCtl("status", "--api", url)
        self.assertEqual(len(self.api.asked), 3)

    def test_unsendableToken(self) -> None:
        """A token no HTTP header can carry is refused before anything is sent, without showing it."""
        (self.directory / "api.token").write_text("a-token-of-some\x01length\n")
        status, _, err = self.sbcCtl("status")
        self.assertEqual(status, 1)
        self.assertIn("holds characters an HTTP header cannot carry", err)
        self.assertNotIn("a-token-of-some", err)
        self.assertEqual(self.api.asked, [])

    def test_tokenNotInRepr(self) -> None:
        """The client's repr never shows the token."""
        self.assertNotIn(TOKEN, repr(APIClient("http://127.0.0.1:1", TOKEN)))


class BaseURLTests(SynchronousTestCase):
    def test_addresses(self) -> None:
        """An API bound to every interface is asked on loopback; an IPv6 host is bracketed."""
        self.assertEqual(baseURL(APISettings("127.0.0.1", 8080)), "http://127.0.0.1:8080")
        self.assertEqual(baseURL(APISettings("0.0.0.0", 8080)), "http://127.0.0.1:8080")
        self.assertEqual(baseURL(APISettings("::", 8080)), "http://[::1]:8080")
        self.assertEqual(baseURL(APISettings("::1", 8081)), "http://[::1]:8081")


class HTTPFetchTests(SynchronousTestCase):
    def test_refused(self) -> None:
        """The standard-library fetch raises ConnectionRefusedError when nothing listens."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.assertRaises(
            ConnectionRefusedError, httpFetch, "GET", f"http://127.0.0.1:{port}/status", {}, 2.0
        )
