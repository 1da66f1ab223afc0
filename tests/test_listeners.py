"""Tests for sbc.transport.listeners: sockets sized for floods, stream listeners wired to the gate."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from twisted.application import internet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.server import SIPServer
from sbc.transport import SIPStreamFactory, StreamConnections
from sbc.transport.listeners import RECEIVE_BUFFER, growReceiveBuffer, listenerServices
from tests.fakes import DEMO_TOML, writeConfig


class ReceiveBufferTests(SynchronousTestCase):
    def test_grown(self) -> None:
        """The UDP receive buffer grows past the default (to the limit the OS allows us)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        after = growReceiveBuffer(sock, RECEIVE_BUFFER)
        self.assertGreaterEqual(after, before)
        self.assertEqual(after, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


class StreamListenerTests(SynchronousTestCase):
    def test_streamFactoriesShareConnections(self) -> None:
        """TCP listeners get the shared open-connection registry and [sip] message_deadline."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        toml = DEMO_TOML.replace("t1 = 0.5", "t1 = 0.5\nmessage_deadline = 7") + (
            '\n[[listen]]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = 5060\n'
        )
        config = loadConfig(writeConfig(directory, toml))
        connections = StreamConnections()
        server = SIPServer(config, Clock())
        services = listenerServices(Clock(), config, server, Clock(), None, connections)
        (tcp,) = [s for s in services if isinstance(s, internet.TCPServer)]
        factory = tcp.args[1]
        assert isinstance(factory, SIPStreamFactory)
        self.assertIs(factory.connections, connections)
        self.assertEqual(factory.messageDeadline, 7.0)
