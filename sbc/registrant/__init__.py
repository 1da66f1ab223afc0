"""Registrations the SBC keeps at peers' registrars, as a phone would (``[registrants.NAME]``).

``client``: one registration's state machine (``attempt``: its sending half); ``service``: all of
them, across reloads and shutdown; ``auth``: answering digest challenges; ``messages``: the
REGISTER and what its answers say; ``contact``: our Contact's user; ``keepalive``: TCP/TLS kept
open; ``timing``: refreshes and backoffs; ``status``: what the API and the metrics show.
"""

from sbc.registrant.client import RegistrationClient
from sbc.registrant.service import RegistrantService
from sbc.registrant.status import RegistrantState, RegistrantStatus

__all__ = ["RegistrantService", "RegistrantState", "RegistrantStatus", "RegistrationClient"]
