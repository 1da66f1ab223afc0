"""sbc: a SIP trunk gateway (session border controller) on Twisted."""

import os

from sbc.compiled import checkBuild, preferSource

__version__ = "0.1.0"

# Whether the SIP codec runs compiled by mypyc (`make compiled`); a stale build stops the import.
# SBC_PURE=1 runs it as pure Python whatever is built.
if os.environ.get("SBC_PURE"):
    preferSource()
    CODEC_COMPILED = False
else:
    CODEC_COMPILED = checkBuild()
