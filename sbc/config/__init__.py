"""etc/ files to one frozen `Config`; every mistake becomes a `ConfigError` naming file and key.

One module per part of the file (``sip``, ``trunks``, ``registrar``, ``calls``, ``routing``), each
with its settings dataclasses (every default written there, once) and its loader; ``model`` holds
`Config` and `loadConfig`, which composes the loaders. The public names are re-exported here.
"""

from sbc.config.calls import CallSettings, Fork, LogSettings, MediaEngine, MediaSettings, Redirect
from sbc.config.errors import ConfigError
from sbc.config.model import Config, loadConfig
from sbc.config.registrar import RegistrarSettings
from sbc.config.routing import NumberPlan, PrefixRoute, RoutingRules, RoutingSettings
from sbc.config.sip import Listener, SIPSettings, TLSSettings, Transport
from sbc.config.table import Table
from sbc.config.trunks import MediaMode, Refer, Trunk

__all__ = [
    "CallSettings",
    "Config",
    "ConfigError",
    "Fork",
    "Listener",
    "LogSettings",
    "MediaEngine",
    "MediaMode",
    "MediaSettings",
    "NumberPlan",
    "PrefixRoute",
    "Redirect",
    "Refer",
    "RegistrarSettings",
    "RoutingRules",
    "RoutingSettings",
    "SIPSettings",
    "TLSSettings",
    "Table",
    "Transport",
    "Trunk",
    "loadConfig",
]
