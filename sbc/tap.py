"""``twistd sbc``: command-line options and the service tree."""

from __future__ import annotations

import contextlib
import gc
import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.application import internet, service, strports
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime, IReactorUDP, IResolver
from twisted.logger import Logger
from twisted.names import client, dns, resolve
from twisted.names.hosts import Resolver as hostsResolver
from twisted.python import usage
from twisted.web.server import Site

import sbc
from sbc.access import SYNC_INTERVAL, Bans
from sbc.calls.cdr import CDRWriter
from sbc.config import CallSettings, Config, MediaEngine, Transport, loadConfig
from sbc.config.api import APISettings
from sbc.config.errors import ConfigError
from sbc.config.sip import isWildcard
from sbc.interfaces import IMediaRelay, ISIPTransport
from sbc.locate import Hop
from sbc.media.ng import RtpengineClient
from sbc.media.poller import pollerFor
from sbc.media.ports import PortPool
from sbc.media.relay import MediaRelay, sparePairs
from sbc.media.rtpengine import RtpengineRelay
from sbc.media.sockets import QuietUDP
from sbc.ops.api import APISources, apiResource
from sbc.ops.metrics import Metrics
from sbc.ops.permissions import exposedSecrets
from sbc.ops.reload import ConfigReloader
from sbc.ops.state import BanTable, loadSecret, openDatabase
from sbc.registrant import RegistrantService
from sbc.registrar.location import SQLiteLocationStore
from sbc.registrar.qualify import Qualifier
from sbc.routing import buildChain
from sbc.server import SIPServer
from sbc.transport import StreamConnections
from sbc.transport.listeners import SignalReload, listenerServices
from sbc.transport.outbound import OutboundStreams
from sbc.transport.tls import clientTLS, serverContextFactory

EXPIRY_INTERVAL = 30.0
# Seconds to wait for a DNS answer, per try: a dead server costs a lookup four seconds, not
# twisted.names' default minute (1, 3, 11, 45); the lookup's Deferred fails then.
DNS_TIMEOUT = (1, 3)
RESOLV_CONF = Path("/etc/resolv.conf")
HOSTS = Path("/etc/hosts")
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
            # How TLS to gateways is opened: verifying each one's name, showing our certificate.
            self["clientTLS"] = clientTLS(config.tls)
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
        warmUp: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self.server = server
        self.clock = clock
        self.cdrs = cdrs
        self.relay = relay
        # The built-in relay's `MediaRelay.warmUp`: its idle pairs bound at start.
        self.warmUp = warmUp
        # Our registrations to peers (a child service too): unregistered first on stop, while
        # the listeners still run to hear the answers.
        self.registrants: RegistrantService | None = None

    def startService(self) -> None:
        """Tune the garbage collector for call load, start every child, and log that the listeners are up."""
        # What lives from startup on (code, config, Twisted) never becomes garbage; what a call
        # leaves behind dies young. Freezing the startup heap and collecting the young
        # generation less often removes the full collections that, under load, stalled the
        # reactor long enough for peers to retransmit (measured: 0 instead of ~1% failed calls
        # at 250 CPS, and ~10% less CPU per call).
        if self.warmUp is not None:
            # Bound before the freeze: most idle pairs live as long as the process.
            self.log.info("media relay: {pairs} idle port pairs bound", pairs=self.warmUp())
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
        if self.registrants is not None:
            # Beside the drain, bounded (sbc.registrant.service.STOP_BOUND): never a hang.
            d = gatherResults([self.registrants.stopService(), d], consumeErrors=True).addCallback(
                lambda _: None
            )

        def stop(_: object) -> Any:
            self.server.calls.releaseAll()
            result = super(SBCService, self).stopService()
            self.server.transactions.stop()
            streams = self.server.gateways.streams
            # The BYEs releaseAll wrote to TCP/TLS gateways are flushed before those connections close.
            flushed = streams.stop() if streams is not None else succeed(None)
            if self.relay is not None:
                self.relay.close()
            if self.cdrs is not None:
                self.cdrs.close()
            return gatherResults([maybeDeferred(lambda: result), flushed], consumeErrors=True).addCallback(
                lambda _: None
            )

        return d.addCallback(stop)


def _timer(interval: float, call: Any, clock: Any) -> internet.TimerService:
    timer = internet.TimerService(interval, call)
    timer.clock = clock
    return timer


def mediaRelay(reactor: Any, config: Config, udp: IReactorUDP | None = None) -> IMediaRelay:
    """The configured media engine: the built-in relay (binding through ``udp``, by default
    `QuietUDP` on ``reactor``), or an rtpengine daemon.

    The relay gets no forbidden networks nor stream cap: the call layer checks every SDP against
    the configuration of the moment, for either engine, and a reload changes those.
    """
    media = config.media
    if media.engine is MediaEngine.RTPENGINE:
        return RtpengineRelay(RtpengineClient(reactor, reactor, media.rtpengine))
    pool = PortPool(media.portMin, media.portMax)
    return MediaRelay(
        QuietUDP(pollerFor(reactor, reactor, media.readWindow) or reactor) if udp is None else udp,
        reactor,
        media.address,
        pool,
        timeout=media.timeout,
        relatchAfter=media.relatchAfter,
        forbidden=None,
        maxStreams=None,
        spare=sparePairs(pool.capacity),  # ended calls' pairs stay bound for the next calls
    )


def relayGauges(relay: IMediaRelay, metrics: Metrics) -> None:
    """The built-in relay's gauges: ``media_idle_pairs``, the pairs bound for no call (each holds
    two sockets: with no call up, the range holds exactly twice as many bound ports)."""
    if isinstance(relay, MediaRelay):
        metrics.gauge("media_idle_pairs", lambda: relay.idlePairs)


def raiseFileLimit() -> tuple[int, int]:
    """Raise the open-file soft limit to the hard one (a shell's 1024 would starve the relay's idle
    pairs and calls: each relayed stream holds four descriptors); returns (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(OSError, ValueError):  # else kept: sparePairs sizes idle pairs by it
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def outboundStreams(
    reactor: Any, config: Config, server: SIPServer, tls: Callable[[str], Any] | None
) -> OutboundStreams:
    """Our TCP/TLS connections to gateways: Via and Contact name the listener of the same transport."""
    streams = [item for item in config.listeners if item.transport is not Transport.UDP]
    local = {item.transport: (item.advertise or item.host, item.port) for item in streams}
    # Connections leave from the listener's own address when it names one (not a wildcard).
    bind = {item.transport: item.host for item in streams if not isWildcard(item.host)}
    sip = config.sip
    return OutboundStreams(
        reactor,
        reactor,
        server,
        local,
        sip.idleTimeout,
        sip.limits.maxMessageSize,
        clientTLS=tls,
        onFailure=server.transactions.transportFailed,
        messageDeadline=sip.messageDeadline,
        bindHosts=bind,
    )


def nameservers(path: Path) -> list[tuple[str, int]]:
    """The ``nameserver`` lines of a resolv.conf(5) file; the local server when it names none
    (or is missing), as the C library does."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    words = [line.split() for line in lines]
    found = [(line[1], dns.PORT) for line in words if len(line) > 1 and line[0] == "nameserver"]
    return found or [("127.0.0.1", dns.PORT)]


def dnsResolver(
    reactor: Any, config: Config, resolvconf: Path = RESOLV_CONF, hosts: Path = HOSTS
) -> IResolver:
    """Where gateway names are resolved: ``[dns] servers`` only (no resolv.conf, so a test's
    loopback DNS server is the only one asked), else the hosts file, then the servers that
    resolv.conf names (read once, at start: no timer re-reads it). Either way on ``reactor``,
    with short time-outs (`DNS_TIMEOUT`), and no cache of its own (sbc.locate keeps one)."""
    if config.dnsServers:
        return client.Resolver(servers=list(config.dnsServers), reactor=reactor, timeout=DNS_TIMEOUT)
    upstream = client.Resolver(servers=nameservers(resolvconf), reactor=reactor, timeout=DNS_TIMEOUT)
    return cast(IResolver, resolve.ResolverChain([hostsResolver(os.fsencode(hosts)), upstream]))


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
    soft, _ = raiseFileLimit()  # before the relay sizes its idle pairs by it
    log.info("open-file limit {limit}", limit="unlimited" if soft == resource.RLIM_INFINITY else soft)
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
    server.gateways.streams = outboundStreams(reactor, config, server, options.get("clientTLS"))
    relayGauges(relay, server.metrics)
    top = SBCService(
        server, reactor, cdrs, relay, warmUp=relay.warmUp if isinstance(relay, MediaRelay) else None
    )
    for child in listenerServices(reactor, config, server, reactor, options["tlsContext"], connections):
        child.setServiceParent(top)
    # Our registrations to peers' registrars: started after the listeners (the UDP socket they
    # send from), told of each reload after the server has taken it.
    registrants = RegistrantService(
        config.registrants,
        reactor,
        server.transactions,
        server.gateways.locator.locate,
        registrantTransport(server),
        userAgent=config.sip.serverName,
        gauges=server.metrics.gauges,
        secret=server.registrars.secret,  # the inbound match derives the same Contact users
    )
    registrants.setServiceParent(top)
    top.registrants = registrants
    reloader = ConfigReloader(config, applyConfig(server, registrants))
    _timer(config.whitelistPollInterval, reloader.poll, reactor).setServiceParent(top)
    _timer(EXPIRY_INTERVAL, store.expire, reactor).setServiceParent(top)
    # Gateway pings: each trunk's own ping_interval, checked once a second (a reload may change it).
    _timer(GATEWAY_TICK, server.gatewayWatch.tick, reactor).setServiceParent(top)
    _timer(GATEWAY_TICK, server.registrars.tick, reactor).setServiceParent(top)  # their names' addresses
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
            registrants=registrants.statuses,
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


def registrantTransport(server: SIPServer) -> Callable[[Hop], ISIPTransport | None]:
    """Where a registrant's REGISTERs leave: the UDP listener's socket, or our TCP or TLS
    connection to the registrar (its certificate must prove the name the registrar is known by)."""

    def transportFor(hop: Hop) -> ISIPTransport | None:
        if hop.transport is Transport.UDP:
            return server.calls.legs.datagram
        streams = server.gateways.streams
        return None if streams is None else streams.stream(hop.transport, (hop.host, hop.port), hop.name)

    return transportFor


def applyConfig(server: SIPServer, registrants: RegistrantService) -> Callable[[Config], None]:
    """What a reload applies: the server first (it may refuse the config), then the registrants."""

    def apply(config: Config) -> None:
        server.setConfig(config)
        registrants.setConfig(config)

    return apply


def onHangup(reloader: ConfigReloader, cdrs: CDRWriter) -> Callable[[], None]:
    """SIGHUP's work: reload the configuration, and start a new CDR file (after logrotate moved
    the old one; contrib/logrotate/sbc sends the signal)."""

    def hangup() -> None:
        reloader.reload()
        cdrs.reopen()

    return hangup
