"""``sbc-ctl``'s commands about bans: list them, and lift one.

    sbc-ctl bans [--config PATH]
    sbc-ctl unban IP [--config PATH]

Every ban (failed authentications, a request flood) is a row of the state database's ban table,
with its reason and its end. ``unban`` deletes the rows that cover IP (its own, or its IPv6
network's); the running SBC looks for lifted rows every `sbc.access.SYNC_INTERVAL` seconds
(`sbc.access.Bans.sync`) and lets the source in again then: no signal and no pidfile needed.
`sbc.ops.ctl` registers the commands with `addCommands`.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sbc.access import SYNC_INTERVAL
from sbc.config import ConfigError, loadConfig
from sbc.ops.configctl import STATE_DATABASE, configOption
from sbc.ops.state import BanTable

__all__ = ["addCommands", "coveringKeys", "formatBans"]

Now = Callable[[], float]


class BanCtlError(Exception):
    """A failure to report on stderr with exit status 1."""


def addCommands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register bans and unban with ``sbc-ctl``'s subcommands."""
    bans = commands.add_parser(
        "bans",
        help="list the sources the SBC bans now: source, until when, and why",
        description="List the bans recorded in the state database of the config's [state] directory "
        "(failed authentications, request floods): source, end (UTC), seconds left, reason.",
    )
    configOption(bans)
    bans.set_defaults(run=_bans, subparser=bans)

    unban = commands.add_parser(
        "unban",
        help="lift the ban on a source (the running SBC lets it in within seconds)",
        description="Delete the bans that cover IP (its own, or its IPv6 network's) from the state "
        f"database; the running SBC lets the source in again within {SYNC_INTERVAL:g} seconds. "
        "Exit 1 when no ban covers IP.",
    )
    unban.add_argument("address", metavar="IP", help="a banned address, or a network as `bans` lists it")
    configOption(unban)
    unban.set_defaults(run=_unban, subparser=unban)


def formatBans(bans: Mapping[str, tuple[float, str]], now: float) -> list[str]:
    """One line per ban still in force at ``now``, soonest end first; ended ones are left out."""
    lines = []
    for host, (until, reason) in sorted(bans.items(), key=lambda item: (item[1][0], item[0])):
        if until <= now:
            continue
        end = datetime.datetime.fromtimestamp(until, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{host:<24} until {end} UTC ({until - now:.0f}s left)  {reason}")
    return lines


def coveringKeys(address: str, keys: Iterable[str]) -> list[str]:
    """The ban keys that cover ``address`` (an IP or a network) or lie inside it; ValueError if invalid."""
    target = ipaddress.ip_network(address.strip(), strict=False)
    found = []
    for key in keys:
        try:
            network = ipaddress.ip_network(key, strict=False)
        except ValueError:
            continue
        if network.version == target.version and network.overlaps(target):
            found.append(key)
    return found


def _database(configPath: Path) -> Path:
    try:
        config = loadConfig(configPath)
    except ConfigError as e:
        raise BanCtlError(str(e)) from None
    return config.stateDirectory / STATE_DATABASE


def _connect(database: Path, *, write: bool) -> sqlite3.Connection | None:
    """The state database (read-only unless ``write``), or None when there is none yet."""
    if not database.exists():
        return None
    mode = "rw" if write else "ro"
    try:
        return sqlite3.connect(f"{database.resolve().as_uri()}?mode={mode}", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise BanCtlError(f"cannot open {database}: {e}") from None


def _bans(parser: argparse.ArgumentParser, arguments: argparse.Namespace, now: Now = time.time) -> int:
    """Print the bans in force."""
    try:
        database = _database(arguments.config)
        connection = _connect(database, write=False)
        if connection is None:
            print(f"no bans (no state database at {database} yet)")
            return 0
        try:
            lines = formatBans(BanTable(connection).load(), now())
        finally:
            connection.close()
    except sqlite3.Error as e:
        return _fail(f"cannot read bans from {database}: {e}")
    except BanCtlError as e:
        return _fail(str(e))
    print("\n".join(lines) if lines else "no bans")
    return 0


def _unban(parser: argparse.ArgumentParser, arguments: argparse.Namespace, now: Now = time.time) -> int:
    """Delete the bans covering the address; say which, and when the running SBC notices."""
    try:
        coveringKeys(arguments.address, ())
    except ValueError:
        parser.error(f"not an IP address or network: {arguments.address!r}")
    try:
        database = _database(arguments.config)
        connection = _connect(database, write=True)
        if connection is None:
            return _fail(f"no ban on {arguments.address} (no state database at {database})")
        try:
            table = BanTable(connection)
            stored = table.load()
            keys = [key for key in coveringKeys(arguments.address, stored) if stored[key][0] > now()]
            for key in keys:
                table.delete(key)
        finally:
            connection.close()
    except sqlite3.Error as e:
        return _fail(f"cannot lift the ban in {database}: {e}")
    except BanCtlError as e:
        return _fail(str(e))
    if not keys:
        return _fail(f"no ban on {arguments.address}")
    for key in keys:
        print(f"lifted the ban on {key} ({stored[key][1]})")
    print(f"a running SBC lets it in again within {SYNC_INTERVAL:g} seconds")
    return 0


def _fail(message: str) -> int:
    print(f"sbc-ctl: {message}", file=sys.stderr)
    return 1
