"""Call handling that is not per trunk: the ``[calls]``, ``[media]`` and ``[log]`` tables."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from netaddr import IPSet

from sbc.config.errors import ConfigError
from sbc.config.sip import Listener, isAddress, isWildcard, parseHostPort
from sbc.config.table import Table


class MediaEngine(StrEnum):
    """Where media is anchored: the built-in relay or an rtpengine daemon."""

    RELAY = "relay"
    RTPENGINE = "rtpengine"


class Fork(StrEnum):
    """How a user's phones ring: all at once, or one by one by q."""

    PARALLEL = "parallel"
    SEQUENTIAL = "sequential"


class Redirect(StrEnum):
    """What a callee's 3xx does: nothing reaches the caller but 480, or its Contact is routed."""

    REJECT = "reject"
    FOLLOW = "follow"


@dataclass(frozen=True)
class CallSettings:
    """Call handling that is not per trunk."""

    # The CDR file's name in the state directory unless [calls] cdr_file says otherwise.
    cdrFile: ClassVar[str] = "cdr.jsonl"
    cdrPath: Path | None = None
    # On shutdown, seconds to let calls finish before they are released with BYE.
    drainGrace: float = 0.0
    # Ring every binding of a user at once, or one by one, best q first.
    fork: Fork = Fork.PARALLEL
    # Timer C for calls to users: seconds of ringing before the caller gets 408.
    noAnswerTimeout: float = 180.0
    # A 3xx from a callee: the caller gets 480, or its Contact is routed.
    redirect: Redirect = Redirect.REJECT
    # The longest call allowed, unless its trunk says otherwise (no key of its own).
    maxCallLength: float = 4 * 3600.0


@dataclass(frozen=True)
class MediaSettings:
    """Where media is anchored: the built-in relay (default) or an rtpengine daemon."""

    engine: MediaEngine = MediaEngine.RELAY
    address: str = "127.0.0.1"
    portMin: int = 20000
    portMax: int = 29999
    timeout: float = 60.0
    rtpengine: tuple[str, int] = ("127.0.0.1", 2223)
    # The addresses rtpengine writes into SDP (its --interface), for peers' whitelists
    # (/media-resources, with port_min/port_max as its --port-min/--port-max); none: not listed.
    rtpengineMedia: tuple[str, ...] = ()
    # Seconds a latched media source must be silent before another allowed source may take over.
    relatchAfter: float = 2.0
    # Seconds the built-in relay lets datagrams gather after reading a batch, before it reads
    # again (sbc.media.poller): fewer wakeups under load, about this much added delay (at least a
    # millisecond: timers round up); 0: none. Read at start.
    readWindow: float = 0.001
    # Networks no SDP may send media to (488); "self" is the SBC's own addresses (the media
    # address and every listener host). Checked for either engine (sbc.media.targets).
    forbiddenTargets: tuple[str, ...] = ("self", "224.0.0.0/4", "ff00::/8", "0.0.0.0/8", "::/128")
    # m= lines one SDP may have (488 beyond).
    maxStreams: int = 8
    # Relay ports (four per stream) that the SDP of one trunk, or of one registered account, may
    # hold open at once (503 with Retry-After beyond).
    maxPortsPerTrunk: int = 4000
    maxPortsPerAccount: int = 64

    def forbiddenNetworks(self, listeners: tuple[Listener, ...] = ()) -> IPSet:
        """``forbiddenTargets`` as one set, "self" standing for ``address`` and the listener hosts."""
        networks: list[str] = []
        for entry in self.forbiddenTargets:
            if entry == "self":
                hosts = [self.address, *(listener.host for listener in listeners)]
                networks += [h.strip("[]") for h in hosts if isAddress(h.strip("[]"))]
            else:
                networks.append(entry)
        return IPSet(networks)


@dataclass(frozen=True)
class LogSettings:
    """What the SBC logs beyond errors and state changes."""

    # One line per call attempt at its end (sbc.calls.calllog).
    calls: bool = True


def loadCalls(top: Table, stateDirectory: Path) -> CallSettings:
    """The ``[calls]`` table; the CDR file is relative to the state directory."""
    table = top.table("calls")
    calls = CallSettings(
        redirect=table.choice("redirect", CallSettings.redirect),
        cdrPath=stateDirectory / table.get("cdr_file", str, CallSettings.cdrFile),
        drainGrace=table.number("drain_grace", CallSettings.drainGrace, minimum=0, maximum=3600),
        fork=table.choice("fork", CallSettings.fork),
        noAnswerTimeout=table.number(
            "no_answer_timeout", CallSettings.noAnswerTimeout, minimum=1, maximum=3600
        ),
    )
    table.done()
    return calls


def _rtpengineMedia(table: Table) -> tuple[str, ...]:
    """``rtpengine_media``: addresses only (what peers put on a whitelist)."""
    found = table.get("rtpengine_media", list, list(MediaSettings.rtpengineMedia))
    for entry in found:
        if not isinstance(entry, str) or not isAddress(entry.strip("[]")):
            raise table.error("rtpengine_media", f"{entry!r} is not an IP address")
    return tuple(entry.strip("[]") for entry in found)


def loadMedia(top: Table) -> MediaSettings:
    """The ``[media]`` table: the engine, the relay's address and ports, and what SDP may ask for."""
    table = top.table("media")
    path = table.path
    defaultEngine = "{}:{}".format(*MediaSettings.rtpengine)
    media = MediaSettings(
        engine=table.choice("engine", MediaSettings.engine),
        address=table.get("address", str, MediaSettings.address),
        portMin=table.integer("port_min", MediaSettings.portMin, minimum=1024, maximum=65534),
        portMax=table.integer("port_max", MediaSettings.portMax, minimum=1025, maximum=65535),
        timeout=table.number("timeout", MediaSettings.timeout, minimum=1, maximum=3600),
        rtpengine=parseHostPort(path, "media.rtpengine", table.get("rtpengine", str, defaultEngine)),
        rtpengineMedia=_rtpengineMedia(table),
        relatchAfter=table.number("relatch_after", MediaSettings.relatchAfter, minimum=0, maximum=3600),
        readWindow=table.number("read_window", MediaSettings.readWindow, minimum=0, maximum=0.02),
        forbiddenTargets=_forbiddenTargets(table),
        maxStreams=table.integer("max_streams", MediaSettings.maxStreams, minimum=1, maximum=64),
        maxPortsPerTrunk=table.integer(
            "max_ports_per_trunk", MediaSettings.maxPortsPerTrunk, minimum=4, maximum=1_000_000
        ),
        maxPortsPerAccount=table.integer(
            "max_ports_per_account", MediaSettings.maxPortsPerAccount, minimum=4, maximum=1_000_000
        ),
    )
    if media.portMax - media.portMin < 3:
        raise ConfigError(path, "the port range must hold at least two RTP/RTCP pairs", key="media.port_max")
    if isWildcard(media.address):
        # Written into every SDP as where to send media: 0.0.0.0 there means "on hold" (RFC 2543).
        raise ConfigError(
            path, "must be the one address peers send media to, not a wildcard", key="media.address"
        )
    table.done()
    return media


def loadLog(top: Table) -> LogSettings:
    """The ``[log]`` table."""
    table = top.table("log")
    log = LogSettings(calls=table.get("calls", bool, LogSettings.calls))
    table.done()
    return log


def _forbiddenTargets(table: Table) -> tuple[str, ...]:
    entries = table.get("forbidden_targets", list, list(MediaSettings.forbiddenTargets))
    for entry in entries:
        if not isinstance(entry, str) or (entry != "self" and not isAddress(entry)):
            raise ConfigError(
                table.path,
                f'must list "self" and networks (CIDR), not {entry!r}',
                key="media.forbidden_targets",
            )
    return tuple(entries)
