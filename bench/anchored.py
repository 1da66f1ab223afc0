"""
The anchored-media rows (issue 19): systems whose calls' RTP goes through a relay, measured with the
same criteria as the others and with SIPp sending real RTP (see L{bench.sipp.CallLoad.rtpSeconds}).

  - sbc with its built-in relay (L{anchoredSystems} builds it from L{bench.systems.Sbc});
  - L{SbcRtpengine}: sbc with C{[media] engine = "rtpengine"}, beside an rtpengine daemon;
  - L{KamailioRtpengine}: Kamailio + topoh + the rtpengine module (C{bench/kamailio_rtpengine.cfg}),
    beside the same kind of daemon.

The daemon starts with the system and stops with it (so a restart after a failed ramp step starts
both afresh), and its CPU time and memory count with the system's (L{System.mediaPid}).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .rtpengine import SYSTEM_PORTS, Rtpengine, rtpengineVersion
from .systems import Kamailio, Media, Sbc, System

# Where the relay binds its media ports on the relay row's own address: as wide as rtpengine's.
RELAY_PORTS = SYSTEM_PORTS
# The rows' keys (for --only, the JSON and the report), in the table's order.
RELAY, RTPENGINE, KAMAILIO = ANCHORED = ("sbc-relay", "sbc-rtpengine", "kamailio-topoh-rtpengine")


class _WithRtpengine(System):
    """A system started after, and stopped before, an rtpengine daemon of its own."""

    daemon: Rtpengine | None = None

    def startDaemon(self) -> tuple[str, int]:
        """Start the daemon; its ng address."""
        self.daemon = Rtpengine(SYSTEM_PORTS)
        return self.daemon.ng

    def start(self, calleePort: int) -> tuple[str, int]:
        self.useDaemon(self.startDaemon())
        try:
            return super().start(calleePort)
        except BaseException:
            self.stopDaemon()
            raise

    def useDaemon(self, ng: tuple[str, int]) -> None:
        """Point the system's config at the daemon's ng address."""

    @property
    def mediaPid(self) -> int | None:
        return None if self.daemon is None else self.daemon.pid

    def relayedPackets(self) -> int | None:
        """Packets the daemon relayed since it started (its ng statistics), or C{None} if it cannot say."""
        if self.daemon is None:
            return None
        try:
            reply = self.daemon.command({"command": "statistics"})
        except (OSError, ValueError):
            return None
        return relayedPackets(reply)

    def stop(self) -> None:
        super().stop()
        self.stopDaemon()

    def stopDaemon(self) -> None:
        """Stop the daemon, if it runs."""
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def withRtpengine(self, version: str) -> str:
        """The version column: the system's, and the daemon's."""
        engine = f"rtpengine {rtpengineVersion()}".strip()
        return f"{version}; {engine}" if version else engine


class SbcRtpengine(_WithRtpengine, Sbc):
    """sbc anchoring media in an rtpengine daemon over ng."""

    def __init__(self, python: Path) -> None:
        super().__init__(
            python,
            label="sbc, media through rtpengine (ng)",
            key=RTPENGINE,
            host="127.0.0.13",
            media=Media.RTPENGINE,
        )

    def useDaemon(self, ng: tuple[str, int]) -> None:
        self.rtpengine = ng

    def version(self) -> str:
        return self.withRtpengine(super().version())


class KamailioRtpengine(_WithRtpengine, Kamailio):
    """Kamailio + topoh + the rtpengine module, driving an rtpengine daemon over ng."""

    configName = "kamailio_rtpengine.cfg"

    def __init__(self) -> None:
        super().__init__(topoh=True)
        self.key = KAMAILIO
        self.label = "Kamailio + topoh + rtpengine"
        self.host = "127.0.0.11"
        self.sendsRtp = True
        self.ng: tuple[str, int] | None = None

    def useDaemon(self, ng: tuple[str, int]) -> None:
        self.ng = ng

    def defines(self, calleePort: int) -> list[str]:
        assert self.ng is not None
        # The rtpengine config has topoh built in: no WITH_TOPOH define.
        return [
            *(line for line in super().defines(calleePort) if "WITH_TOPOH" not in line),
            f'#!substdef "!RTPENGINE_SOCK!udp:{self.ng[0]}:{self.ng[1]}!g"\n',
        ]

    def version(self) -> str:
        return self.withRtpengine(super().version())


def relayedPackets(reply: Mapping[str, Any]) -> int | None:
    """The total of relayed packets in an ng C{statistics} reply, or C{None} when it has none."""
    statistics = reply.get("statistics")
    if not isinstance(statistics, dict):
        return None
    total = statistics.get(b"totalstatistics")
    if not isinstance(total, dict):
        return None
    packets = total.get(b"relayedpackets")
    return packets if isinstance(packets, int) else None


def anchoredSystems(python: Path) -> list[System]:
    """The three anchored-media rows, in the table's order."""
    return [
        Sbc(
            python,
            label="sbc, media through the built-in relay",
            key=RELAY,
            host="127.0.0.12",
            media=Media.RELAY,
            mediaPorts=RELAY_PORTS,
        ),
        SbcRtpengine(python),
        KamailioRtpengine(),
    ]


__all__ = [
    "ANCHORED",
    "KAMAILIO",
    "RELAY",
    "RTPENGINE",
    "KamailioRtpengine",
    "SbcRtpengine",
    "anchoredSystems",
    "relayedPackets",
]
