"""The SIP transports: protocols that gate and frame bytes, and the services that listen with them."""

from sbc.transport.datagram import Controller, SIPDatagramProtocol
from sbc.transport.stream import GateFactory, SIPStreamFactory, SIPStreamProtocol, StreamConnections

__all__ = [
    "Controller",
    "GateFactory",
    "SIPDatagramProtocol",
    "SIPStreamFactory",
    "SIPStreamProtocol",
    "StreamConnections",
]
