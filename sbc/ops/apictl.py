"""``sbc-ctl``'s commands that ask the running SBC through its HTTP API (`sbc.ops.api`).

    sbc-ctl status | trunks | calls | registrations | registrants [--config PATH] [--api URL] [--timeout S]

The API's address and bearer token come from the ``[api]`` table of the config (``listen``, and
``token`` or ``token_file``); ``--api`` names another address. Each answer is printed as a table
(`sbc.ops.tables`). Exit status 0, or 1 with one line on stderr saying what went wrong: no
``[api]`` in the config, nothing listening, no answer in time, a token the SBC refuses (401).
`sbc.ops.ctl` registers the commands with `addCommands`.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbc.config import ConfigError, loadConfig
from sbc.config.api import APISettings
from sbc.ops.configctl import configOption
from sbc.ops.tables import callsTable, registrantsTable, registrationsTable, statusLines, trunksTable

__all__ = ["APIClient", "APICtlError", "Fetch", "addCommands", "apiClient", "httpFetch"]

# Seconds one request to the API may take, connection included.
DEFAULT_TIMEOUT = 5.0

# (method, URL, headers, timeout) -> (status, body); raises OSError when no answer comes.
Fetch = Callable[[str, str, dict[str, str], float], tuple[int, bytes]]


class APICtlError(Exception):
    """A failure to report on stderr with exit status 1; the message never holds the token."""


def httpFetch(method: str, url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """One HTTP(S) request with the standard library; every status is returned, not raised."""
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class APIClient:
    """The running SBC's API at ``base`` (``http://host:port``), asked with ``token``."""

    base: str
    token: str | None = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    fetch: Fetch = field(default=httpFetch, repr=False)
    # Where the token came from, for the message when the SBC refuses it.
    tokenSource: str = "the config's [api] token"

    def get(self, path: str) -> Any:
        """The decoded JSON of ``GET path``; `APICtlError` saying why when there is none."""
        url = self.base.rstrip("/") + path
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            status, body = self.fetch("GET", url, headers, self.timeout)
        except ConnectionRefusedError:
            raise APICtlError(
                f"cannot reach the SBC's API at {self.base}: connection refused (is the SBC running, "
                "with this config's [api] table?)"
            ) from None
        except TimeoutError:
            raise APICtlError(
                f"no answer from the SBC's API at {self.base} within {self.timeout:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as e:
            raise APICtlError(f"cannot reach the SBC's API at {self.base}: {_reason(e)}") from None
        if status == 401:
            if self.token is None:
                raise APICtlError(
                    f"the SBC's API at {self.base} wants a token (401), and none is set: "
                    "add token_file to the config's [api] table"
                )
            raise APICtlError(
                f"the SBC's API at {self.base} refused the token (401): {self.tokenSource} is not "
                "the running SBC's (a changed token takes a restart)"
            )
        decoded = _decode(body)
        if status != 200:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            detail = f": {error}" if error else ""
            if status == 404:
                detail = f": {path} is unknown there (an older SBC?)"
            raise APICtlError(f"the SBC's API at {self.base} answered {status}{detail}")
        if decoded is None:
            raise APICtlError(f"the SBC's API at {self.base} answered {path} with something that is not JSON")
        return decoded


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def baseURL(settings: APISettings) -> str:
    """Where the API of ``settings`` answers: an address bound to every interface is asked on loopback."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _safeFor(url: str) -> bool:
    """Whether a bearer token may go to ``url``: over https, or plain http on loopback only."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def apiClient(configPath: Path, override: str | None, timeout: float, fetch: Fetch = httpFetch) -> APIClient:
    """The client for the config's ``[api]`` (its token; its address unless ``override`` names one)."""
    try:
        config = loadConfig(configPath)
    except ConfigError as e:
        raise APICtlError(str(e)) from None
    settings = config.api
    if settings is None:
        if override is None:
            raise APICtlError(
                f"{configPath} has no [api] table, so the SBC runs no HTTP API: add one (see the "
                "comments in etc/sbc.toml) and restart the SBC, or name an API with --api URL"
            )
        return APIClient(override, None, timeout, fetch, f"no token in {configPath}")
    if settings.token is not None and not (settings.token.isascii() and settings.token.isprintable()):
        # http.client would refuse the header with the token in its message: say it here, without.
        raise APICtlError(f"the [api] token of {configPath} holds characters an HTTP header cannot carry")
    if override is not None and urllib.parse.urlsplit(override).scheme not in ("http", "https"):
        raise APICtlError(f"--api {override!r}: give an http:// or https:// URL")
    if override is not None and settings.token is not None and not _safeFor(override):
        raise APICtlError(
            f"--api {override!r}: plain http to another host would send the token in clear; "
            "use https:// (e.g. through a TLS proxy), or an SSH tunnel to a loopback address"
        )
    return APIClient(
        override or baseURL(settings), settings.token, timeout, fetch, f"the token of {configPath}"
    )


# How the commands reach the API, and "now" for call durations (the SBC's own clock is the wall
# clock too); tests replace both.
FETCH: Fetch = httpFetch
WALL_CLOCK: Callable[[], float] = time.time

# The commands: name -> (API path, help, what prints the answer).
Render = Callable[[Any], list[str]]
COMMANDS: dict[str, tuple[str, str, Render]] = {
    "status": (
        "/status",
        "the running SBC's version, uptime, config generation and last reload",
        statusLines,
    ),
    "trunks": (
        "/trunks",
        "each trunk's whitelist size, limits and calls, and each pinged gateway's state (up/down)",
        trunksTable,
    ),
    "calls": (
        "/calls",
        "the calls in progress: id, from, to, state, duration",
        lambda body: callsTable(body, WALL_CLOCK()),
    ),
    "registrations": (
        "/registrations",
        "the devices registered now: AOR, contact, transport, source, seconds left",
        registrationsTable,
    ),
    "registrants": (
        "/registrants",
        "our own registrations to peers' registrars: state, last answer, next attempt",
        registrantsTable,
    ),
}


def addCommands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register status, trunks, calls, registrations and registrants with ``sbc-ctl``'s subcommands."""
    for name, (path, summary, _) in COMMANDS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=f"Print {summary}, as the running SBC's HTTP API answers GET {path}. "
            "The API's address and token come from the config's [api] table. Exit 1 when the API "
            "cannot be asked (no [api], nothing listening, a refused token).",
        )
        configOption(command)
        command.add_argument(
            "--api",
            metavar="URL",
            help="ask the API at URL (e.g. http://127.0.0.1:8080) instead of the config's [api] listen",
        )
        command.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help=f"how long to wait for the answer (default: {DEFAULT_TIMEOUT:g})",
        )
        command.set_defaults(run=_run, subparser=command)


def _run(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    """Ask the API for this command's path and print the answer as a table."""
    path, _, render = COMMANDS[arguments.commandName]
    try:
        client = apiClient(arguments.config, arguments.api, arguments.timeout, FETCH)
        body = client.get(path)
    except APICtlError as e:
        print(f"sbc-ctl: {e}", file=sys.stderr)
        return 1
    for line in render(body):
        print(line)
    return 0
