"""Tests for `bench.media`: the PCMU SIPp streams, and counting the RTP that arrived."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench.media import RtpArrivals, pcmu

# /proc/net/udp with SIPp's two media sockets: 0x3400 bytes queued and 1234 dropped at the first.
TABLE = (
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops\n"
    "  100: 0200007F:7BD4 00000000:0000 07 00000000:00003400 00:00000000 00000000     0        0 5001 2 "
    "0000000000000000 1234\n"
    "  101: 0300007F:7B70 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5002 2 "
    "0000000000000000 0\n"
)


class PcmuTests(SynchronousTestCase):
    def test_packets(self) -> None:
        """PCMU silence: 160 bytes a packet, 50 packets a second, at least one packet."""
        self.assertEqual(pcmu(1.0), b"\xff" * 8000)
        self.assertEqual(len(pcmu(0.5)), 25 * 160)
        self.assertEqual(len(pcmu(0.001)), 160)


class RtpArrivalsTests(SynchronousTestCase):
    def test_queuedAndDropped(self) -> None:
        """Packets arrived: those dropped once the queue was full, plus those still queued (bytes each)."""
        arrivals = RtpArrivals((("127.0.0.2", 31700), ("127.0.0.3", 31600)), datagram=0x100)
        arrivals.sample(TABLE)
        self.assertEqual(arrivals.seen, {("127.0.0.2", 31700): 1234 + 0x34, ("127.0.0.3", 31600): 0})
        self.assertEqual(arrivals.total, 1234 + 0x34)

    def test_socketGone(self) -> None:
        """A socket gone (SIPp exited) keeps the most seen before: the counts never go down."""
        arrivals = RtpArrivals((("127.0.0.2", 31700),), datagram=0x100)
        arrivals.sample(TABLE)
        arrivals.sample(TABLE.splitlines()[0] + "\n")
        self.assertEqual(arrivals.total, 1234 + 0x34)
