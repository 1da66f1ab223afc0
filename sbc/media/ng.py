"""A client for rtpengine's ng control protocol: requests, retransmission, replies matched by cookie.

The ng protocol is one UDP datagram each way: ``<cookie> <bencoded dictionary>``. The request
names a ``command``; the reply repeats the cookie and carries a ``result`` ("ok", "pong" or
"error" with an ``error-reason``). UDP loses datagrams, so `RtpengineClient` retransmits a request
with the *same* cookie until a reply comes or its tries run out. That is safe for offer and answer
too: rtpengine keeps a cache of recent cookies and answers a retransmission with the reply it
already sent instead of running the command twice. The cache is keyed by the cookie alone, so each
client draws a random cookie prefix: two SBC nodes, or one node before and after a restart, never
reuse each other's cookies.

Everything runs on the injected reactor (for the UDP port) and clock (for the timers), never on the
global reactor, so the tests drive it with a fake UDP reactor and a `Clock`. `IMediaRelay` on top
of this client is `sbc.media.rtpengine.RtpengineRelay`.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.interfaces import Address, MediaError, MediaUnavailableError, NotAcceptableError
from sbc.media.bencode import BencodeError, Encodable, Value, decode, encode
from sbc.waiting import whenAllReady

# The largest datagram UDP carries. A query reply for a call with many streams runs to kilobytes;
# Twisted's default of 8,192 bytes would silently cut a big one.
MAX_DATAGRAM = 65535

# Results that mean success; anything else is a failure whose reason we report.
_SUCCESS = frozenset({b"ok", b"pong"})


class RtpengineError(MediaError):
    """Base of every way an ng request can fail, so that a caller can catch them all at once.

    Each subclass is also the `IMediaRelay` error the call layer answers by: a refusal is
    `NotAcceptableError` (488), no reply or a broken one `MediaUnavailableError` (503).
    """


class RtpengineRefusedError(RtpengineError, NotAcceptableError):
    """rtpengine answered ``result: error`` (or another result that is not success)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"rtpengine {command}: {reason}")
        self.command = command
        self.reason = reason


class RtpengineTimeoutError(RtpengineError, MediaUnavailableError):
    """No reply after every try: rtpengine is down, unreachable, or overloaded."""

    def __init__(self, command: str, tries: int, seconds: float) -> None:
        super().__init__(f"rtpengine {command}: no reply after {tries} tries in {seconds:g}s")
        self.command = command
        self.tries = tries


class RtpengineProtocolError(RtpengineError, MediaUnavailableError):
    """A reply with our cookie that is not the ng protocol: bad bencode, no result, no SDP."""


class RtpengineStoppedError(RtpengineError, MediaUnavailableError):
    """The client stopped while the request was waiting for its reply."""


def isUnknownCall(failure: Failure | BaseException) -> bool:
    """Whether rtpengine refused a request because it has no such call (deleted or timed out).

    rtpengine says "Unknown call-id" to query, answer and most commands, and "Call-ID not found or
    tags didn't match" to delete (as a warning beside "ok", or as the error in older versions).
    """
    error = failure.value if isinstance(failure, Failure) else failure
    if not isinstance(error, RtpengineRefusedError):
        return False
    reason = error.reason.lower()
    return "unknown call" in reason or "not found" in reason


class _NgProtocol(DatagramProtocol):
    """Framing only: every datagram goes to the client."""

    def __init__(self, client: RtpengineClient) -> None:
        self.client = client

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.client.datagramReceived(datagram, addr)


@dataclass
class _Pending:
    """One request on the wire, waiting for the reply that carries its cookie."""

    command: str
    datagram: bytes
    deferred: Deferred[dict[bytes, Value]]
    tries: int = 1
    timer: IDelayedCall | None = field(default=None, repr=False)


class RtpengineClient:
    """Sends ng commands to one rtpengine daemon and matches its replies by cookie.

    A request is sent, then retransmitted every ``timeout`` seconds up to ``retries`` more times;
    after ``(retries + 1) * timeout`` seconds with no reply its Deferred fails with
    `RtpengineTimeoutError`. The UDP port opens on the first request (or `start`), bound to loopback
    when the daemon is on loopback and to the wildcard of its address family otherwise. Replies
    from any address but the daemon's are ignored. ``address`` must be an IP literal.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorUDP,
        clock: IReactorTime,
        address: Address,
        timeout: float = 1.0,
        retries: int = 3,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be zero or more, not {retries!r}")
        host, port = address
        self._ip = ipaddress.ip_address(host)
        self.reactor = reactor
        self.clock = clock
        self.address: Address = (host, port)
        self.timeout = timeout
        self.retries = retries
        self._prefix = secrets.token_hex(6)
        self._counter = 0
        self._pending: dict[bytes, _Pending] = {}
        self._protocol = _NgProtocol(self)
        self._port: IListeningPort | None = None

    # -- the port --------------------------------------------------------------------------

    def start(self) -> None:
        """Open the UDP port now (it opens on the first request otherwise); a second call is a no-op."""
        if self._port is not None:
            return
        if self._ip.is_loopback:
            interface = "::1" if self._ip.version == 6 else "127.0.0.1"
        else:
            interface = "::" if self._ip.version == 6 else "0.0.0.0"
        self._port = self.reactor.listenUDP(
            0, self._protocol, interface=interface, maxPacketSize=MAX_DATAGRAM
        )

    def stop(self) -> Deferred[None]:
        """Close the port; every request still waiting fails with `RtpengineStoppedError`."""
        pending, self._pending = self._pending, {}
        for request in pending.values():
            if request.timer is not None and request.timer.active():
                request.timer.cancel()
            request.deferred.errback(RtpengineStoppedError(f"rtpengine {request.command}: client stopped"))
        port, self._port = self._port, None
        if port is None:
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        whenAllReady([port.stopListening()], lambda: stopped.callback(None))
        return stopped

    @property
    def pendingCount(self) -> int:
        """How many requests wait for a reply (for tests and metrics)."""
        return len(self._pending)

    # -- requests --------------------------------------------------------------------------

    def request(
        self, command: str, params: Mapping[str, Encodable] | None = None
    ) -> Deferred[dict[bytes, Value]]:
        """Send ``command`` with ``params``; fire with the whole reply dictionary on success.

        Fails with `RtpengineRefusedError`, `RtpengineTimeoutError`, `RtpengineProtocolError` or
        `RtpengineStoppedError`, all subclasses of `RtpengineError`. Cancelling the Deferred stops
        the retransmissions.
        """
        message: dict[str, Encodable] = dict(params or {})
        message["command"] = command
        body = encode(message)
        self._counter += 1
        cookie = f"{self._prefix}_{self._counter}".encode("ascii")
        datagram = cookie + b" " + body
        if len(datagram) > MAX_DATAGRAM:
            tooBig = f"rtpengine {command}: request of {len(datagram)} bytes is too big"
            return _failed(RtpengineProtocolError(tooBig))
        try:
            self.start()
        except Exception as e:
            return _failed(e)

        def cancel(_: Deferred[dict[bytes, Value]]) -> None:
            request = self._pending.pop(cookie, None)
            if request is not None and request.timer is not None and request.timer.active():
                request.timer.cancel()

        deferred: Deferred[dict[bytes, Value]] = Deferred(cancel)
        request = _Pending(command, datagram, deferred)
        self._pending[cookie] = request
        self._transmit(cookie, request)
        return deferred

    def _transmit(self, cookie: bytes, request: _Pending) -> None:
        assert self._port is not None
        try:
            cast(Any, self._port).write(request.datagram, self.address)
        except OSError as e:
            # A send error (no route, buffer full) is like a lost datagram: the timer retries.
            self.log.warn("rtpengine {command}: send failed: {error}", command=request.command, error=e)
        request.timer = self.clock.callLater(self.timeout, self._expired, cookie)

    def _expired(self, cookie: bytes) -> None:
        request = self._pending.get(cookie)
        if request is None:
            return
        if request.tries > self.retries:
            del self._pending[cookie]
            request.deferred.errback(
                RtpengineTimeoutError(request.command, request.tries, request.tries * self.timeout)
            )
            return
        request.tries += 1
        self._transmit(cookie, request)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """A datagram on our port: complete the request whose cookie it carries, if any."""
        if not self._fromDaemon(addr):
            return
        cookie, space, body = datagram.partition(b" ")
        request = self._pending.pop(cookie, None) if space else None
        if request is None:
            # A late answer to a request that timed out, a duplicate, or noise: nothing waits.
            return
        if request.timer is not None and request.timer.active():
            request.timer.cancel()
        try:
            reply = decode(body)
        except BencodeError as e:
            request.deferred.errback(RtpengineProtocolError(f"rtpengine {request.command}: bad reply: {e}"))
            return
        if not isinstance(reply, dict):
            request.deferred.errback(
                RtpengineProtocolError(f"rtpengine {request.command}: reply is not a dictionary")
            )
            return
        result = reply.get(b"result")
        if result in _SUCCESS:
            request.deferred.callback(reply)
            return
        if result == b"error":
            reason = reply.get(b"error-reason", b"no error-reason given")
            text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else repr(reason)
        elif isinstance(result, bytes):
            text = f"result {result.decode('utf-8', 'replace')!r}"
        else:
            text = "reply has no result"
        request.deferred.errback(RtpengineRefusedError(request.command, text))

    def _fromDaemon(self, addr: Any) -> bool:
        try:
            host, port = addr[0], addr[1]
            return bool(port == self.address[1] and ipaddress.ip_address(host) == self._ip)
        except (TypeError, ValueError, IndexError):
            return False

    # -- the commands ------------------------------------------------------------------------

    def ping(self) -> Deferred[None]:
        """Check that rtpengine answers (it replies "pong")."""
        return self.request("ping").addCallback(lambda _: None)

    def offer(
        self, callId: str, fromTag: str, sdp: bytes, options: Mapping[str, Encodable] | None = None
    ) -> Deferred[bytes]:
        """Anchor an SDP offer; fire with the SDP rtpengine rewrote.

        ``options`` are further ng keys, as `mediaOptions` builds them (``to-tag`` for a re-offer).
        """
        params: dict[str, Encodable] = dict(options or {})
        params.update({"call-id": callId, "from-tag": fromTag, "sdp": sdp})
        return self.request("offer", params).addCallback(_sdpOf, "offer")

    def answer(
        self,
        callId: str,
        fromTag: str,
        toTag: str,
        sdp: bytes,
        options: Mapping[str, Encodable] | None = None,
    ) -> Deferred[bytes]:
        """Anchor the SDP answer of ``toTag`` to the offer of ``fromTag``; fire with the new SDP."""
        params: dict[str, Encodable] = dict(options or {})
        params.update({"call-id": callId, "from-tag": fromTag, "to-tag": toTag, "sdp": sdp})
        return self.request("answer", params).addCallback(_sdpOf, "answer")

    def delete(self, callId: str, fromTag: str | None = None, toTag: str | None = None) -> Deferred[None]:
        """Release a call (or, with tags, one branch of it).

        An unknown call fails with `RtpengineRefusedError` (see `isUnknownCall`).
        """
        params: dict[str, Encodable] = {"call-id": callId}
        if fromTag is not None:
            params["from-tag"] = fromTag
        if toTag is not None:
            params["to-tag"] = toTag
        return self.request("delete", params).addCallback(_deleted)

    def query(self, callId: str) -> Deferred[dict[bytes, Value]]:
        """The call's state and packet counters, as rtpengine reports them."""
        return self.request("query", {"call-id": callId})


def mediaOptions(
    flags: Sequence[str] = (),
    replace: Sequence[str] = (),
    ICE: str | None = None,
    direction: Sequence[str] = (),
    receivedFrom: Address | None = None,
) -> dict[str, Encodable]:
    """The optional keys of offer and answer, spelled as the ng protocol spells them.

    ``receivedFrom`` is the (host, port) the SIP message came from; rtpengine uses it with the
    "SIP-source-address" flag. ``direction`` names rtpengine interfaces (``--interface=NAME/IP``)
    for the two sides, when it has more than one.
    """
    options: dict[str, Encodable] = {}
    if flags:
        options["flags"] = list(flags)
    if replace:
        options["replace"] = list(replace)
    if ICE is not None:
        options["ICE"] = ICE
    if direction:
        options["direction"] = list(direction)
    if receivedFrom is not None:
        host = receivedFrom[0]
        options["received from"] = ["IP6" if ":" in host else "IP4", host]
    return options


def _sdpOf(reply: dict[bytes, Value], command: str) -> bytes:
    sdp = reply.get(b"sdp")
    if not isinstance(sdp, bytes):
        raise RtpengineProtocolError(f"rtpengine {command}: reply has no SDP")
    return sdp


def _deleted(reply: dict[bytes, Value]) -> None:
    warning = reply.get(b"warning")
    if isinstance(warning, bytes):
        # Newer rtpengine answers "ok" with a warning for a call it does not know.
        raise RtpengineRefusedError("delete", warning.decode("utf-8", "replace"))


def _failed(error: BaseException) -> Deferred[Any]:
    deferred: Deferred[Any] = Deferred()
    deferred.errback(Failure(error))
    return deferred


__all__ = [
    "MAX_DATAGRAM",
    "RtpengineClient",
    "RtpengineError",
    "RtpengineProtocolError",
    "RtpengineRefusedError",
    "RtpengineStoppedError",
    "RtpengineTimeoutError",
    "isUnknownCall",
    "mediaOptions",
]
