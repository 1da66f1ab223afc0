"""``twistd sbc``: command-line options and the service tree."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.application import internet, service, strports
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names import client
from twisted.python import usage
from twisted.web.server import Site

import sbc
from sbc.access import SYNC_INTERVAL, Bans
from sbc.calls.cdr import CDRWriter
from sbc.config import CallSettings, Config, MediaEngine, loadConfig
from sbc.config.api import APISettings
from sbc.config.errors import ConfigError
from sbc.interfaces import IMediaRelay
from sbc.media.ng import RtpengineClient
from sbc.media.ports import PortPool
from sbc.media.relay import MediaRelay
from sbc.media.rtpengine import RtpengineRelay
from sbc.media.sockets import QuietUDP
from sbc.ops.api import APISources, apiResource
from sbc.ops.permissions import exposedSecrets
from sbc.ops.reload import ConfigReloader
from sbc.ops.state import BanTable, loadSecret, openDatabase
from sbc.registrar.location import SQLiteLocationStore
from sbc.registrar.qualify import Qualifier
from sbc.routing import buildChain
from sbc.server import SIPServer
from sbc.transport import StreamConnections
from sbc.transport.listeners import SignalReload, listenerServices
from sbc.transport.tls import serverContextFactory

EXPIRY_INTERVAL = 30.0
GATEWAY_TICK = 1.0
# The start of the log line that says every listener is bound.
READY = "sbc started, listening on"

log = Logger()


class Options(usage.Options):
    """The ``twistd sbc`` command line: just the config file, checked before anything starts."""

    synopsis = "[options]"
    longdesc = (
        "Run the sbc SIP trunk gateway. Everything else (listeners, trunks and their whitelists, "
        "limits, TLS files) is in the config file; edit it and the whitelists it names while the "
        "SBC runs, and it reloads them (or send SIGHUP)."
    )
    optParameters = [
        ["config", "c", "etc/sbc.toml", "Path to the main configuration file (TOML)."],
    ]

    def postOptions(self) -> None:
        """Load the config, routing chain and TLS context now, so a wrong file is a usage error naming it."""
        try:
            config = loadConfig(self["config"])
            # The routing hook is loaded with the chain: a broken hook stops the start here too.
            self["chain"] = buildChain(config)
            self["tlsContext"] = serverContextFactory(config.tls) if config.tls is not None else None
        except ConfigError as e:
            message = str(e)
            if not Path(self["config"]).exists():
                message += (
                    f"\n  No config at {self['config']}. Write a commented starter config "
                    "(the loopback demo) with\n      sbc-ctl init DIR\n  then run\n"
                    "      twistd -n sbc --config DIR/sbc.toml\n"
                    "  (a packaged install keeps it in /etc/sbc: sbc-ctl init /etc/sbc)"
                )
            raise usage.UsageError(message) from None
        self["parsedConfig"] = config


class SBCService(service.MultiService):
    """The SBC's service tree. Stopping it ends every call (each gets its CDR), then every timer."""

    log = Logger()

    def __init__(
        self,
        server: SIPServer,
        clock: IReactorTime,
        cdrs: CDRWriter | None = None,
        relay: IMediaRelay | None = None,
    ) -> None:
        super().__init__()
        self.server = server
        self.clock = clock
        self.cdrs = cdrs
        self.relay = relay

    def startService(self) -> None:
        """Tune the garbage collector for call load, start every child, and log that the listeners are up."""
        # What lives from startup on (code, config, Twisted) never becomes garbage; what a call
        # leaves behind dies young. Freezing the startup heap and collecting the young
        # generation less often removes the full collections that, under load, stalled the
        # reactor long enough for peers to retransmit (measured: 0 instead of ~1% failed calls
        # at 250 CPS, and ~10% less CPU per call).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        if sbc.CODEC_COMPILED:
            self.log.info("SIP codec compiled by mypyc")
        else:
            self.log.info("SIP codec running as pure Python (`make compiled` makes it faster)")
        super().startService()
        # By now every listener is bound (twistd binds them before starting services, and exits
        # when one cannot be): say so once, for ops and for whatever waits for the SBC to be up.
        listeners = self.server.config.listeners
        listening = ", ".join(f"{item.transport} {item.host}:{item.port}" for item in listeners)
        self.log.info("{ready}: {listening}", ready=READY, listening=listening)

    def stopService(self) -> Deferred[None]:
        """Let calls drain for ``drainGrace`` seconds, end the rest, then stop timers, media and CDRs."""
        grace = self.server.config.calls.drainGrace
        d = self.server.calls.drain(self.clock, grace) if grace > 0 else succeed(None)

        def stop(_: object) -> Any:
            self.server.calls.releaseAll()
            result = super(SBCService, self).stopService()
            self.server.transactions.stop()
            if self.relay is not None:
                self.relay.close()
            if self.cdrs is not None:
                self.cdrs.close()
            return result

        return d.addCallback(stop)


def _timer(interval: float, call: Any, clock: Any) -> internet.TimerService:
    timer = internet.TimerService(interval, call)
    timer.clock = clock
    return timer


def mediaRelay(reactor: Any, config: Config) -> IMediaRelay:
    """The configured media engine: the built-in relay, or an rtpengine daemon."""
    media = config.media
    if media.engine is MediaEngine.RTPENGINE:
        return RtpengineRelay(RtpengineClient(reactor, reactor, media.rtpengine))
    return MediaRelay(
        QuietUDP(reactor),
        reactor,
        media.address,
        PortPool(media.portMin, media.portMax),
        timeout=media.timeout,
        relatchAfter=media.relatchAfter,
        forbidden=media.forbiddenNetworks(config.listeners),
        maxStreams=media.maxStreams,
    )


def dnsResolver(reactor: Any, config: Config) -> IResolver:
    """Where gateway names are resolved: ``[dns] servers`` only (no resolv.conf, so a test's
    loopback DNS server is the only one asked), else the system's resolv.conf and hosts file."""
    if config.dnsServers:
        return client.Resolver(servers=list(config.dnsServers), reactor=reactor)
    return cast(IResolver, client.createResolver())


def makeService(options: Options) -> service.MultiService:
    """Build the whole SBC on the real reactor: state, media, SIP server, listeners, timers and SIGHUP."""
    from twisted.internet import reactor  # the one place we take the real reactor

    config: Config = options["parsedConfig"]
    try:
        database = openDatabase(config.stateDirectory / "sbc.sqlite")
        secret = loadSecret(config.stateDirectory)
    except ConfigError as e:
        raise usage.UsageError(str(e)) from None
    except OSError as e:
        raise usage.UsageError(f"{config.stateDirectory}: cannot use the state directory: {e}") from None
    store = SQLiteLocationStore(reactor, database)
    # Open TCP/TLS connections by source: a ban, or a reload that refuses a source, closes its own.
    connections = StreamConnections()
    bans = Bans(reactor, config.bans, BanTable(database), onBan=connections.closeWhere)
    # The connection limit counts a source as bans do: an IPv6 source by its prefix.
    connections.sourceKey = bans.key
    cdrs = CDRWriter(
        config.calls.cdrPath or config.stateDirectory / CallSettings.cdrFile,
        threads=cast(IReactorThreads, reactor),
        clock=reactor,
    )
    relay = mediaRelay(reactor, config)
    server = SIPServer(
        config,
        reactor,
        store=store,
        bans=bans,
        secret=secret,
        cdrs=cdrs,
        relay=relay,
        closeConnections=connections.closeWhere,
        chain=options["chain"],
        resolver=dnsResolver(reactor, config),
    )
    top = SBCService(server, reactor, cdrs, relay)
    for child in listenerServices(reactor, config, server, reactor, options["tlsContext"], connections):
        child.setServiceParent(top)
    reloader = ConfigReloader(config, server.setConfig)
    _timer(config.whitelistPollInterval, reloader.poll, reactor).setServiceParent(top)
    _timer(EXPIRY_INTERVAL, store.expire, reactor).setServiceParent(top)
    # Gateway pings: each trunk's own ping_interval, checked once a second (a reload may change it).
    _timer(GATEWAY_TICK, server.gatewayWatch.tick, reactor).setServiceParent(top)
    # `sbc-ctl unban` deletes the ban's row; the running server notices here.
    _timer(SYNC_INTERVAL, bans.sync, reactor).setServiceParent(top)
    if config.registrar.qualifyInterval > 0:
        qualifier = Qualifier(server.registrar, server.transactions, config.sip.serverName)
        _timer(config.registrar.qualifyInterval, qualifier.qualifyAll, reactor).setServiceParent(top)
    SignalReload(reactor, onHangup(reloader, cdrs)).setServiceParent(top)
    if config.api is not None:
        sources = APISources(
            version=sbc.__version__,
            clock=reactor,
            started=reactor.seconds(),
            config=lambda: server.config,
            metrics=server.metrics,
            reloader=reloader,
            gatewayStates=server.gatewayWatch.states,
            trunkCalls=server.calls.limits.calls,
            bindings=store.all,
            calls=server.calls.active,
        )
        apiService(config.api, sources).setServiceParent(top)
    for warning in (*exposedSecrets(config), *config.warnings):
        log.warn("{warning}", warning=warning)
    return top


def apiService(settings: APISettings, sources: APISources) -> service.Service:
    """The HTTP API's listener (sbc.ops.api), on its own address."""
    interface = settings.host.replace(":", "\\:")
    site = Site(apiResource(settings, sources))
    return strports.service(f"tcp:{settings.port}:interface={interface}", site)


def onHangup(reloader: ConfigReloader, cdrs: CDRWriter) -> Callable[[], None]:
    """SIGHUP's work: reload the configuration, and start a new CDR file (after logrotate moved
    the old one; contrib/logrotate/sbc sends the signal)."""

    def hangup() -> None:
        reloader.reload()
        cdrs.reopen()

    return hangup
