"""Tests for sbc.ops.api and sbc.config.api: the HTTP API's resources, its token, and its config."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sbc.calls.call import Call
from sbc.config import Config, ConfigError, MediaEngine, loadConfig
from sbc.config.api import DEMO_TOKEN
from sbc.config.calls import MediaSettings
from sbc.ops.api import APISources, MetricsCollector, Registrants, Registrations, apiResource, callSummaries
from sbc.ops.metrics import Metrics
from sbc.ops.reload import ConfigReloader
from sbc.registrant.status import RegistrantState, RegistrantStatus
from sbc.registrar.location import Binding
from tests.calls import CallTestCase
from tests.fakes import DEMO_TOML, writeConfig

TOKEN = "a-test-token-of-some-length"
API = f"""
[api]
listen = "127.0.0.1:8080"
token = "{TOKEN}"
other_nodes = [
  {{ signalling = ["udp:192.0.2.7:5060"], media = ["192.0.2.8"], port_min = 30000, port_max = 30999 }},
]
"""


class APITestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = writeConfig(self.directory, DEMO_TOML + API)
        self.config = loadConfig(self.path)
        self.applied: list[Config] = []
        self.reloader = ConfigReloader(self.config, self.applied.append)
        self.clock = Clock()
        self.clock.advance(100)
        self.metrics = Metrics()
        self.bindings = [Binding("sip:alice@sbc.test", "sip:alice@127.0.0.9:5070", expires=400.0)]
        sources = APISources(
            version="9.9",
            clock=self.clock,
            started=100.0,
            config=lambda: self.reloader.config,
            metrics=self.metrics,
            reloader=self.reloader,
            gatewayStates=lambda: {"demo": {"127.0.0.2:5080": "up"}},
            trunkCalls=lambda name: 3 if name == "demo" else 0,
            bindings=lambda: succeed(list(self.bindings)),
            calls=lambda: self.calls,
        )
        self.calls: list[Call] = []
        assert self.config.api is not None
        self.root = apiResource(self.config.api, sources)

    def request(
        self,
        path: str,
        method: bytes = b"GET",
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
    ) -> DummyRequest:
        """Render ``path`` (with its query) on the tree and return the finished request."""
        bare, _, query = path.partition("?")
        request = DummyRequest([part.encode() for part in bare.strip("/").split("/")])
        request.method = method
        for pair in filter(None, query.split("&")):
            name, _, value = pair.partition("=")
            request.addArg(name.encode(), value.encode())
        if token is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        resource: Resource = getChildForRequest(self.root, request)
        result = resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        self.assertTrue(request.finished)
        return request

    def body(self, request: DummyRequest) -> Any:
        """The JSON a request was answered with."""
        return json.loads(b"".join(request.written))


class MediaResourcesTests(APITestCase):
    def test_listsSignallingAndMedia(self) -> None:
        """Our listeners, the relay's address and port range, and the other nodes are listed."""
        body = self.body(self.request("/media-resources", token=None))
        self.assertEqual(
            body["sbcs"],
            [
                {"node": "self", "signalling": [{"transport": "udp", "address": "127.0.0.1", "port": 5060}]},
                {
                    "node": "other-1",
                    "signalling": [{"transport": "udp", "address": "192.0.2.7", "port": 5060}],
                },
            ],
        )
        self.assertEqual(
            body["mediaservers"],
            [
                {"node": "self", "address": "127.0.0.1", "port_min": 20000, "port_max": 29999},
                {"node": "other-1", "address": "192.0.2.8", "port_min": 30000, "port_max": 30999},
            ],
        )

    def rtpengine(self, media: MediaSettings) -> list[dict[str, object]]:
        """The media servers listed while the running config has ``media``."""
        self.reloader.config = replace(self.reloader.config, media=media)
        servers: list[dict[str, object]] = self.body(self.request("/media-resources", token=None))[
            "mediaservers"
        ]
        return servers

    def test_rtpengineAdvertisedAddresses(self) -> None:
        """With rtpengine, its advertised media addresses are listed with the port range, and
        never its ng control address; with none configured, no media address of ours."""
        listed = self.rtpengine(
            MediaSettings(
                engine=MediaEngine.RTPENGINE, rtpengine=("10.9.9.9", 2223), rtpengineMedia=("203.0.113.20",)
            )
        )
        self.assertEqual(
            listed[0], {"node": "self", "address": "203.0.113.20", "port_min": 20000, "port_max": 29999}
        )
        self.assertNotIn("10.9.9.9", str(listed))
        listed = self.rtpengine(MediaSettings(engine=MediaEngine.RTPENGINE, rtpengine=("10.9.9.9", 2223)))
        self.assertEqual([server for server in listed if server["node"] == "self"], [])

    def test_nothingSecret(self) -> None:
        """The public answer carries neither the token nor trunk names nor whitelists."""
        written = b"".join(self.request("/media-resources", token=None).written)
        self.assertNotIn(TOKEN.encode(), written)
        self.assertNotIn(b"demo", written)
        self.assertNotIn(b"127.0.0.2", written)

    def test_filters(self) -> None:
        """``with_sbcs=false`` and ``with_mediaservers=false`` leave their part out."""
        self.assertEqual(list(self.body(self.request("/media-resources?with_sbcs=false"))), ["mediaservers"])
        self.assertEqual(list(self.body(self.request("/media-resources?with_mediaservers=false"))), ["sbcs"])

    def test_badFilter(self) -> None:
        """A filter that is neither true nor false is a 400."""
        self.assertEqual(self.request("/media-resources?with_sbcs=maybe").responseCode, 400)

    def test_etagAnd304(self) -> None:
        """The answer has an ETag; asking again with it in If-None-Match gets 304 and no body."""
        first = self.request("/media-resources")
        etag = (first.responseHeaders.getRawHeaders(b"etag") or [b""])[0].decode()
        self.assertTrue(etag.startswith('"'), etag)
        again = self.request("/media-resources", headers={"If-None-Match": etag})
        self.assertEqual(again.responseCode, 304)
        self.assertEqual(b"".join(again.written), b"")

    def test_etagFollowsFilters(self) -> None:
        """A filtered answer has its own ETag."""
        whole = self.request("/media-resources").responseHeaders.getRawHeaders(b"etag")
        part = self.request("/media-resources?with_sbcs=false").responseHeaders.getRawHeaders(b"etag")
        self.assertNotEqual(whole, part)


class TokenTests(APITestCase):
    def test_opsNeedToken(self) -> None:
        """Every ops endpoint answers 401 with a Bearer challenge to a request without a token."""
        for path, method in [
            ("/status", b"GET"),
            ("/trunks", b"GET"),
            ("/registrations", b"GET"),
            ("/calls", b"GET"),
            ("/metrics", b"GET"),
            ("/reload", b"POST"),
        ]:
            request = self.request(path, method, token=None)
            self.assertEqual(request.responseCode, 401, path)
            self.assertEqual(
                request.responseHeaders.getRawHeaders(b"www-authenticate"), [b'Bearer realm="sbc"']
            )
        self.assertEqual(self.applied, [])

    def test_wrongToken(self) -> None:
        """A wrong token, or the right one in another scheme, is a 401."""
        self.assertEqual(self.request("/status", token=TOKEN + "x").responseCode, 401)
        request = DummyRequest([b"status"])
        request.requestHeaders.setRawHeaders(b"authorization", [f"Basic {TOKEN}".encode()])
        resource = getChildForRequest(self.root, request)
        resource.render(request)
        self.assertEqual(request.responseCode, 401)

    def test_noTokenConfigured(self) -> None:
        """Without a configured token the ops endpoints answer nobody."""
        path = writeConfig(self.directory, DEMO_TOML + '\n[api]\nlisten = "127.0.0.1:8080"\n')
        config = loadConfig(path)
        assert config.api is not None
        self.root = apiResource(config.api, self._sources(config))
        self.assertEqual(self.request("/status", token="").responseCode, 401)
        self.assertEqual(self.request("/status", token=TOKEN).responseCode, 401)
        self.assertEqual(self.request("/media-resources", token=None).responseCode, 200)

    def _sources(self, config: Config) -> APISources:
        return APISources(
            "9.9",
            self.clock,
            0.0,
            lambda: config,
            Metrics(),
            self.reloader,
            dict,
            lambda _: 0,
            lambda: succeed([]),
            list,
        )


class OpsTests(APITestCase):
    def test_status(self) -> None:
        """Status has the version, the uptime on the injected clock and the config generation."""
        self.clock.advance(42)
        body = self.body(self.request("/status"))
        self.assertEqual(body["version"], "9.9")
        self.assertEqual(body["uptime"], 42)
        self.assertEqual(body["config_generation"], 1)
        self.assertIsNone(body["last_reload"])

    def test_reloadReturnsChanges(self) -> None:
        """POST /reload applies the new config and returns its changes; status counts the generation."""
        (self.directory / "whitelist" / "demo.txt").write_text("127.0.0.2/32\n127.0.0.3/32\n")
        request = self.request("/reload", b"POST")
        self.assertEqual(request.responseCode, 200)
        body = self.body(request)
        self.assertTrue(body["reloaded"])
        self.assertTrue(any("127.0.0.3" in line for line in body["changes"]), body)
        self.assertEqual(len(self.applied), 1)
        status = self.body(self.request("/status"))
        self.assertEqual(status["config_generation"], 2)
        self.assertTrue(status["last_reload"]["ok"])

    def test_reloadRefused(self) -> None:
        """A broken config gets 400 with the ConfigError's text, and changes nothing."""
        self.path.write_text(DEMO_TOML + API + "\n[nonsense]\n")
        request = self.request("/reload", b"POST")
        self.assertEqual(request.responseCode, 400)
        self.assertIn("nonsense", self.body(request)["error"])
        self.assertEqual(self.applied, [])
        self.assertFalse(self.body(self.request("/status"))["last_reload"]["ok"])

    def test_reloadNeedsPost(self) -> None:
        """GET /reload reloads nothing: the resource refuses the method (Site answers 405)."""
        self.assertRaises(UnsupportedMethod, self.request, "/reload")
        self.assertEqual(self.applied, [])

    def test_trunks(self) -> None:
        """Trunks show whitelist size, limits, calls now, gateway states and refusal counters."""
        self.metrics.counts["trunk_refused_cps"] += 2
        body = self.body(self.request("/trunks"))
        [demo] = body["trunks"]
        self.assertEqual(demo["name"], "demo")
        self.assertEqual(demo["whitelist_entries"], 1)
        self.assertEqual(demo["calls"], 3)
        self.assertEqual(demo["limits"], {"max_cps": None, "cps_burst": None, "max_calls": None})
        self.assertEqual(demo["gateways"], {"127.0.0.2:5080": "up"})
        self.assertEqual(body["refused"], {"trunk_refused_cps": 2})

    def test_registrations(self) -> None:
        """Live bindings are listed with their remaining time; expired ones are not."""
        self.bindings.append(Binding("sip:bob@sbc.test", "sip:bob@127.0.0.9:5071", expires=50.0))
        rows = self.body(self.request("/registrations"))["registrations"]
        self.assertEqual([(r["aor"], r["expires_in"]) for r in rows], [("sip:alice@sbc.test", 300)])


class RegistrationsFailureTests(APITestCase):
    def test_storeFailure(self) -> None:
        """A location store that fails gives a 500 with its message, and the request still ends."""
        self.bindings = []
        resource = getChildForRequest(self.root, DummyRequest([b"registrations"]))
        assert isinstance(resource, Registrations)
        resource.sources = replace(resource.sources, bindings=lambda: fail(OSError("disk gone")))
        request = self.request("/registrations")
        self.assertEqual(request.responseCode, 500)
        self.assertIn("disk gone", self.body(request)["error"])


class RegistrantsTests(APITestCase):
    def use(self, *statuses: RegistrantStatus) -> None:
        """Serve ``statuses`` as the registrant service's."""
        resource = getChildForRequest(self.root, DummyRequest([b"registrants"]))
        assert isinstance(resource, Registrants)
        resource.sources = replace(resource.sources, registrants=lambda: statuses)

    def test_registrants(self) -> None:
        """Each registration with its state, last answer, next attempt and grant, times from now."""
        self.use(
            RegistrantStatus(
                "peer-b",
                "sip:127.0.0.5",
                "sip:sbc@peer-b.example",
                RegistrantState.REGISTERED,
                lastCode=200,
                lastReason="OK",
                nextAttempt=500.0,
                registeredUntil=700.0,
                destination=("127.0.0.5", 5060),
            ),
            RegistrantStatus(
                "peer-c",
                "sip:[2001:db8::5]",
                "sip:sbc@peer-c.example",
                RegistrantState.FAILED,
                lastCode=403,
                lastReason="Forbidden",
                nextAttempt=3700.0,
                destination=("2001:db8::5", 5060),
                failures=2,
            ),
        )
        rows = self.body(self.request("/registrants"))["registrants"]
        self.assertEqual(
            rows[0],
            {
                "name": "peer-b",
                "registrar": "sip:127.0.0.5",
                "aor": "sip:sbc@peer-b.example",
                "state": "registered",
                "up": True,
                "last_code": 200,
                "last_reason": "OK",
                "next_attempt_in": 400.0,
                "expires_in": 600.0,
                "destination": "127.0.0.5:5060",
                "failures": 0,
            },
        )
        self.assertEqual(
            (rows[1]["state"], rows[1]["up"], rows[1]["expires_in"], rows[1]["destination"]),
            ("failed", False, None, "[2001:db8::5]:5060"),
        )

    def test_noneConfigured(self) -> None:
        """Without registrants the list is empty."""
        self.assertEqual(self.body(self.request("/registrants")), {"registrants": []})

    def test_needsToken(self) -> None:
        """/registrants is an ops endpoint: 401 without the token."""
        self.assertEqual(self.request("/registrants", token=None).responseCode, 401)


class CallsTests(CallTestCase):
    def test_activeCallListed(self) -> None:
        """An answered call is listed with its id, caller, From and To, state and times."""
        self.connect()
        [call] = self.server.calls.active()
        [row] = callSummaries(self.server.calls.active())
        self.assertEqual(row["id"], call.id)
        self.assertEqual(row["caller"], {"kind": "trunk", "name": "demo"})
        self.assertEqual(row["state"], "confirmed")
        self.assertEqual(row["start"], self.clock.seconds())
        self.assertEqual(row["answer"], self.clock.seconds())
        self.assertTrue(row["to"].startswith("sip:"))

    def test_endpoint(self) -> None:
        """GET /calls with the token lists the calls in progress as JSON; without it, 401."""
        self.connect()
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        config = loadConfig(writeConfig(directory, DEMO_TOML + API))
        assert config.api is not None
        sources = APISources(
            "9.9",
            self.clock,
            0.0,
            lambda: config,
            Metrics(),
            ConfigReloader(config, lambda _: None),
            dict,
            lambda _: 0,
            lambda: succeed([]),
            self.server.calls.active,
        )
        root = apiResource(config.api, sources)
        request = DummyRequest([b"calls"])
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {TOKEN}".encode()])
        body = getChildForRequest(root, request).render(request)
        [row] = json.loads(body)["calls"]
        self.assertEqual(row["id"], self.server.calls.active()[0].id)
        unauthorised = DummyRequest([b"calls"])
        getChildForRequest(root, unauthorised).render(unauthorised)
        self.assertEqual(unauthorised.responseCode, 401)


class ServerGaugesTests(CallTestCase):
    def test_callsAndTransactions(self) -> None:
        """The server's metrics give calls and transactions in progress to the Prometheus collector."""
        self.assertEqual(self.server.metrics["calls_active"], 0)
        self.connect()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(self.server.metrics))
        text = generate_latest(registry).decode()
        self.assertIn("sbc_calls_active 1.0", text)
        self.assertEqual(
            self.server.metrics["transactions_server"], len(self.server.transactions.serverTransactions)
        )
        self.assertIn("sbc_transactions_server ", text)
        self.assertIn("sbc_transactions_client ", text)


class PrometheusTests(APITestCase):
    def test_countersAndGauges(self) -> None:
        """Counters become ``_total`` series, gauges keep their labels, in the text format."""
        self.metrics.counts["gate_dropped"] += 5
        self.metrics.gauge('gateway_up{trunk="demo",gateway="127.0.0.2:5080"}', lambda: 1)
        self.metrics.gauge("media_ports_in_use", lambda: 8)
        request = self.request("/metrics")
        self.assertEqual(request.responseCode, 200)
        text = b"".join(request.written).decode()
        self.assertIn("sbc_gate_dropped_total 5.0", text)
        self.assertIn('sbc_gateway_up{gateway="127.0.0.2:5080",trunk="demo"} 1.0', text)
        self.assertIn("sbc_media_ports_in_use 8.0", text)
        self.assertIn(b"text/plain", (request.responseHeaders.getRawHeaders(b"content-type") or [b""])[0])

    def test_labelledCounters(self) -> None:
        """A labelled counter family shows one ``_total`` series per label value."""
        methods: Counter[str] = Counter({"INVITE": 2, "other": 1})
        self.metrics.counter("sip_requests", "method", methods)
        self.metrics.counter("sip_responses", "code", Counter({503: 4}))
        text = b"".join(self.request("/metrics").written).decode()
        self.assertIn('sbc_sip_requests_total{method="INVITE"} 2.0', text)
        self.assertIn('sbc_sip_requests_total{method="other"} 1.0', text)
        self.assertIn('sbc_sip_responses_total{code="503"} 4.0', text)

    def test_readAtScrape(self) -> None:
        """A counter changed after the resource was built shows at the next scrape."""
        self.request("/metrics")
        self.metrics.counts["banned_dropped"] += 1
        self.assertIn("sbc_banned_dropped_total 1.0", b"".join(self.request("/metrics").written).decode())


class APIConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def load(self, api: str) -> Config:
        """The demo config with ``api`` appended."""
        return loadConfig(writeConfig(self.directory, DEMO_TOML + api))

    def test_optIn(self) -> None:
        """Without an ``[api]`` table there is no API."""
        self.assertIsNone(self.load("").api)

    def test_defaultListen(self) -> None:
        """An empty ``[api]`` listens on 127.0.0.1:8080 without a token."""
        api = self.load("\n[api]\n").api
        assert api is not None
        self.assertEqual((api.host, api.port, api.token), ("127.0.0.1", 8080, None))

    def test_nonLoopbackNeedsToken(self) -> None:
        """An API on a non-loopback address without a token refuses to start."""
        with self.assertRaises(ConfigError) as caught:
            self.load('\n[api]\nlisten = "0.0.0.0:8080"\n')
        self.assertIn("api.listen", str(caught.exception))
        self.assertIn("needs a token", str(caught.exception))

    def test_demoTokenLoopbackOnly(self) -> None:
        """The shipped demo token works on loopback and is refused elsewhere."""
        self.assertIsNotNone(self.load(f'\n[api]\ntoken = "{DEMO_TOKEN}"\n').api)
        with self.assertRaises(ConfigError):
            self.load(f'\n[api]\nlisten = "192.0.2.1:8080"\ntoken = "{DEMO_TOKEN}"\n')

    def test_tokenFile(self) -> None:
        """``token_file`` is read relative to the config, stripped of its newline."""
        (self.directory / "api.token").write_text(TOKEN + "\n")
        api = self.load('\n[api]\nlisten = "0.0.0.0:8080"\ntoken_file = "api.token"\n').api
        assert api is not None
        self.assertEqual(api.token, TOKEN)

    def test_shortTokenRefused(self) -> None:
        """A token under 16 characters is refused."""
        with self.assertRaises(ConfigError):
            self.load('\n[api]\ntoken = "short"\n')

    def test_shippedExampleLoads(self) -> None:
        """The demo's ``[api]`` in etc/sbc.toml (loopback, the demo token) loads, with its commented
        other_nodes example uncommented (token_file aside)."""
        shipped = (Path(__file__).resolve().parents[1] / "etc" / "sbc.toml").read_text()
        table = re.findall(r"^((?:\[api\]|listen =|token =).*)$", shipped, re.MULTILINE)
        self.assertEqual(table[0], "[api]")
        example = re.findall(r"^#((?:other_nodes =|  \{|\]).*)$", shipped, re.MULTILINE)
        api = self.load("\n" + "\n".join(table + example) + "\n").api
        assert api is not None
        self.assertEqual((api.host, api.port, api.token), ("127.0.0.1", 8080, DEMO_TOKEN))
        self.assertEqual(len(api.otherNodes), 1)

    def test_unknownKey(self) -> None:
        """A typo in ``[api]`` is an error naming the key."""
        with self.assertRaises(ConfigError) as caught:
            self.load("\n[api]\ntokn = 1\n")
        self.assertIn("api.tokn", str(caught.exception))
