"""A first config for a new install: ``sbc-ctl init DIR`` copies the commented loopback demo there.

The example files are the repository's own ``etc/``: a wheel carries them as package data under
``sbc/examples/etc`` (setup.py copies them at build time), and a checkout reads ``etc/`` itself, so
there is one copy to keep. The starter gets a state directory of its own (``DIR/state`` unless told
otherwise) and a fresh self-signed certificate for 127.0.0.1 and localhost in it, so that
``twistd -n sbc --config DIR/sbc.toml`` runs at once. Like the demo, it listens on loopback only,
where the demo accounts work; anything else is for ops to edit. Its HTTP API takes a token of its
own (``DIR/api.token``, 0600, random) instead of the demo's, which anyone can read in the source.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sbc.config.api import DEMO_TOKEN

__all__ = ["StarterError", "examplesDirectory", "writeSelfSignedCertificate", "writeStarter"]

# Where the shipped example config sends its state, relative to itself; the starter replaces it.
SHIPPED_STATE = '"../state'
# Files that hold secrets (password hashes): written readable by their owner alone.
_SECRET_FILES = frozenset({"users.txt"})
# The shipped demo's API token line, and what a starter config says instead: a file of its own.
SHIPPED_TOKEN = f'token = "{DEMO_TOKEN}"'
TOKEN_FILE = "api.token"


class StarterError(Exception):
    """The starter config cannot be written; the message says why and what to do."""


def examplesDirectory() -> Path:
    """The example ``etc/``: package data in an installed wheel, or the checkout's ``etc/``."""
    here = Path(__file__).resolve().parents[1]  # the sbc package
    for candidate in (here / "examples" / "etc", here.parent / "etc"):
        if (candidate / "sbc.toml").is_file():
            return candidate
    raise StarterError(f"no example config found beside {here} (a broken install?)")


def writeStarter(directory: Path, state: Path | None = None) -> Path:
    """Write the example config into ``directory`` with its state in ``state``; return sbc.toml's path.

    An existing ``sbc.toml`` there is never overwritten. ``state`` defaults to ``directory/state``,
    and is written into the config relative to ``directory`` when it lies inside it.
    """
    directory = Path(directory)
    config = directory / "sbc.toml"
    if config.exists():
        raise StarterError(f"{config} exists already; nothing written")
    source = examplesDirectory()
    state = Path(state) if state is not None else directory / "state"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if "__pycache__" in relative.parts or path.is_dir():
                continue
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if relative == Path("sbc.toml"):
                continue
            shutil.copyfile(path, target)
            if relative.name in _SECRET_FILES:
                target.chmod(0o600)
        text = (source / "sbc.toml").read_text(encoding="utf-8")
        text = text.replace(SHIPPED_STATE, '"' + _statePath(directory, state))
        if SHIPPED_TOKEN in text:
            text = text.replace(SHIPPED_TOKEN, f'token_file = "{TOKEN_FILE}"', 1)
            _writePrivate(directory / TOKEN_FILE, (secrets.token_hex(32) + "\n").encode())
        config.write_text(text, encoding="utf-8")
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        writeSelfSignedCertificate(state / "tls")
    except OSError as e:
        raise StarterError(f"cannot write the starter config: {e}") from None
    return config


def _statePath(directory: Path, state: Path) -> str:
    absolute, base = state.absolute(), directory.absolute()
    if absolute.is_relative_to(base):
        return absolute.relative_to(base).as_posix()
    return absolute.as_posix()


def writeSelfSignedCertificate(directory: Path, commonName: str = "sbc.loopback", days: int = 3650) -> None:
    """Write ``sbc.crt`` and ``sbc.key`` (0600) into ``directory``: self-signed, for 127.0.0.1, ::1 and
    localhost, as the demo's TLS listener expects."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyPem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sbc.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _writePrivate(directory / "sbc.key", keyPem)


def _writePrivate(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner alone, from the first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)
    path.chmod(0o600)
