"""The HTTP API (twisted.web): public ``/media-resources``; status, trunks, registrations, reload and
Prometheus metrics behind a bearer token.

Everything the API shows is passed in as `APISources`; it never reaches into the SIP server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sbc.addresses import hostport
from sbc.calls.call import Call
from sbc.config import Config, MediaEngine
from sbc.config.api import APISettings
from sbc.ops.metrics import Metrics
from sbc.ops.reload import ConfigReloader
from sbc.registrant.status import RegistrantStatus
from sbc.registrar.location import Binding

JSON = b"application/json"
# Counter and gauge names as sbc.ops.metrics keeps them: ``name`` or ``name{label="value",...}``.
_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')


@dataclass(frozen=True)
class APISources:
    """What the API reads, each handed in by the service that owns it."""

    version: str
    clock: IReactorTime
    started: float
    config: Callable[[], Config]
    metrics: Metrics
    reloader: ConfigReloader
    # Trunk name -> gateway -> "up" or "down" (sbc.routing.gateways.GatewayWatch.states).
    gatewayStates: Callable[[], dict[str, dict[str, str]]]
    # Calls in progress with a trunk, by name (sbc.calls.limits.TrunkCounters.calls).
    trunkCalls: Callable[[str], int]
    # Every binding in the location store.
    bindings: Callable[[], Deferred[list[Binding]]]
    # The calls in progress (sbc.calls.manager.CallManager.active).
    calls: Callable[[], Iterable[Call]]
    # Our registrations to peers' registrars (sbc.registrant.RegistrantService.statuses).
    registrants: Callable[[], Iterable[RegistrantStatus]] = lambda: ()


def apiResource(settings: APISettings, sources: APISources) -> Resource:
    """The API's resource tree: ``/media-resources`` for anyone, the rest behind the token."""
    root = Resource()
    root.putChild(b"media-resources", MediaResources(sources.config))
    token = settings.token
    root.putChild(b"status", Status(token, sources))
    root.putChild(b"trunks", Trunks(token, sources))
    root.putChild(b"registrations", Registrations(token, sources))
    root.putChild(b"calls", Calls(token, sources.calls))
    root.putChild(b"registrants", Registrants(token, sources))
    root.putChild(b"reload", Reload(token, sources))
    root.putChild(b"metrics", PrometheusMetrics(token, sources.metrics))
    return root


def _json(request: Request, body: object, code: int = http.OK) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON)
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def mediaResources(config: Config, withSbcs: bool = True, withMediaservers: bool = True) -> dict[str, Any]:
    """Our signalling and media addresses (and the other nodes'), from config only: nothing secret."""
    body: dict[str, Any] = {}
    if withSbcs:
        own = [
            {
                "transport": str(item.transport).lower(),
                "address": item.advertise or item.host,
                "port": item.port,
            }
            for item in config.listeners
        ]
        sbcs: list[dict[str, Any]] = [{"node": "self", "signalling": own}]
        for i, node in enumerate(config.api.otherNodes if config.api is not None else ()):
            signalling = []
            for entry in node.signalling:
                transport, _, hostport = entry.partition(":")
                host, _, port = hostport.rpartition(":")
                signalling.append(
                    {"transport": transport, "address": host.strip("[]"), "port": int(port or 0)}
                )
            sbcs.append({"node": f"other-{i + 1}", "signalling": signalling})
        body["sbcs"] = sbcs
    if withMediaservers:
        media = config.media
        servers: list[dict[str, Any]] = []
        if media.engine is MediaEngine.RTPENGINE:
            # rtpengine's advertised media addresses; never its ng control socket, which is ours.
            for address in media.rtpengineMedia:
                servers.append(
                    {"node": "self", "address": address, "port_min": media.portMin, "port_max": media.portMax}
                )
        else:
            servers.append(
                {
                    "node": "self",
                    "address": media.address,
                    "port_min": media.portMin,
                    "port_max": media.portMax,
                }
            )
        for i, node in enumerate(config.api.otherNodes if config.api is not None else ()):
            for address in node.media:
                servers.append(
                    {
                        "node": f"other-{i + 1}",
                        "address": address,
                        "port_min": node.portMin,
                        "port_max": node.portMax,
                    }
                )
        body["mediaservers"] = servers
    return body


class MediaResources(Resource):
    """``GET /media-resources``: public, JSON with an ETag; ``with_sbcs`` / ``with_mediaservers``."""

    isLeaf = True

    def __init__(self, config: Callable[[], Config]) -> None:
        super().__init__()
        self.config = config

    def render_GET(self, request: Request) -> bytes:
        """The JSON, or 304 when the client's If-None-Match is still current, or 400 on a bad filter."""
        try:
            withSbcs = _flag(request, b"with_sbcs")
            withMediaservers = _flag(request, b"with_mediaservers")
        except ValueError as e:
            return _json(request, {"error": str(e)}, http.BAD_REQUEST)
        body = json.dumps(mediaResources(self.config(), withSbcs, withMediaservers), sort_keys=True).encode()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        request.setHeader(b"etag", etag)
        request.setHeader(b"content-type", JSON)
        wanted = request.getHeader(b"if-none-match")
        if wanted is not None and etag in (tag.strip().removeprefix(b"W/") for tag in wanted.split(b",")):
            request.setResponseCode(http.NOT_MODIFIED)
            return b""
        request.setResponseCode(http.OK)
        return body + b"\n"


def _flag(request: Request, name: bytes) -> bool:
    values = (request.args or {}).get(name)
    if not values:
        return True
    value = values[-1].lower()
    if value in (b"true", b"1"):
        return True
    if value in (b"false", b"0"):
        return False
    raise ValueError(f"{name.decode()} must be true or false")


class OpsResource(Resource):
    """A leaf that answers only a request bearing the configured token (401 otherwise, or with none set)."""

    isLeaf = True

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self._token = None if token is None else token.encode()

    def authorised(self, request: Request) -> bool:
        """Whether the request bears our token, compared in constant time."""
        header = request.getHeader(b"authorization") or b""
        scheme, _, given = header.partition(b" ")
        if self._token is None or scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(given.strip(), self._token)

    def render(self, request: Request) -> Any:
        """401 with a Bearer challenge unless authorised; then the method's own answer."""
        if not self.authorised(request):
            request.setHeader(b"www-authenticate", b'Bearer realm="sbc"')
            return _json(request, {"error": "a valid bearer token is needed"}, http.UNAUTHORIZED)
        return super().render(request)


class Status(OpsResource):
    """``GET /status``: version, uptime, config generation and the last reload's outcome."""

    def __init__(self, token: str | None, sources: APISources) -> None:
        super().__init__(token)
        self.sources = sources

    def render_GET(self, request: Request) -> bytes:
        """The status as JSON."""
        s, reloader = self.sources, self.sources.reloader
        lastReload = {
            "ok": reloader.lastError is None,
            "changes": list(reloader.lastChanges),
            "error": reloader.lastError,
        }
        return _json(
            request,
            {
                "version": s.version,
                "uptime": round(s.clock.seconds() - s.started, 3),
                "config_generation": reloader.generation,
                "reload_failures": reloader.failures,
                "last_reload": lastReload if reloader.generation > 1 or reloader.failures else None,
            },
        )


class Trunks(OpsResource):
    """``GET /trunks``: per trunk its whitelist size, limits, calls now and gateway states; refusals."""

    def __init__(self, token: str | None, sources: APISources) -> None:
        super().__init__(token)
        self.sources = sources

    def render_GET(self, request: Request) -> bytes:
        """The trunks as JSON."""
        states = self.sources.gatewayStates()
        counts = self.sources.metrics.snapshot()
        trunks = [
            {
                "name": trunk.name,
                "whitelist_entries": len(trunk.whitelistEntries),
                "limits": {
                    "max_cps": trunk.limits.maxCps,
                    "cps_burst": trunk.limits.cpsBurst,
                    "max_calls": trunk.limits.maxCalls,
                },
                "calls": self.sources.trunkCalls(trunk.name),
                "gateways": states.get(trunk.name, {}),
            }
            for trunk in self.sources.config().trunks
        ]
        refused = {name: value for name, value in sorted(counts.items()) if name.startswith("trunk_refused_")}
        return _json(request, {"trunks": trunks, "refused": refused})


class Registrations(OpsResource):
    """``GET /registrations``: every binding of the location store."""

    def __init__(self, token: str | None, sources: APISources) -> None:
        super().__init__(token)
        self.sources = sources

    def render_GET(self, request: Request) -> object:
        """The bindings as JSON, once the store has answered."""
        now = self.sources.clock.seconds()

        def write(bindings: list[Binding]) -> None:
            rows = [
                {
                    "aor": b.aor,
                    "contact": b.contact,
                    "expires_in": b.remaining(now),
                    "transport": b.transport,
                    "source": f"{b.source[0]}:{b.source[1]}",
                    "user_agent": b.userAgent,
                }
                for b in bindings
                if b.isLive(now)
            ]
            request.write(_json(request, {"registrations": rows}))
            request.finish()

        def failed(reason: Failure) -> None:
            request.write(_json(request, {"error": reason.getErrorMessage()}, http.INTERNAL_SERVER_ERROR))
            request.finish()

        self.sources.bindings().addCallbacks(write, failed)
        return NOT_DONE_YET


def callSummaries(calls: Iterable[Call]) -> list[dict[str, Any]]:
    """Calls as ``/calls`` lists them: id, caller, From and To, state, start and answer times."""
    return [
        {
            "id": call.id,
            "caller": call.record.aLeg.toJSON(),
            "from": call.record.fromUri,
            "to": call.record.toUri,
            "state": call.state.name.lower(),
            "start": call.record.start,
            "answer": call.record.answer,
        }
        for call in calls
    ]


class Calls(OpsResource):
    """``GET /calls``: the calls in progress."""

    def __init__(self, token: str | None, calls: Callable[[], Iterable[Call]]) -> None:
        super().__init__(token)
        self.calls = calls

    def render_GET(self, request: Request) -> bytes:
        """The calls as JSON."""
        return _json(request, {"calls": callSummaries(self.calls())})


def registrantSummaries(statuses: Iterable[RegistrantStatus], now: float) -> list[dict[str, Any]]:
    """Registrations as ``/registrants`` lists them; times as seconds from ``now``."""
    return [
        {
            "name": s.name,
            "registrar": s.registrar,
            "aor": s.aor,
            "state": str(s.state),
            "up": s.isUp(now),
            "last_code": s.lastCode,
            "last_reason": s.lastReason,
            "next_attempt_in": None if s.nextAttempt is None else round(max(s.nextAttempt - now, 0.0), 1),
            "expires_in": None
            if s.registeredUntil is None or s.registeredUntil <= now
            else round(s.registeredUntil - now, 1),
            "destination": None if s.destination is None else hostport(s.destination),
            "failures": s.failures,
        }
        for s in statuses
    ]


class Registrants(OpsResource):
    """``GET /registrants``: our registrations to peers' registrars, with state and last answer."""

    def __init__(self, token: str | None, sources: APISources) -> None:
        super().__init__(token)
        self.sources = sources

    def render_GET(self, request: Request) -> bytes:
        """The registrations as JSON."""
        now = self.sources.clock.seconds()
        return _json(request, {"registrants": registrantSummaries(self.sources.registrants(), now)})


class Reload(OpsResource):
    """``POST /reload``: the same reload as SIGHUP; the changes, or the error with 400."""

    def __init__(self, token: str | None, sources: APISources) -> None:
        super().__init__(token)
        self.reloader = sources.reloader

    def render_POST(self, request: Request) -> bytes:
        """Reload now and say what changed, or why nothing did."""
        if self.reloader.reload():
            return _json(request, {"reloaded": True, "changes": list(self.reloader.lastChanges)})
        return _json(request, {"reloaded": False, "error": self.reloader.lastError}, http.BAD_REQUEST)


class MetricsCollector(Collector):
    """Reads our counters and gauges at scrape time: nothing is counted twice on the message path."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per name, labels parsed from ``name{label="value"}``."""
        yield from _families(self.metrics.counters(), CounterMetricFamily)
        yield from _families({name: read() for name, read in self.metrics.gauges.items()}, GaugeMetricFamily)


def _families(
    values: dict[str, int], kind: type[CounterMetricFamily] | type[GaugeMetricFamily]
) -> Iterator[Metric]:
    grouped: dict[str, list[tuple[dict[str, str], int]]] = {}
    for key, value in values.items():
        match = _NAME.match(key)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        grouped.setdefault(match.group(1), []).append((labels, value))
    for name, samples in sorted(grouped.items()):
        labelNames = sorted({label for labels, _ in samples for label in labels})
        family = kind(f"sbc_{name}", f"sbc {name.replace('_', ' ')}", labels=labelNames)
        for labels, value in samples:
            family.add_metric([labels.get(label, "") for label in labelNames], value)
        yield family


class PrometheusMetrics(OpsResource):
    """``GET /metrics``: the Prometheus text format, by prometheus_client."""

    def __init__(self, token: str | None, metrics: Metrics) -> None:
        super().__init__(token)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsCollector(metrics))

    def render_GET(self, request: Request) -> bytes:
        """Every counter and gauge now."""
        request.setResponseCode(http.OK)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)
