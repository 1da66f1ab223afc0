"""The TLS server context (our certificate, key and chain, TLS 1.2 at least) and client identities.

Built directly with pyOpenSSL (from cryptography objects). With ``[tls] ca`` the context asks
every client for a certificate and verifies its chain against that CA, but lets a client without
one in (devices connect over TLS with none). Which names a certificate must prove is a per-trunk
question, asked of every message by the gate (`sbc.server.SIPServer`) through `peerProves`.
Outbound, `clientTLS` makes the connection creators for gateways (`sbc.transport.outbound`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.pyopenssl import verify_hostname
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
)
from twisted.internet.ssl import (
    Certificate,
    PrivateCertificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from zope.interface import implementer

from sbc.access import TRUNK
from sbc.config import Config, TLSSettings, Trunk
from sbc.config.errors import ConfigError
from sbc.interfaces import ISIPTransport


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
    if settings.ca is not None:
        _verifyClients(context, settings.ca)
    return ServerContextFactory(context)


def _verifyClients(context: SSL.Context, ca: Path) -> None:
    """Ask for a client certificate (without requiring one) and verify its chain against ``ca``."""
    _read(ca, "CA bundle")  # a missing or unreadable file is named as such
    try:
        context.load_verify_locations(str(ca))
        context.load_client_ca(str(ca).encode())
    except SSL.Error as e:
        raise ConfigError(ca, f"not a PEM CA bundle ({e})") from None
    # A certificate proven at the handshake stays the connection's: no renegotiation to swap it.
    context.set_options(SSL.OP_NO_RENEGOTIATION)
    # VERIFY_PEER alone: a client that sends a certificate must chain to ``ca``; one that sends
    # none still gets in, and only a trunk that names identities refuses it, per message.
    context.set_verify(SSL.VERIFY_PEER, _chainVerdict)


def _chainVerdict(connection: SSL.Connection, certificate: object, error: int, depth: int, ok: int) -> bool:
    """OpenSSL's own verdict on each certificate of the client's chain."""
    return bool(ok)


def peerProves(transport: object, names: tuple[str, ...]) -> bool:
    """Whether the TLS connection ``transport`` holds a verified client certificate for one of ``names``.

    ``transport`` is what a stream protocol writes to: a `TLSMemoryBIOProtocol` over TLS (its
    handle is the pyOpenSSL connection), anything else over TCP, which proves nothing.
    """
    getHandle = getattr(transport, "getHandle", None)
    if getHandle is None:
        return False
    connection = getHandle()
    if not isinstance(connection, SSL.Connection) or connection.get_peer_certificate() is None:
        return False
    for name in names:
        try:
            verify_hostname(connection, name)
        except (VerificationError, CertificateError):
            continue
        return True
    return False


def refuseUnprovenTLS(
    config: Config, transport: ISIPTransport, host: str, retired: Callable[[str], Trunk | None] | None = None
) -> bool:
    """Whether to drop a message from ``host`` because its trunk requires TLS; closes its stream if so.

    Refused: a TLS-only trunk's UDP or TCP, and its TLS when the trunk names identities and the
    connection's client certificate proves none (`sbc.transport.SIPStreamProtocol.proves`), unless
    it is a connection we opened to that trunk's gateway and verified. The
    caller asks only while ``config.tlsTrunks`` (or a TLS-only trunk a reload removed while its
    calls go on: ``retired`` finds it) is not empty, so other traffic pays nothing.
    """
    peer = config.access.classify(host)
    if peer is None:
        trunk = retired(host) if retired is not None else None
        if trunk is None or not trunk.requireTls:
            return False
    elif peer.kind != TRUNK or peer.name not in config.tlsTrunks:
        return False
    else:
        trunk = config.trunk(peer.name)
    names = () if trunk is None else trunk.tlsIdentities
    if transport.name == "TLS":
        proves = getattr(transport, "proves", None)
        if not names or (proves is not None and proves(names)):
            return False
        # Our own connection to one of the trunk's gateways, verified against the name its config
        # gives that gateway (sbc.transport.outbound): its answers are that trunk's.
        openedFor = getattr(transport, "openedFor", None)
        if trunk is not None and openedFor is not None and openedFor(trunk.name):
            return False
    abort = getattr(transport, "abort", None)
    if transport.reliable and abort is not None:
        abort()  # no answer, and no further message on a connection that cannot prove itself
    return True


def clientTLS(settings: TLSSettings | None) -> Callable[[str], IOpenSSLClientConnectionCreator]:
    """How we open TLS to a gateway: ``optionsForClientTLS`` for the name its certificate must prove.

    The gateway's chain is checked against ``[tls] ca`` when set (the peers' CA, the same one
    their client certificates are checked against), else the system's trust store. We show our
    own certificate, so a peer that asks for mutual TLS gets it. One creator per name, built once.
    """
    trust: Any = platformTrust()  # an IOpenSSLTrustRoot (not exported by twisted.internet.ssl)
    ours: PrivateCertificate | None = None
    chain: list[Any] = []
    if settings is not None:
        if settings.ca is not None:
            bundle = _read(settings.ca, "CA bundle")
            try:
                found = x509.load_pem_x509_certificates(bundle)
            except ValueError as e:
                raise ConfigError(settings.ca, f"not a PEM CA bundle ({e})") from None
            trust = trustRootFromCertificates(
                [Certificate.loadPEM(c.public_bytes(Encoding.PEM)) for c in found]
            )
        ours = PrivateCertificate.loadPEM(
            _read(settings.certificate, "certificate") + b"\n" + _read(settings.key, "key")
        )
        chain = [
            Certificate.loadPEM(_certificate(path, "chain certificate").public_bytes(Encoding.PEM)).original
            for path in settings.chain
        ]
    creators: dict[str, IOpenSSLClientConnectionCreator] = {}

    def creator(name: str) -> IOpenSSLClientConnectionCreator:
        found = creators.get(name)
        if found is None:
            extra: dict[str, Any] = {"extraCertChain": chain} if chain else {}
            found = creators[name] = optionsForClientTLS(
                name, trustRoot=trust, clientCertificate=ours, extraCertificateOptions=extra or None
            )
        return found

    return creator
