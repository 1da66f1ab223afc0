"""``sbc-ctl``: the command ops run beside the server to change what it reads.

    sbc-ctl [--users PATH] adduser USER@DOMAIN [--demo] [--password-stdin]
    sbc-ctl init DIR [--state PATH]
    sbc-ctl options sip:HOST[:PORT] [--from ADDRESS] [--timeout SECONDS]
    sbc-ctl check | explain | reload ...   (the running config: see sbc.ops.configctl)
    sbc-ctl bans | unban IP [--config PATH]   (the ban table: see sbc.ops.banctl)
    sbc-ctl status | trunks | calls | registrations | registrants   (the HTTP API: see sbc.ops.apictl)

Each subcommand is a function taking the parsed arguments and returning an exit status; add one
by writing it and registering it in `_parser`. Exit status: 0 done, 2 usage error, 1 anything
else, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sbc.config.errors import ConfigError
from sbc.config.users import accountKey, formatAccount, parseAccountName, parseUsers
from sbc.ops.apictl import addCommands as addAPICommands
from sbc.ops.banctl import addCommands as addBanCommands
from sbc.ops.configctl import addCommands as addConfigCommands
from sbc.ops.probe import ProbeError, sendOptions
from sbc.ops.starter import StarterError, writeStarter

__all__ = ["main"]

DEFAULT_USERS = Path("etc/users.txt")
# HA1 hashes are as good as passwords for our realm: the users file is its owner's alone, whatever
# mode it had (group or other bits are dropped, and sbc-ctl says so).
USERS_MODE = 0o600

# What a users file starts with when adduser creates it, so that ops can edit it unaided.
NEW_USERS_HEADER = """\
# SIP accounts that may register with this SBC, one per line:
#
#   user@domain md5=<HA1> sha256=<HA1> [demo]
#
# HA1 is H(user:domain:password) with the domain as digest realm (RFC 7616), so no password
# is stored here. Add an account, or change its password, with:
#
#   sbc-ctl adduser user@domain
#
# Lines starting with # are comments; blank lines are ignored.
"""


class CtlError(Exception):
    """A failure to report on stderr with exit status 1; the message never holds a password."""


Command = Callable[[argparse.ArgumentParser, argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbc-ctl", description="Manage the files the SBC reads.")
    parser.add_argument(
        "--users",
        type=Path,
        default=DEFAULT_USERS,
        metavar="PATH",
        help=f"the users file (default: {DEFAULT_USERS})",
    )
    commands = parser.add_subparsers(dest="commandName", metavar="COMMAND", required=True)

    adduser = commands.add_parser(
        "adduser",
        help="add an account, or set the password of an existing one",
        description="Add USER@DOMAIN to the users file, or replace its line; other lines stay as they are.",
    )
    adduser.add_argument("account", metavar="USER@DOMAIN")
    adduser.add_argument("--demo", action="store_true", help="mark the account as a demo account")
    adduser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking twice",
    )
    adduser.set_defaults(run=_adduser, subparser=adduser)

    init = commands.add_parser(
        "init",
        help="write a commented starter config (the loopback demo) into DIR",
        description="Write sbc.toml, its whitelists, users and routing hook into DIR, with a state "
        "directory and a fresh self-signed loopback TLS certificate; an existing sbc.toml is kept.",
    )
    init.add_argument("directory", metavar="DIR", type=Path)
    init.add_argument("--state", type=Path, metavar="PATH", help="the state directory (default: DIR/state)")
    init.set_defaults(run=_init, subparser=init)

    options = commands.add_parser(
        "options",
        help="send one SIP OPTIONS over UDP from a chosen address and print the answer",
        description="Send OPTIONS to URI from ADDRESS (bound, so the SBC sees that source) and print "
        "the response; exit 1 when nothing answers, as the SBC does for a source it does not admit.",
    )
    options.add_argument("uri", metavar="URI", help="e.g. sip:127.0.0.1:5060")
    options.add_argument(
        "--from", dest="source", default="0.0.0.0", metavar="ADDRESS", help="the source address to send from"
    )
    options.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS", help="how long to wait")
    options.set_defaults(run=_options, subparser=options)
    addConfigCommands(commands)  # check, explain, reload (sbc.ops.configctl)
    addBanCommands(commands)  # bans, unban (sbc.ops.banctl)
    addAPICommands(commands)  # status, trunks, calls, registrations, registrants (sbc.ops.apictl)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``sbc-ctl`` command; returns the exit status."""
    parser = _parser()
    try:
        arguments = parser.parse_args(argv)
        run: Command = arguments.run
        return run(arguments.subparser, arguments)
    except SystemExit as e:
        # argparse exits on --help (0) and on usage errors (2); report, rather than exit, so
        # main() can be called from tests and other code.
        return e.code if isinstance(e.code, int) else 1
    except CtlError as e:
        print(f"sbc-ctl: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _adduser(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Add or replace one account line, asking for its password."""
    try:
        user, domain = parseAccountName(arguments.account)
    except ValueError as e:
        parser.error(str(e))
    password = _readPassword(arguments.password_stdin)
    line = formatAccount(user, domain, password, demo=arguments.demo)
    replaced = _writeAccount(arguments.users, (user, domain), line)
    print(f"{'replaced' if replaced else 'added'} {user}@{domain} in {arguments.users}")
    return 0


def _init(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Write the starter config and say how to run it."""
    try:
        config = writeStarter(arguments.directory, arguments.state)
    except StarterError as e:
        raise CtlError(str(e)) from None
    print(f"wrote {config} (the loopback demo, with a self-signed certificate); run it with")
    print(f"    twistd -n --pidfile= sbc --config {config}")
    return 0


def _options(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Print the answer to one OPTIONS, or say that none came."""
    try:
        result = sendOptions(arguments.uri, arguments.source, arguments.timeout)
    except ProbeError as e:
        raise CtlError(str(e)) from None
    if result.response is None:
        print(
            f"no answer from {arguments.uri} within {arguments.timeout:g} s (sent from {arguments.source})",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(result.response.toBytes().decode("utf-8", "replace").replace("\r\n", "\n"))
    return 0


def _readPassword(fromStdin: bool) -> str:
    """The new password: one line of stdin, or asked twice on the terminal to catch typos."""
    try:
        if fromStdin:
            password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        else:
            password = getpass.getpass("Password: ")
            if password and getpass.getpass("Password (again): ") != password:
                raise CtlError("the passwords do not match; nothing changed")
    except EOFError:
        password = ""
    if not password:
        raise CtlError("an empty password is refused; nothing changed")
    return password


def _writeAccount(path: Path, key: tuple[str, str], line: str) -> bool:
    """Put ``line`` in the users file in place of ``key``'s line, or at its end.

    Every other byte of the file is kept. The result is parsed before it is written, so the
    file the server reads is never made invalid, and it is written to a temporary file then
    renamed over the old one, so a crash leaves the old file or the new one, never half.
    Returns whether a line was replaced.
    """
    # Write to the file a symlink points at, rather than replacing the link with a file.
    target = Path(os.path.realpath(path))
    try:
        old: bytes | None = target.read_bytes()
        status: os.stat_result | None = target.stat()
    except FileNotFoundError:
        old, status = None, None
    except OSError as e:
        raise CtlError(f"cannot read {path}: {e.strerror}") from None

    if old is None:
        new, replaced = NEW_USERS_HEADER.encode() + line.encode() + b"\n", False
    else:
        new, replaced = _edit(path, old, key, line)
    try:
        parseUsers(new.decode("utf-8"), path)
    except ConfigError as e:
        raise CtlError(f"{e}; fix that line first, nothing changed") from None

    _replaceFile(path, target, new, status)
    if status is not None and stat.S_IMODE(status.st_mode) & ~USERS_MODE:
        print(
            f"sbc-ctl: {path} was mode {stat.S_IMODE(status.st_mode):04o} and is now {USERS_MODE:04o}: "
            "it holds password hashes, for the SBC's account (its owner) alone",
            file=sys.stderr,
        )
    return replaced


def _edit(path: Path, old: bytes, key: tuple[str, str], line: str) -> tuple[bytes, bool]:
    lines = old.splitlines(keepends=True)
    endings = [raw[len(raw.rstrip(b"\r\n")) :] for raw in lines]
    newline = next((ending for ending in endings if ending), b"\n")
    replaced = False
    result: list[bytes] = []
    for lineno, (raw, ending) in enumerate(zip(lines, endings, strict=True), 1):
        try:
            text = raw[: len(raw) - len(ending)].decode("utf-8")
        except UnicodeDecodeError:
            raise CtlError(f"{path}:{lineno}: not UTF-8 text; nothing changed") from None
        if accountKey(text) != key:
            result.append(raw)
            continue
        # The account's line: new fields, the old trailing comment (and the space before it) kept,
        # and the old digest algorithms when the new line names none (a password change keeps them).
        body, hashSign, comment = text.partition("#")
        kept = body[len(body.rstrip()) :] + hashSign + comment if hashSign else ""
        result.append((_keepAlgorithms(line, body) + kept).encode() + ending)
        replaced = True
    if not replaced:
        if result and not endings[-1]:
            result.append(newline)
        result.append(line.encode() + newline)
    return b"".join(result), replaced


def _keepAlgorithms(line: str, old: str) -> str:
    """``line`` with the ``algorithms=`` field of the ``old`` line, unless it has one of its own."""
    fields = line.split()
    previous = [field for field in old.split() if field.startswith("algorithms=")]
    if not previous or any(field.startswith("algorithms=") for field in fields):
        return line
    at = len(fields) - 1 if fields[-1] == "demo" else len(fields)
    return " ".join([*fields[:at], previous[0], *fields[at:]])


def _replaceFile(path: Path, target: Path, data: bytes, status: os.stat_result | None) -> None:
    """Atomically put ``data`` at ``target``, mode 0600, keeping the old file's owner."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise CtlError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), USERS_MODE)
            if status is not None and (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
                # As root, keep the file readable by the account the server runs as.
                try:
                    os.fchown(f.fileno(), status.st_uid, status.st_gid)
                except PermissionError:
                    print(f"sbc-ctl: warning: {path} is now owned by you, not its old owner", file=sys.stderr)
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CtlError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable; not every platform lets a directory be opened for this.
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


if __name__ == "__main__":
    sys.exit(main())
