"""sbc: a SIP trunk gateway (session border controller) on Twisted."""

__version__ = "0.1.0"
