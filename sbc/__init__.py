"""sbc: a SIP trunk gateway (session border controller) on Twisted."""

from sbc.compiled import checkBuild

__version__ = "0.1.0"

# Whether the SIP codec runs compiled by mypyc (`make compiled`); a stale build stops the import.
CODEC_COMPILED = checkBuild()
