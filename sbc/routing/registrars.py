"""The registrars (and outbound proxies) of our registrants: their addresses pass the gate.

A peer that cannot trunk to us gets a registration instead (``[registrants]``, `sbc.registrant`):
the SBC registers to the peer's registrar as one phone would, and the peer's calls arrive at the
Contact we registered, sent by that registrar or by the outbound proxy. No whitelist names those
sources, so `RegistrarWatch` works them out from the registrants' URIs: an address as it is
written, a DNS name resolved as trunks' gateway names are (`ServerLocator`, RFC 3263; cached for
the records' TTL and looked up again by ``tick`` once that ends). `RegistrarAccess` then admits
them at the gate as ``Peer(REGISTRANT, name)``, after the trunks' whitelists: a source that is also
a trunk's (by its files or its resolved gateway names) stays the trunk's. A device network that
holds a registrar does not hide it (device networks may be wide; a registrar is one address).
What such a source may send is narrower than what a trunk may: see
`sbc.routing.registrants.registrantFor`.

The watch applies nothing itself: the server swaps in ``watch.admit(config)`` with every config
it uses, so a reload that adds or removes a registrant changes the gate in the same assignment as
the whitelists, and a name that resolves elsewhere makes the server swap in the same config again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from netaddr import IPNetwork
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.access import REGISTRANT, TRUNK, AccessPolicy, Peer
from sbc.addresses import addressOf
from sbc.config import Config
from sbc.config.registrants import Registrant
from sbc.config.sip import Transport
from sbc.droplog import DropLog
from sbc.locate import Hop, LocateError, ServerLocator
from sbc.prefixes import Entry
from sbc.registrant.contact import contactUser
from sbc.waiting import Maybe, whenAllReady, whenReady

__all__ = [
    "RegistrarAccess",
    "RegistrarWatch",
    "addressOf",
    "addresses",
    "registrantsAt",
    "targets",
    "withRegistrars",
]

# One name to look up: (host, port, transport), as `ServerLocator.locate` takes them.
Target = tuple[str, int | None, Transport]


def targets(registrant: Registrant) -> Iterator[Target]:
    """Where ``registrant``'s calls may come from: its registrar's host, then its outbound proxy's."""
    for uri in (registrant.registrarURI, registrant.proxyURI):
        if uri is not None and uri.host:
            yield (uri.host.strip("[]"), uri.port, registrant.transport)


class RegistrarAccess(AccessPolicy):
    """The trunks' whitelists (and resolved gateway names), our registrants' registrars, then the
    device networks.

    ``registrars`` maps each address to the registrants whose registrar or proxy is there, in
    config order; the gate's peer names the first, and `registrantsAt` gives them all.
    ``contacts`` maps each registrant's Contact user (`sbc.registrant.contact.contactUser`) to
    its name: what `sbc.routing.registrants.registrantFor` matches a Request-URI by.
    """

    __slots__ = ("base", "contacts", "registrars")

    def __init__(
        self,
        base: AccessPolicy,
        registrars: Mapping[str, tuple[str, ...]],
        contacts: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__({})
        self.base = base
        self.registrars = dict(registrars)
        self.contacts = dict(contacts or {})

    def why(self, host: str) -> tuple[Peer, Entry] | None:
        """A trunk's whitelist first; then the first registrant whose registrar is ``host``; then
        the device networks (a registrar is one configured server, a device network may be the
        whole Internet: it would otherwise hide every registrar from the calls it sends)."""
        found = self.base.why(host)
        if found is not None and found[0].kind is TRUNK:
            return found
        address = addressOf(host)
        names = None if address is None else self.registrars.get(address)
        if not names or address is None:
            return found
        return Peer(REGISTRANT, names[0]), Entry(IPNetwork(address), Path(f"registrant:{names[0]}"))

    def registrantsAt(self, host: str) -> tuple[str, ...]:
        """The registrants whose registrar or outbound proxy is at ``host``."""
        address = addressOf(host)
        return () if address is None else self.registrars.get(address, ())


def registrantsAt(config: Config, host: str) -> tuple[str, ...]:
    """The registrants of ``config`` whose registrar or outbound proxy ``host`` is (see
    `RegistrarAccess.registrantsAt`); none when the config admits no registrar."""
    access = config.access
    return access.registrantsAt(host) if isinstance(access, RegistrarAccess) else ()


def addresses(
    registrants: Iterable[Registrant], resolved: Mapping[Target, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Each registrar or proxy address -> the registrants there, in config order: addresses as
    written, names as ``resolved`` has them (not there: none)."""
    found: dict[str, list[str]] = {}
    for registrant in registrants:
        for target in targets(registrant):
            address = addressOf(target[0])
            for host in (address,) if address is not None else resolved.get(target, ()):
                names = found.setdefault(host, [])
                if registrant.name not in names:
                    names.append(registrant.name)
    return {host: tuple(names) for host, names in found.items()}


def withRegistrars(
    config: Config, resolved: Mapping[Target, tuple[str, ...]] | None = None, secret: bytes | None = None
) -> Config:
    """``config`` whose gate also admits its registrants' registrars and outbound proxies (by
    address, and by name as ``resolved`` has them: `sbc-ctl explain` resolves none); ``config``
    itself when it has none, so that the gate's lookups cost no more. Calls are matched to the
    Contact users ``secret`` gives (None: none, as for `sbc-ctl explain`)."""
    registrars = addresses(config.registrants, resolved or {})
    if not registrars:
        return config
    contacts = {} if secret is None else {contactUser(secret, r.name): r.name for r in config.registrants}
    return replace(config, access=RegistrarAccess(config.access, registrars, contacts))


class RegistrarWatch:
    """Follows the registrars' addresses of the config last given to `admit`: ``tick`` (on the
    server's one-second timer) resolves their names, and ``onChanged`` is told when the addresses
    found change, so that the server applies its config again."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        locator: ServerLocator,
        sourceLog: DropLog,
        onChanged: Callable[[], object] | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.clock = clock
        self.locator = locator
        self.sourceLog = sourceLog
        self.onChanged = onChanged
        # The SBC's state secret: our Contact users derive from it (`sbc.registrant.contact`).
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.registrants: tuple[Registrant, ...] = ()
        # Each name looked up -> the addresses of its last answer (absent: it did not resolve).
        self.resolved: dict[Target, tuple[str, ...]] = {}

    def admit(self, config: Config) -> Config:
        """``config`` whose gate also admits its registrants' registrars (see `withRegistrars`,
        names as they resolved last); from now on their names are the ones ``tick`` resolves."""
        self.registrants = config.registrants
        return withRegistrars(config, self.resolved, self.secret)

    def tick(self) -> None:
        """Resolve the registrars' names (mostly from the cache: a query only once a TTL ran out),
        and tell ``onChanged`` when their addresses differ from those in force."""
        resolved: dict[Target, tuple[str, ...]] = {}
        answers: list[Maybe[object]] = []
        asked: set[Target] = set()
        for registrant in self.registrants:
            for target in targets(registrant):
                if addressOf(target[0]) is None and target not in asked:
                    asked.add(target)
                    answers.append(self._resolve(registrant, target, resolved))

        def ready() -> None:
            if resolved == self.resolved:
                return
            before, self.resolved = self.resolved, resolved
            if self.onChanged is None:
                return
            try:
                self.onChanged()
            except Exception:
                self.resolved = before  # not applied: the next tick tries again
                self.log.failure("registrars' addresses not applied; tried again at the next tick")

        whenAllReady(answers, ready)

    def _resolve(
        self, registrant: Registrant, target: Target, resolved: dict[Target, tuple[str, ...]]
    ) -> Maybe[object]:
        """Look ``target`` up into ``resolved``; a name that does not resolve is logged (once a
        minute) and admits nothing."""

        def found(hops: list[Hop]) -> None:
            resolved[target] = tuple(dict.fromkeys(addressOf(hop.host) or hop.host for hop in hops))

        def failed(failure: Failure) -> None:
            failure.trap(LocateError)
            self.sourceLog.info(
                self.log,
                target[0],
                "registrant {registrant}: registrar {host} not admitted: {why}",
                registrant=registrant.name,
                host=target[0],
                why=failure.getErrorMessage(),
            )

        try:
            answer = self.locator.locate(*target)
        except LocateError:
            failed(Failure())
            return None
        return whenReady(answer, found, failed)
