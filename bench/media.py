"""
The RTP side of the SIPp loads with media: the PCMU that SIPp streams, the media ports it sends
from, and how many of its packets arrived (L{RtpArrivals}).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.interop.ports import UDP, freePort, udpPortBound

from .procfs import udpSocket

# The PCMU file the RTP scenarios stream (8,000 bytes a second: 50 packets of 160 bytes), which the
# harness writes into each SIPp's directory.
RTP_FILE = "rtp.pcmu"
PCMU_BYTES_PER_SECOND = 8000
# An RTP packet of the file: a 12-byte header and 20 ms of PCMU.
RTP_PACKET = 12 + 160


@dataclass
class RtpArrivals:
    """
    The RTP packets that reached SIPp's media sockets, which SIPp never reads: each lies in the
    socket's receive queue (counted there in bytes of L{datagram} each) or, once the queue is full,
    was dropped by the kernel (counted by it); both from C{/proc/net/udp}.  The sockets go when SIPp
    exits, so L{sample} is called while it runs, and the packets of the last moments may be missed:
    a lower bound.

    @ivar sockets: the media sockets of the two SIPp processes.
    @ivar datagram: the bytes of receive queue that one RTP packet takes on this kernel.
    @ivar seen: the most packets seen at each socket so far.
    """

    sockets: tuple[tuple[str, int], ...]
    datagram: int
    seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def sample(self, table: str | None = None) -> None:
        """Read the sockets' counts now (from C{table}, the text of /proc/net/udp, when given)."""
        if table is None:
            try:
                table = Path("/proc/net/udp").read_text()
            except OSError:
                return
        for address in self.sockets:
            found = udpSocket(*address, table=table)
            if found is not None:
                queued, dropped = found
                self.seen[address] = max(self.seen.get(address, 0), dropped + queued // self.datagram)

    @property
    def total(self) -> int:
        """Packets that arrived at all the sockets."""
        return sum(self.seen.values())


def pcmu(seconds: float) -> bytes:
    """C{seconds} of PCMU silence, for SIPp's rtp_stream action: 50 packets of 160 bytes a second."""
    packets = max(1, round(seconds * PCMU_BYTES_PER_SECOND / 160))
    return b"\xff" * (packets * 160)


def mediaPort(host: str, avoid: Sequence[int] = ()) -> int:
    """An even port on C{host} free right now, with the port two above it free too (SIPp binds both)."""
    for _ in range(50):
        port = freePort(host, (UDP,), avoid=avoid)
        port -= port % 2
        if port not in avoid and not udpPortBound(host, port) and not udpPortBound(host, port + 2):
            return port
    raise RuntimeError(f"no media port pair free on {host}")


__all__ = ["PCMU_BYTES_PER_SECOND", "RTP_FILE", "RTP_PACKET", "RtpArrivals", "mediaPort", "pcmu"]
