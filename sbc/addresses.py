"""Addresses as text: IPv6 hosts go in brackets in SIP (RFC 3261 section 25.1) and come out of them."""

from __future__ import annotations

from netaddr import AddrFormatError, IPAddress

from sbc.interfaces import Address


def bracket(host: str) -> str:
    """``host`` as it is written in a Via, URI or Contact: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def unbracket(host: str) -> str:
    """``host`` as sockets take it: an IPv6 reference's brackets removed."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def hostport(address: Address) -> str:
    """``host:port`` for an address, the host bracketed when it is IPv6."""
    return f"{bracket(address[0])}:{address[1]}"


def addressOf(host: str) -> str | None:
    """``host`` (maybe in brackets, or an IPv4 address seen through a dual-stack socket) as one
    spelling of its address; None when it is a name."""
    text = host.strip("[]").partition("%")[0]
    if text.startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        return str(IPAddress(text))
    except (AddrFormatError, ValueError):
        return None
