"""The TLS server context: our certificate, key and chain from config, TLS 1.2 at least.

Built directly with pyOpenSSL (from cryptography objects), so that verifying client
certificates per trunk can be added here later without changing who calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from sbc.config import TLSSettings
from sbc.config.errors import ConfigError


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(path, f"cannot read the TLS {what}: {e.strerror}") from None


def _certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError as e:
        raise ConfigError(path, f"not a PEM certificate ({e})") from None


@implementer(IOpenSSLContextFactory)
class ServerContextFactory:
    """What `TLSMemoryBIOFactory` asks for: one context, built and checked at startup."""

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def getContext(self) -> SSL.Context:
        """The one server context, shared by every TLS connection."""
        return self.context


def serverContextFactory(settings: TLSSettings) -> ServerContextFactory:
    """Build the server context; a bad file raises `ConfigError` naming it."""
    certificate = _certificate(settings.certificate, "certificate")
    try:
        key: Any = load_pem_private_key(_read(settings.key, "key"), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(settings.key, f"not an unencrypted PEM private key ({e})") from None
    chain = [_certificate(path, "chain certificate") for path in settings.chain]
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_TICKET)
    context.use_certificate(certificate)
    try:
        context.use_privatekey(key)
        context.check_privatekey()
    except SSL.Error as e:
        raise ConfigError(settings.key, f"this key does not belong to the certificate ({e})") from None
    for extra in chain:
        context.add_extra_chain_cert(extra)
    return ServerContextFactory(context)
