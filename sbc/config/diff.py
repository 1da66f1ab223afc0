"""What a reload changes about the trunks (networks, settings, trunks) and the registrants (names
and which keys changed, never a value: a password must not reach the log), as lines for the log."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path

from netaddr import IPNetwork

from sbc.config.model import Config
from sbc.config.trunks import Trunk

__all__ = ["registrantChanges", "trunkChanges"]


def trunkChanges(old: Config, new: Config) -> list[str]:
    """One line per trunk added, removed or changed (networks added and removed, each setting)."""
    lines: list[str] = []
    for trunk in old.trunks:
        if new.trunk(trunk.name) is None:
            lines.append(f"trunk {trunk.name} removed (its calls in progress go on to their end)")
    for trunk in new.trunks:
        before = old.trunk(trunk.name)
        if before is None:
            networks = ", ".join(str(n) for n in _networks(trunk))
            lines.append(f"trunk {trunk.name} added: {networks or 'no networks'}")
        else:
            lines.extend(f"trunk {trunk.name}: {change}" for change in _changes(before, trunk))
    return lines


def registrantChanges(old: Config, new: Config) -> list[str]:
    """One line per registrant added, removed or changed (the keys that changed, not their values)."""
    before = {r.name: r for r in old.registrants}
    after = {r.name: r for r in new.registrants}
    lines = [f"registrant {name} removed (it unregisters)" for name in before if name not in after]
    for name, registrant in after.items():
        was = before.get(name)
        if was is None:
            lines.append(f"registrant {name} added")
        elif was != registrant:
            keys = [_key(f.name) for f in fields(was) if getattr(was, f.name) != getattr(registrant, f.name)]
            lines.append(f"registrant {name} changed: {', '.join(keys)}")
    return lines


def _changes(old: Trunk, new: Trunk) -> list[str]:
    """Networks added and removed, then every compared field that differs, by its config key."""
    changes = []
    before, after = _networks(old), _networks(new)
    added = [str(n) for n in after if n not in before]
    removed = [str(n) for n in before if n not in after]
    if added:
        changes.append(f"networks added: {', '.join(added)}")
    if removed:
        changes.append(f"networks removed: {', '.join(removed)}")
    changes.extend(_fieldChanges(old, new, "", skip="name"))
    return changes


def _fieldChanges(old: object, new: object, prefix: str, skip: str = "") -> list[str]:
    """Each compared field that differs, as ``key old -> new``; a nested dataclass field by field."""
    changes = []
    for item in fields(old):  # type: ignore[arg-type]
        if not item.compare or item.name == skip:
            continue
        was, now = getattr(old, item.name), getattr(new, item.name)
        if was == now:
            continue
        key = prefix + _key(item.name)
        if is_dataclass(was) and type(was) is type(now):
            changes.extend(_fieldChanges(was, now, key + "."))
        else:
            changes.append(f"{key} {_show(was)} -> {_show(now)}")
    return changes


def _networks(trunk: Trunk) -> dict[IPNetwork, None]:
    """The trunk's networks as its files list them (in order), or its set's when it has no entries."""
    if trunk.whitelistEntries:
        return dict.fromkeys(entry.network for entry in trunk.whitelistEntries)
    return dict.fromkeys(trunk.whitelist.iter_cidrs())


def _key(name: str) -> str:
    """A Trunk field as ops know it: ``failoverTimeout`` -> ``failover_timeout``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _show(value: object) -> str:
    """A setting's value as the log shows it: paths and enums plainly, tuples as lists."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)
