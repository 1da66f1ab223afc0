"""The users file ops edit (``etc/users.txt``): accounts that may register, as digest hashes.

One account per line::

    alice@example.com md5=<32 hex> sha256=<64 hex> [algorithms=SHA-256] [demo]

``#`` starts a comment; blank lines are ignored. Each hash is an HA1 of RFC 7616 with the
domain as realm, H(user:domain:password), so the file never holds a password: ``sbc-ctl adduser``
asks for one and writes only the hashes. The domain is kept in lower case, and the registrar
must challenge with that same lower-case domain as realm.

``algorithms=`` (comma separated, e.g. ``algorithms=SHA-256`` or ``algorithms=MD5,SHA-256``) picks
the digest algorithms of this account, over its network's and the registrar's. The user is known
only from credentials, so the first challenge follows the network; once a device proves the
password under an algorithm the account does not allow, it is challenged with the account's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from sbc.config.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "Account",
    "UserDirectory",
    "accountKey",
    "computeHA1",
    "formatAccount",
    "isValidDomain",
    "isValidUser",
    "loadUsers",
    "parseAccountName",
    "parseUsers",
]

# Key in the file -> (digest algorithm name as RFC 7616 writes it, hashlib name, hex length).
_KEYS: Mapping[str, tuple[str, str, int]] = {
    "md5": ("MD5", "md5", 32),
    "sha256": ("SHA-256", "sha256", 64),
}
ALGORITHMS = tuple(algorithm for algorithm, _, _ in _KEYS.values())

# RFC 3261 25.1: user = 1*( unreserved / user-unreserved ); escapes are left out, as ops
# have no need of them. None of these is "#", "@" or white space, which the file format uses.
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class Account:
    """One account: who, and the HA1 of each algorithm we can challenge with."""

    user: str
    domain: str
    ha1: Mapping[str, str] = field(hash=False)
    demo: bool = False
    # The algorithms this account is challenged with; empty: its network's or the registrar's.
    algorithms: tuple[str, ...] = ()

    @property
    def aor(self) -> str:
        """The address-of-record, as `sbc.registrar.location` keys bindings."""
        return f"{self.user}@{self.domain}"


class UserDirectory:
    """The accounts of one users file, read-only, so a reload swaps a whole new one in."""

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self._accounts: dict[tuple[str, str], Account] = {}
        for account in accounts:
            key = (account.user, account.domain.lower())
            if key in self._accounts:
                raise ValueError(f"duplicate account {account.user}@{account.domain}")
            self._accounts[key] = account

    def lookup(self, user: str, domain: str) -> Account | None:
        """The account, matching the user exactly and the domain in any case (RFC 3261 19.1.4)."""
        return self._accounts.get((user, domain.lower()))

    def __len__(self) -> int:
        return len(self._accounts)

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())


def isValidUser(user: str) -> bool:
    """Whether ``user`` is a SIP user part we accept in the users file."""
    return _USER.fullmatch(user) is not None


def isValidDomain(domain: str) -> bool:
    """Whether ``domain`` is a host name (an IPv4 address passes too: its labels are digits).

    No trailing dot: the domain is also the digest realm, and must be written one way only.
    """
    return len(domain) <= 253 and all(_LABEL.fullmatch(label) for label in domain.split("."))


def parseAccountName(text: str) -> tuple[str, str]:
    """Split ``user@domain``, checking both parts; ValueError says what is wrong."""
    user, at, domain = text.rpartition("@")
    if not at:
        raise ValueError(f"{text!r} is not user@domain")
    if not isValidUser(user):
        raise ValueError(f"{user!r} is not a valid SIP user name")
    if not isValidDomain(domain):
        raise ValueError(f"{domain!r} is not a valid domain name")
    return user, domain.lower()


def computeHA1(algorithm: str, user: str, domain: str, password: str) -> str:
    """HA1 = H(user:realm:password) (RFC 7616 3.4.2), the realm being the lower-case domain."""
    for name, hashName, _ in _KEYS.values():
        if name == algorithm:
            data = f"{user}:{domain.lower()}:{password}".encode()
            return hashlib.new(hashName, data).hexdigest()
    raise ValueError(f"unknown digest algorithm {algorithm!r}")


def formatAccount(
    user: str, domain: str, password: str, *, demo: bool = False, algorithms: tuple[str, ...] = ()
) -> str:
    """One users-file line for the account (no line ending); only hashes of the password."""
    user, domain = parseAccountName(f"{user}@{domain}")
    fields = [f"{user}@{domain}"]
    for key, (algorithm, _, _) in _KEYS.items():
        fields.append(f"{key}={computeHA1(algorithm, user, domain, password)}")
    if algorithms:
        fields.append(f"algorithms={','.join(_algorithmList(','.join(algorithms)))}")
    if demo:
        fields.append("demo")
    return " ".join(fields)


def accountKey(line: str) -> tuple[str, str] | None:
    """(user, lower-case domain) of the account a line defines, or None for blanks and comments.

    `sbc.ops.ctl` uses it to find the line to replace without parsing the rest of the line.
    """
    fields = line.split("#", 1)[0].split()
    if not fields:
        return None
    user, _, domain = fields[0].rpartition("@")
    return user, domain.lower()


def parseUsers(text: str, path: Path) -> UserDirectory:
    """Build the directory; the first bad line raises `ConfigError` naming the file and line."""
    accounts: list[Account] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            user, domain = parseAccountName(fields[0])
        except ValueError as e:
            raise ConfigError(path, str(e), line=lineno) from None
        if (user, domain) in seen:
            raise ConfigError(
                path, f"account {user}@{domain} is already on line {seen[user, domain]}", line=lineno
            )
        seen[user, domain] = lineno
        ha1: dict[str, str] = {}
        demo = False
        algorithms: tuple[str, ...] = ()
        for item in fields[1:]:
            if item == "demo":
                if demo:
                    raise ConfigError(path, "demo is given twice", line=lineno)
                demo = True
                continue
            key, equals, value = item.partition("=")
            if equals and key == "algorithms":
                if algorithms:
                    raise ConfigError(path, "algorithms= is given twice", line=lineno)
                try:
                    algorithms = _algorithmList(value)
                except ValueError as e:
                    raise ConfigError(path, str(e), line=lineno) from None
                continue
            if not equals or key not in _KEYS:
                raise ConfigError(
                    path, f"unknown key {key!r} (expected md5=, sha256=, algorithms= or demo)", line=lineno
                )
            algorithm, _, length = _KEYS[key]
            if algorithm in ha1:
                raise ConfigError(path, f"{key}= is given twice", line=lineno)
            if len(value) != length or not _HEX.fullmatch(value):
                raise ConfigError(path, f"{key}= must be {length} hex digits", line=lineno)
            ha1[algorithm] = value.lower()
        for key, (algorithm, _, _) in _KEYS.items():
            if algorithm not in ha1:
                raise ConfigError(path, f"{key}= is missing", line=lineno)
        accounts.append(Account(user, domain, MappingProxyType(ha1), demo, algorithms))
    return UserDirectory(accounts)


def _algorithmList(text: str) -> tuple[str, ...]:
    """``MD5,SHA-256`` -> the algorithms as RFC 7616 spells them; ValueError when one is unknown."""
    names = {algorithm.lower(): algorithm for algorithm in ALGORITHMS}
    result: list[str] = []
    for item in text.split(","):
        algorithm = names.get(item.strip().lower())
        if algorithm is None or algorithm in result:
            raise ValueError(f"algorithms= must list {' and/or '.join(ALGORITHMS)}, each once")
        result.append(algorithm)
    return tuple(result)


def loadUsers(path: Path) -> UserDirectory:
    """Read and parse the users file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, f"cannot read users file: {e}") from None
    return parseUsers(text, path)
