"""Tests for sbc.listeners: sockets sized for floods."""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from sbc.listeners import RECEIVE_BUFFER, growReceiveBuffer


class ReceiveBufferTests(SynchronousTestCase):
    def test_grown(self) -> None:
        """The UDP receive buffer grows past the default (to the limit the OS allows us)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        after = growReceiveBuffer(sock, RECEIVE_BUFFER)
        self.assertGreaterEqual(after, before)
        self.assertEqual(after, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
