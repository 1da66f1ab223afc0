"""``twistd sbc``: command-line options and the service tree."""

from __future__ import annotations

from typing import Any

from twisted.application import internet, service
from twisted.python import usage

from sbc.config import Config, loadConfig
from sbc.errors import ConfigError
from sbc.listeners import SignalReload, listenerServices
from sbc.reload import ConfigReloader
from sbc.server import SIPServer
from sbc.tls import serverContextFactory


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the sbc SIP trunk gateway. Everything else (listeners, trunks and their whitelists, "
        "limits, TLS files) is in the config file; edit it and the whitelists it names while the "
        "SBC runs, and it reloads them (or send SIGHUP)."
    )
    optParameters = [
        ["config", "c", "etc/sbc.toml", "Path to the main configuration file (TOML)."],
    ]

    def postOptions(self) -> None:
        try:
            config = loadConfig(self["config"])
            self["tlsContext"] = serverContextFactory(config.tls) if config.tls is not None else None
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self["parsedConfig"] = config


class SBCService(service.MultiService):
    """The SBC's service tree; stopping it cancels every SIP timer."""

    def __init__(self, server: SIPServer) -> None:
        super().__init__()
        self.server = server

    def stopService(self) -> Any:
        result = super().stopService()
        self.server.transactions.stop()
        return result


def makeService(options: Options) -> service.MultiService:
    from twisted.internet import reactor  # the one place we take the real reactor

    config: Config = options["parsedConfig"]
    server = SIPServer(config, reactor)
    top = SBCService(server)
    for child in listenerServices(reactor, config, server, reactor, options["tlsContext"]):
        child.setServiceParent(top)
    reloader = ConfigReloader(config, server.setConfig)
    poller = internet.TimerService(config.whitelistPollInterval, reloader.poll)
    poller.clock = reactor
    poller.setServiceParent(top)
    SignalReload(reactor, reloader.reload).setServiceParent(top)
    return top
