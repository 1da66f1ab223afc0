"""Reload the configuration when a watched file changes, or on demand (SIGHUP).

A reload builds a whole new `Config`; if any file is wrong, the running configuration stays and
the log names the file, line and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sbc.access import TRUNK, AccessPolicy, Peer
from sbc.config import Config, ConfigError, Trunk, loadConfig
from sbc.config.diff import registrantChanges, trunkChanges

# Seconds between looks at whether the calls of removed trunks have ended.
RETIRED_CHECK_INTERVAL = 5.0


class ConfigReloader:
    """Watches the config's files and hands each good new `Config` to ``apply``."""

    log = Logger()

    def __init__(self, config: Config, apply: Callable[[Config], None]) -> None:
        self.config = config
        self.apply = apply
        self.failures = 0
        # What the HTTP API reports: how many configs have been in force (1: the one started
        # with), and the last reload's outcome: its changes, or the error that refused it.
        self.generation = 1
        self.lastChanges: tuple[str, ...] = ()
        self.lastError: str | None = None
        self._stamps = self._stat(config)

    @staticmethod
    def _stat(config: Config) -> dict[Path, tuple[int, int] | None]:
        stamps: dict[Path, tuple[int, int] | None] = {}
        for path in config.watchedFiles():
            try:
                st = path.stat()
                stamps[path] = (st.st_mtime_ns, st.st_size)
            except OSError:
                stamps[path] = None
        return stamps

    def poll(self) -> None:
        """Called on a timer: reload when any watched file changed since the last look."""
        stamps = self._stat(self.config)
        if stamps != self._stamps:
            self._stamps = stamps
            self.reload()

    def reload(self) -> bool:
        """Load the files again and apply them; on any `ConfigError` the running config stays.

        ``apply`` may refuse the new config too (the routing hook is loaded there) by raising
        `ConfigError` before it changes anything.
        """
        try:
            config = loadConfig(self.config.path)
            self.apply(config)
        except ConfigError as e:
            self.failures += 1
            self.lastError = str(e)
            self.log.error(
                "configuration not reloaded, the previous one stays in force: {error}", error=str(e)
            )
            return False
        if config.listeners != self.config.listeners or config.tls != self.config.tls:
            self.log.warn("listener and TLS changes take effect at the next restart")
        old, self.config = self.config, config
        self._stamps = self._stat(config)
        self.log.info(
            "configuration reloaded from {path}: {trunks} trunk(s)",
            path=str(config.path),
            trunks=len(config.trunks),
        )
        self.generation += 1
        self.lastError = None
        self.lastChanges = (*trunkChanges(old, config), *registrantChanges(old, config))
        for change in self.lastChanges:
            self.log.info("reload: {change}", change=change)
        for warning in config.warnings:
            self.log.warn("{warning}", warning=warning)
        return True


class RetiredTrunks:
    """Trunks a reload removed while calls of theirs went on: their sources stay admitted at the gate.

    So the peer's BYE, re-INVITE and answers still reach those calls, which end normally. A new
    call from such a source is refused at admission (the running config knows no such trunk). Once
    the last of their calls has ended (looked at every `RETIRED_CHECK_INTERVAL` seconds, and at
    each reload), the sources are strangers again.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, live: Callable[[], Iterable[str]]) -> None:
        self.clock = clock
        self.live = live
        self.trunks: dict[str, Trunk] = {}
        # None while no trunk is retired: the gate asks no more of a stranger than that.
        self.access: AccessPolicy | None = None
        # Whether a retired trunk requires TLS: its sources' plain UDP and TCP stay refused.
        self.tls = False
        self._nextCheck = 0.0

    def update(self, old: Config, new: Config) -> None:
        """Keep, of the trunks in ``old`` (or retired before), those ``new`` lacks that have calls."""
        live = set(self.live())
        candidates = {**self.trunks, **{trunk.name: trunk for trunk in old.trunks}}
        trunks = {n: t for n, t in candidates.items() if new.trunk(n) is None and n in live}
        for name in trunks.keys() - self.trunks.keys():
            self.log.info("trunk {trunk} removed: its sources stay admitted until its calls end", trunk=name)
        for name in self.trunks.keys() - trunks.keys() - {t.name for t in new.trunks}:
            self.log.info("trunk {trunk}: its last call has ended, its sources are dropped now", trunk=name)
        self.trunks = trunks
        whitelists = {Peer(TRUNK, n): t.whitelistEntries or t.whitelist for n, t in trunks.items()}
        self.access = AccessPolicy(whitelists) if trunks else None
        self.tls = any(trunk.requireTls for trunk in trunks.values())
        self._nextCheck = self.clock.seconds() + RETIRED_CHECK_INTERVAL

    def trunkOf(self, host: str) -> Trunk | None:
        """The retired trunk whose whitelist holds ``host`` (as last checked), else None."""
        peer = self.access.classify(host) if self.access is not None else None
        return None if peer is None else self.trunks.get(peer.name)

    def classify(self, host: str, config: Config) -> Peer | None:
        """The retired trunk ``host`` belongs to while it has calls, else None."""
        if self.access is not None and self.clock.seconds() >= self._nextCheck:
            self.update(config, config)
        access = self.access
        return None if access is None else access.classify(host)
