"""Flood and scanner defence for device sources: a request rate that bans, and scanners dropped unheard.

Only device sources are screened: a trunk is never banned (its own limits hold it), and
strangers never get past the gate. Each request (and each unparsable message) counts once it
is framed, before the transaction layer; responses do not count, as a device sends them at our
pace. Past the rate the source is banned through `Bans`, so the ban is persisted, listed and
lifted (``sbc-ctl bans``/``unban``), closes the source's open connections exactly as an
authentication ban does, and the gate drops what follows at the cost of one dict lookup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from twisted.internet.interfaces import IReactorTime

from sbc.access import DEVICES, AccessPolicy, BanKind, Bans, BanSettings
from sbc.rates import Rate, SourceRates
from sbc.scanners import KNOWN_SCANNERS, ScannerFilter
from sbc.sip.headers import Headers

__all__ = ["DeviceScreen", "RequestLimit"]


class RequestLimit:
    """Counts each request from a device source; past ``[bans] request_rate`` the source is banned."""

    def __init__(self, clock: IReactorTime, settings: BanSettings, bans: Bans) -> None:
        self.clock = clock
        self.bans = bans
        self.banCount = 0
        # Bindings by source host (the location store's count, kept as REGISTERs come and go): a
        # source holding N gets N times the rate and burst, counted per address, so that an
        # office behind one NAT re-registering at once after an outage is not banned.
        self.registered: Mapping[str, int] = {}
        self._settings = settings
        self._rates: SourceRates | None = self._build(settings)

    @property
    def settings(self) -> BanSettings:
        """The rate in force; a reload that changes it starts every source afresh."""
        return self._settings

    @settings.setter
    def settings(self, settings: BanSettings) -> None:
        old = self._settings
        self._settings = settings
        if (old.requestRate, old.requestBurst) != (settings.requestRate, settings.requestBurst):
            self._rates = self._build(settings)

    @staticmethod
    def _build(settings: BanSettings) -> SourceRates | None:
        if settings.requestRate <= 0:
            return None
        return SourceRates(Rate(settings.requestRate, settings.requestBurst))

    def allow(self, host: str) -> bool:
        """Count one request from ``host``; False when it is one too many, and bans the source."""
        rates = self._rates
        if rates is None:
            return True
        devices = self.registered.get(host, 0)
        # An IPv6 source counts by its prefix, as bans do; one with registrations by its address.
        key = host if devices else self.bans.key(host)
        if rates.take(key, self.clock.seconds(), devices or 1):
            return True
        rates.forget(key)  # the ban holds it off now; a lifted or ended ban starts with a full bucket
        settings = self._settings
        self.banCount += 1
        self.bans.ban(
            host,
            settings.requestBanDuration,
            f"request rate: more than {settings.requestRate:g}/s (burst {settings.requestBurst})",
            BanKind.REQUEST_RATE,
        )
        return False


class DeviceScreen:
    """What a request from a device source must pass before a transaction: its rate, then the scanner filter.

    Trunk sources pass untouched, at the cost of one cached lookup. Drops are counted in
    ``counts`` (``rate_banned``, ``scanners_dropped``) and never logged per message.
    """

    def __init__(
        self,
        clock: IReactorTime,
        access: AccessPolicy,
        settings: BanSettings,
        bans: Bans,
        counts: Counter[str],
    ) -> None:
        self.access = access
        self.limit = RequestLimit(clock, settings, bans)
        self.scanners = ScannerFilter((*KNOWN_SCANNERS, *settings.scanners))
        self.counts = counts

    def update(self, access: AccessPolicy, settings: BanSettings) -> None:
        """Take a reloaded access policy and ``[bans]`` settings."""
        self.access = access
        self.limit.settings = settings
        self.scanners = ScannerFilter((*KNOWN_SCANNERS, *settings.scanners))

    def drops(self, headers: Headers | None, host: str) -> bool:
        """Whether the request from ``host`` goes unanswered (``headers`` None: it did not parse)."""
        peer = self.access.classify(host)  # a cached dict lookup: trunks pay only this
        # None: past the gate only as a removed trunk's source. A registrant's registrar is a
        # configured server, as a trunk's gateway is: never rate-banned (its calls would stop).
        if peer is None or peer.kind is not DEVICES:
            return False
        if not self.limit.allow(host):
            self.counts["rate_banned"] += 1
            return True
        if headers is None:
            return False
        agent = headers.get("user-agent") or headers.get("server")
        if agent is None or not self.scanners.isScanner(agent):
            return False
        self.counts["scanners_dropped"] += 1
        return True
