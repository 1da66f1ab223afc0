"""``sbc-ctl``'s commands about the configuration the SBC runs: check it, explain it, reload it.

    sbc-ctl check [--config PATH]
    sbc-ctl explain IP[:PORT] [--transport T] [--config PATH]
    sbc-ctl explain --call FROM-IP NUMBER [--as USER@DOMAIN] [--domain HOST] [--config PATH]
    sbc-ctl reload [--pidfile PATH]

`sbc.ops.ctl` registers them with `addCommands`. Each returns an exit status: 0 when the config
loads (check), the source is accepted or the call routed (explain), or the signal was sent (reload);
1 otherwise, with the reasons on stderr (explain's verdict stays on stdout either way).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sbc.access import DEVICES
from sbc.config import ConfigError, Transport
from sbc.config.users import parseAccountName
from sbc.ops.check import loadAsServer, problems, summary
from sbc.ops.explain import SourceError, explainCall, explainSource, parseSource, readBans
from sbc.ops.pidfile import DEFAULT_PIDFILE, PidfileError, signalServer
from sbc.routing.registrars import withRegistrars

__all__ = ["DEFAULT_CONFIG", "addCommands"]

# twistd sbc's own --config default (sbc.tap.Options), relative to the working directory.
DEFAULT_CONFIG = Path("etc/sbc.toml")
# The state database's name in the [state] directory (as sbc.tap opens it).
STATE_DATABASE = "sbc.sqlite"
# What "now" is for bans, which the state database keeps in wall-clock seconds (tests replace it).
WALL_CLOCK: Callable[[], float] = time.time


def addCommands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register check, explain and reload with ``sbc-ctl``'s subcommands."""
    check = commands.add_parser(
        "check",
        help="load the config as the SBC would, and list what is wrong with it",
        description="Load the config, its whitelists, users, routing hook and TLS files exactly as "
        "`twistd sbc` does at start and on reload. Exit 0 with a summary, or 1 with each problem as "
        "file:line: message. Warnings are printed, but do not fail the check.",
    )
    configOption(check)
    check.set_defaults(run=_check, subparser=check)

    explain = commands.add_parser(
        "explain",
        help="say which trunk or device network accepts a source (or why it is dropped), or route a call",
        description="Say which trunk or device network accepts IP[:PORT], by which line of which "
        "whitelist, or why the SBC drops it (no whitelist holds it, a ban in the state database, a "
        "trunk that requires TLS). With --call, show what each router says about a call from "
        "FROM-IP to NUMBER, and the decision. Exit 0 when accepted (or routed), 1 when dropped.",
    )
    explain.add_argument("source", metavar="IP[:PORT]", help="the source address (FROM-IP with --call)")
    explain.add_argument(
        "number", metavar="NUMBER", nargs="?", help="with --call: the dialled number or user"
    )
    explain.add_argument("--call", action="store_true", help="explain the routing of a call to NUMBER")
    explain.add_argument(
        "--transport", type=Transport, choices=list(Transport), help="the transport the source uses"
    )
    explain.add_argument(
        "--as",
        dest="authenticated",
        metavar="USER@DOMAIN",
        help="with --call from a device: the account it authenticated as (devices route only then)",
    )
    explain.add_argument(
        "--domain", metavar="HOST", help="with --call: the Request-URI host (default: our default domain)"
    )
    configOption(explain)
    explain.set_defaults(run=_explain, subparser=explain)

    reload = commands.add_parser(
        "reload",
        help="make the running SBC reload its config (SIGHUP through its pidfile)",
        description="Send SIGHUP to the SBC whose process id is in the pidfile: it reloads every "
        "config file (a bad one keeps the running config; its log says which) and reopens the CDR file.",
    )
    reload.add_argument(
        "--pidfile",
        type=Path,
        default=DEFAULT_PIDFILE,
        metavar="PATH",
        help=f"twistd's pidfile (default: {DEFAULT_PIDFILE}, twistd's own, in its working directory)",
    )
    reload.set_defaults(run=_reload, subparser=reload)


def configOption(parser: argparse.ArgumentParser) -> None:
    """The ``--config PATH`` option every subcommand that reads the config takes."""
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"the main config file (default: {DEFAULT_CONFIG}, as for twistd sbc)",
    )


def _fail(lines: list[str]) -> int:
    for line in lines:
        print(f"sbc-ctl: {line}", file=sys.stderr)
    return 1


def _check(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Print the summary and warnings of a config that loads, or each of its problems."""
    try:
        loaded = loadAsServer(arguments.config)
    except ConfigError as e:
        return _fail(problems(e))
    for warning in loaded.warnings:
        print(f"sbc-ctl: warning: {warning}", file=sys.stderr)
    print(summary(loaded.config))
    return 0


def _explain(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Print the verdict on a source, or the routing of a call from it."""
    if arguments.call != (arguments.number is not None):
        parser.error("--call needs FROM-IP and NUMBER; without --call give only IP[:PORT]")
    try:
        source = parseSource(arguments.source)
        if arguments.authenticated is not None:
            user, domain = parseAccountName(arguments.authenticated)
            arguments.authenticated = f"{user}@{domain}"
    except (SourceError, ValueError) as e:
        parser.error(str(e))
    try:
        loaded = loadAsServer(arguments.config)
    except ConfigError as e:
        return _fail(problems(e))
    config = withRegistrars(loaded.config)  # as the gate: registrars given by address admitted
    if arguments.call:
        peer = config.access.classify(source.host)
        if peer is not None and peer.kind == DEVICES and arguments.authenticated is None:
            parser.error(
                f"{source.host} is a device network: its calls are routed only once it "
                "authenticates, so say as which account with --as USER@DOMAIN"
            )
        explained = explainCall(
            config,
            loaded.chain,
            source,
            arguments.number,
            domain=arguments.domain,
            authenticatedUser=arguments.authenticated,
        )
    else:
        bans = readBans(config.stateDirectory / STATE_DATABASE)
        explained = explainSource(config, source, arguments.transport, bans, WALL_CLOCK())
    for line in explained.lines:
        print(line)
    return 0 if explained.accepted else 1


def _reload(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Send SIGHUP to the SBC that the pidfile names."""
    try:
        pid = signalServer(arguments.pidfile)
    except PidfileError as e:
        return _fail([str(e)])
    print(f"sent SIGHUP to the SBC (process {pid}, from {arguments.pidfile}); its log tells how it went")
    return 0
