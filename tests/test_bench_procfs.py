"""Tests for `bench.procfs`: a UDP socket's receive queue and drops, from /proc/net/udp."""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from bench.procfs import datagramSize, udpDrops, udpSocket

# Two sockets as /proc/net/udp lists them: 127.0.0.2:31700 with 0x3400 bytes queued and 1234 drops,
# 127.0.0.3:31600 with nothing queued.
TABLE = (
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops\n"
    "  100: 0200007F:7BD4 00000000:0000 07 00000000:00003400 00:00000000 00000000     0        0 5001 2 "
    "0000000000000000 1234\n"
    "  101: 0300007F:7B70 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5002 2 "
    "0000000000000000 0\n"
)


class UdpSocketTests(SynchronousTestCase):
    def test_queueAndDrops(self) -> None:
        """The receive queue (hexadecimal bytes) and the drops of the socket bound to an address."""
        self.assertEqual(udpSocket("127.0.0.2", 31700, table=TABLE), (0x3400, 1234))
        self.assertEqual(udpSocket("127.0.0.3", 31600, table=TABLE), (0, 0))

    def test_absent(self) -> None:
        """No socket bound there: none (a port that only appears as a remote address does not count)."""
        self.assertIsNone(udpSocket("127.0.0.2", 31600, table=TABLE))
        self.assertIsNone(udpSocket("127.0.0.1", 31700, table=TABLE))

    def test_live(self) -> None:
        """A socket of this process is found in the kernel's own table, its drops too."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))
            port = sock.getsockname()[1]
            self.assertEqual(udpSocket("127.0.0.2", port), (0, 0))
            self.assertEqual(udpDrops("127.0.0.2", port), 0)


class DatagramSizeTests(SynchronousTestCase):
    def test_atLeastPayload(self) -> None:
        """A queued datagram takes at least its payload, and bigger datagrams take more."""
        small = datagramSize("127.0.0.2", 172)
        self.assertGreaterEqual(small, 172)
        self.assertGreater(datagramSize("127.0.0.2", 4000), small)

    def test_loopbackOnly(self) -> None:
        """Only a loopback address is probed."""
        self.assertRaises(ValueError, datagramSize, "192.0.2.1", 172)
