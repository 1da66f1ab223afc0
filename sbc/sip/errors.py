"""The one exception the SIP codec raises for hostile or broken input."""

from __future__ import annotations


class SIPParseError(ValueError):
    """Input that is not acceptable SIP.

    ``status`` is the response a UAS should answer with when the message can be answered at all
    (400 unless a more precise code applies, such as 505 or 416).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
