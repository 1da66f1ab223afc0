"""The ``[trunks.NAME]`` tables: the peers we exchange calls with, their gateways and their policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from netaddr import IPSet

from sbc.config.calls import CallSettings
from sbc.config.errors import ConfigError
from sbc.config.sip import parseHostPort
from sbc.config.table import Table
from sbc.config.whitelist import loadWhitelist


class Refer(StrEnum):
    """What a trunk's REFER gets: refused, or relayed to the other leg."""

    REJECT = "reject"
    RELAY = "relay"


class MediaMode(StrEnum):
    """A trunk's media: anchored in the SBC, or its SDP left untouched."""

    RELAY = "relay"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Trunk:
    """One peer trunk: who it is (its whitelist), where its calls go (gateways), and its policy."""

    name: str
    whitelistPath: Path
    whitelist: IPSet = field(compare=False, repr=False)
    gateways: tuple[tuple[str, int], ...] = ()
    description: str = ""
    # Seconds without any provisional answer before the next gateway is tried.
    failoverTimeout: float = 2.0
    # Final codes that send the call to the next gateway (4xx and 6xx otherwise go back).
    failoverCodes: tuple[int, ...] = (408, 500, 502, 503, 504)
    # Timer C: seconds of ringing before we give up on the callee.
    noAnswerTimeout: float = CallSettings.noAnswerTimeout
    maxCallLength: float = CallSettings.maxCallLength
    # Trust this trunk's P-Asserted-Identity (and pass ours to it).
    trusted: bool = False
    # Extra headers that may cross the SBC on calls through this trunk, beyond the built-in list.
    passHeaders: tuple[str, ...] = ()
    # REFER from this trunk: refused (default) or relayed.
    refer: Refer = Refer.REJECT
    # Media anchored in the SBC (default), or SDP left untouched (only when asked for).
    media: MediaMode = MediaMode.RELAY
    # Codecs (encoding names) allowed on this trunk's calls; None allows all.
    codecs: tuple[str, ...] | None = None
    # Pass ISUP body parts (SIP-I/SIP-T) with the anchored SDP; only between two trunks that both
    # say so. Off: the other leg gets the SDP alone.
    passIsup: bool = False


def loadTrunks(top: Table, base: Path) -> tuple[Trunk, ...]:
    """Every ``[trunks.NAME]`` table, in file order."""
    table = top.table("trunks")
    trunks = tuple(_trunk(base, table.table(name), name) for name in list(table.data))
    table.done()
    return trunks


def _trunk(base: Path, table: Table, name: str) -> Trunk:
    path = table.path
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(path, "trunk names are letters, digits, - and _", key=table.name)
    whitelistPath = base / table.get("whitelist", str, f"whitelist/{name}.txt")
    gateways = tuple(parseHostPort(path, table.key("gateways"), g) for g in table.get("gateways", list, []))
    description = table.get("description", str, Trunk.description)
    codes = table.get("failover_codes", list, list(Trunk.failoverCodes))
    if not all(isinstance(c, int) and 300 <= c <= 699 for c in codes):
        raise table.error("failover_codes", "must be a list of SIP status codes")
    passHeaders = table.get("pass_headers", list, [])
    if not all(isinstance(h, str) and h for h in passHeaders):
        raise table.error("pass_headers", "must be a list of header names")
    codecList = table.get("codecs", list, None)
    if codecList is not None and not all(isinstance(c, str) and c for c in codecList):
        raise table.error("codecs", "must be a list of codec names")
    trunk = Trunk(
        name=name,
        whitelistPath=whitelistPath,
        whitelist=loadWhitelist(whitelistPath),
        gateways=gateways,
        description=description,
        failoverTimeout=table.number("failover_timeout", Trunk.failoverTimeout, minimum=0.1, maximum=300),
        failoverCodes=tuple(codes),
        noAnswerTimeout=table.number("no_answer_timeout", Trunk.noAnswerTimeout, minimum=1, maximum=3600),
        maxCallLength=table.number("max_call_length", Trunk.maxCallLength, minimum=1, maximum=7 * 86400),
        trusted=table.get("trusted", bool, Trunk.trusted),
        passHeaders=tuple(h.lower() for h in passHeaders),
        refer=table.choice("refer", Trunk.refer),
        media=table.choice("media", Trunk.media),
        codecs=None if codecList is None else tuple(c.lower() for c in codecList),
        passIsup=table.get("pass_isup", bool, Trunk.passIsup),
    )
    table.done()
    return trunk
