"""``sbc-ctl check``: load a configuration exactly as the server starts with it, and say what is wrong.

The server's start (`sbc.tap.Options.postOptions`) loads the config, builds the routing chain (which
loads the hook) and the TLS context; `loadAsServer` does the same three steps, so a config that
passes here starts, and one that fails here fails there with the same `ConfigError`. Warnings are
what a good config may still deserve a look for: those the loader collects (``Config.warnings``)
and the secrets other accounts can read, which the server also logs at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sbc.config import Config, ConfigError, loadConfig
from sbc.config.whitelist import loadWhitelist
from sbc.ops.permissions import exposedSecrets
from sbc.routing import RoutingChain, buildChain
from sbc.transport.tls import serverContextFactory

__all__ = ["Loaded", "loadAsServer", "problems", "summary"]


@dataclass(frozen=True)
class Loaded:
    """A configuration as the server would run it: the config, its routing chain, and warnings."""

    config: Config
    chain: RoutingChain
    warnings: tuple[str, ...]


def loadAsServer(path: Path | str) -> Loaded:
    """Load ``path``, its routing chain and TLS context as ``twistd sbc`` does; `ConfigError` if any fails."""
    config = loadConfig(path)
    chain = buildChain(config)
    if config.tls is not None:
        serverContextFactory(config.tls)
    return Loaded(config, chain, (*config.warnings, *exposedSecrets(config)))


def problems(error: ConfigError) -> list[str]:
    """Each problem of a failed load as ``file:line: message`` (several if the error holds several)."""
    several = getattr(error, "errors", None)
    if isinstance(several, list | tuple) and several:
        return [str(each) for each in several]
    return [str(error)]


def summary(config: Config) -> str:
    """One line: how many trunks (by name), whitelisted networks and users the config holds."""
    sets = [trunk.whitelist for trunk in config.trunks]
    if config.devicesWhitelistPath is not None:
        sets.append(loadWhitelist(config.devicesWhitelistPath))
    networks = sum(len(addresses.iter_cidrs()) for addresses in sets)
    names = ", ".join(config.trunkNames)
    return (
        f"{config.path}: OK: {_count(len(config.trunks), 'trunk')}"
        + (f" ({names})" if names else "")
        + f", {_count(networks, 'network')} whitelisted"
        + f", {_count(len(config.registrar.users), 'user')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
