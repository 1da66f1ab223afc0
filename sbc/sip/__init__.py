"""The SIP codec: bytes to objects and back, with no I/O and no Twisted."""

from sbc.sip.errors import SIPParseError
from sbc.sip.framing import KEEPALIVE, Keepalive, StreamFramer
from sbc.sip.headers import COMPACT_FORMS, HeaderField, Headers, displayName, headerKey, splitList
from sbc.sip.message import (
    KNOWN_METHODS,
    MAGIC_COOKIE,
    REASON_PHRASES,
    Limits,
    Message,
    MessageParseError,
    Request,
    Response,
    parseMessage,
    responseTo,
)
from sbc.sip.structured import CSeq, NameAddr, Via, parseCSeq, parseNameAddr, parseVia
from sbc.sip.uri import URI, parseURI, unescape
from sbc.sip.validate import validateRequest, validateResponse

__all__ = [
    "COMPACT_FORMS",
    "KEEPALIVE",
    "KNOWN_METHODS",
    "MAGIC_COOKIE",
    "REASON_PHRASES",
    "URI",
    "CSeq",
    "HeaderField",
    "Headers",
    "Keepalive",
    "Limits",
    "Message",
    "MessageParseError",
    "NameAddr",
    "Request",
    "Response",
    "SIPParseError",
    "StreamFramer",
    "Via",
    "displayName",
    "headerKey",
    "parseCSeq",
    "parseMessage",
    "parseNameAddr",
    "parseURI",
    "parseVia",
    "responseTo",
    "splitList",
    "unescape",
    "validateRequest",
    "validateResponse",
]
