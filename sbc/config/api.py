"""The ``[api]`` table: the HTTP API's listener, its bearer token, and the other nodes it publishes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sbc.access import isLoopback
from sbc.config.errors import ConfigError
from sbc.config.sip import parseHostPort
from sbc.config.table import Table

# The token etc/sbc.toml ships for the loopback demo; refused on any other address.
DEMO_TOKEN = "demo-token-works-on-loopback-only"


@dataclass(frozen=True)
class NodeSettings:
    """Another SBC node of the deployment, as ``/media-resources`` lists it."""

    # Signalling addresses as "transport:host:port" strings, e.g. "udp:192.0.2.7:5060".
    signalling: tuple[str, ...] = ()
    # Media addresses or CIDR ranges, with the port range their RTP comes from.
    media: tuple[str, ...] = ()
    portMin: int = 20000
    portMax: int = 29999


@dataclass(frozen=True)
class APISettings:
    """Where the HTTP API listens, and the token its ops endpoints want (None: no token set)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    otherNodes: tuple[NodeSettings, ...] = ()

    @property
    def listen(self) -> str:
        """The listen address as config writes it."""
        return f"{self.host}:{self.port}"


def loadAPI(top: Table, base: Path) -> APISettings | None:
    """The ``[api]`` table, or None without one (no API listener: it is opt-in)."""
    if not top.has("api"):
        top.used.add("api")
        return None
    table = top.table("api")
    host, port = parseHostPort(
        table.path, table.key("listen"), table.get("listen", str, APISettings().listen)
    )
    host = host.strip("[]")
    token = table.get("token", str, None)
    tokenFile = table.get("token_file", str, None)
    if token is not None and tokenFile is not None:
        raise table.error("token_file", "set token or token_file, not both")
    if tokenFile is not None:
        path = base / tokenFile
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                table.path, f"cannot read {path}: {e.strerror}", key=table.key("token_file")
            ) from None
    if token is not None and len(token) < 16:
        raise table.error("token_file" if tokenFile else "token", "a token needs at least 16 characters")
    if token == DEMO_TOKEN and not isLoopback(host):
        raise table.error("token", "the demo token works only on a loopback address: write your own")
    if token is None and not isLoopback(host):
        raise table.error(
            "listen", "an API on a non-loopback address needs a token (set token_file): it refuses to start"
        )
    nodes = tuple(_node(table, i, raw) for i, raw in enumerate(table.get("other_nodes", list, [])))
    table.done()
    return APISettings(host=host, port=port, token=token or None, otherNodes=nodes)


def _node(table: Table, index: int, raw: object) -> NodeSettings:
    node = Table(table.path, table.key(f"other_nodes[{index}]"), raw)
    signalling = node.get("signalling", list, [])
    media = node.get("media", list, [])
    for key, values in (("signalling", signalling), ("media", media)):
        if not all(isinstance(v, str) for v in values):
            raise node.error(key, "must be a list of strings")
    default = NodeSettings()
    portMin = node.integer("port_min", default.portMin, minimum=1, maximum=65535)
    portMax = node.integer("port_max", default.portMax, minimum=portMin, maximum=65535)
    node.done()
    return NodeSettings(tuple(signalling), tuple(media), portMin, portMax)
