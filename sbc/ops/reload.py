"""Reload the configuration when a watched file changes, or on demand (SIGHUP).

A reload builds a whole new `Config`; if any file is wrong, the running configuration stays and
the log names the file, line and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twisted.logger import Logger

from sbc.config import Config, ConfigError, loadConfig


class ConfigReloader:
    """Watches the config's files and hands each good new `Config` to ``apply``."""

    log = Logger()

    def __init__(self, config: Config, apply: Callable[[Config], None]) -> None:
        self.config = config
        self.apply = apply
        self.failures = 0
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
            self.log.error(
                "configuration not reloaded, the previous one stays in force: {error}", error=str(e)
            )
            return False
        if config.listeners != self.config.listeners or config.tls != self.config.tls:
            self.log.warn("listener and TLS changes take effect at the next restart")
        self.config = config
        self._stamps = self._stat(config)
        self.log.info(
            "configuration reloaded from {path}: {trunks} trunk(s)",
            path=str(config.path),
            trunks=len(config.trunks),
        )
        return True
