"""One call's SDP on its way through the media relay (RFC 3264 offer/answer), and the SIP status
for each way that can fail.

Every SDP that crosses the SBC goes through `CallMedia`: the codec allow-list of the trunks on the
call, the limits of ``[media]``, the port quota, then the relay (`IMediaRelay`), which puts our
address and relay ports in place of the sender's. The built-in relay answers at once, and then no
Deferred is made; an engine on the network (rtpengine) answers later, and then the call's media
operations are kept in order behind it, so that an 18x and its 2xx cannot swap. A call that
bypasses the relay keeps its SDP as it is (codecs aside).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from typing import Any, cast

from netaddr import IPSet
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.calls.context import CallContext, Extra
from sbc.calls.parties import Party, PartyKind, Side
from sbc.config import MediaMode, MediaSettings, Trunk
from sbc.interfaces import (
    IMediaRelay,
    IParsedMediaRelay,
    MediaCapacityError,
    MediaError,
    MediaUnavailableError,
    NotAcceptableError,
)
from sbc.media.quota import PORTS_PER_STREAM, PortOwner, PortQuota
from sbc.media.targets import Networks, checkTargets, networksOf, relayedStreams
from sbc.sip.errors import SIPParseError
from sbc.sip.sdp import Origin, SessionDescription, parseSDP
from sbc.sip.sdprewrite import bumpVersion, filterCodecs, hasActiveMedia
from sbc.transaction import ServerTransaction
from sbc.waiting import whenReady

__all__ = ["RETRY_AFTER", "CallMedia", "mediaFor", "ownerOf", "statusFor"]

# Seconds a 503 for want of media capacity asks the caller to wait (Retry-After, RFC 3261 20.33).
RETRY_AFTER = 10
_RETRY = (("Retry-After", str(RETRY_AFTER)),)


# The one table from an `IMediaRelay` error to what the caller hears, whatever engine runs: no
# capacity and an unreachable engine are 503 with Retry-After (another node, or a later try, may
# do better); an SDP that cannot be used is 488.
_STATUS: tuple[tuple[type[Exception], int, Extra], ...] = (
    (MediaCapacityError, 503, _RETRY),
    (MediaUnavailableError, 503, _RETRY),
    (NotAcceptableError, 488, ()),
)


def statusFor(failure: Failure | BaseException) -> tuple[int, Extra]:
    """The SIP status and extra headers for a media failure, by the interface error it is: see
    ``_STATUS``; an unparsable SDP gets the parse error's own status; anything else 488."""
    error = failure.value if isinstance(failure, Failure) else failure
    for kind, status, headers in _STATUS:
        if isinstance(error, kind):
            return status, headers
    if isinstance(error, SIPParseError):
        return (error.status if error.status >= 400 else 488), ()
    return 488, ()


def ownerOf(party: Party | None, settings: MediaSettings) -> PortOwner | None:
    """Whom relay ports are charged to: a trunk or a registered account, each with its limit; a
    registrant (a peer's calls through our registration) as a trunk is."""
    if party is None:
        return None
    if party.kind is PartyKind.TRUNK:
        return PortOwner(f"trunk:{party.name}", settings.maxPortsPerTrunk)
    if party.kind is PartyKind.REGISTRANT:
        return PortOwner(f"registrant:{party.name}", settings.maxPortsPerTrunk)
    return PortOwner(f"account:{party.name}", settings.maxPortsPerAccount)


def mediaFor(
    context: CallContext,
    callId: str,
    onTimeout: Callable[[], object],
    trunks: list[Trunk | None],
    invite: ServerTransaction,
    party: Party,
) -> CallMedia:
    """A call's media policy: relayed unless a trunk on it (A's, or a target's) says bypass; the
    trunks' codec lists (their intersection); A's side known from the start (the source of its
    ``invite``, its party)."""
    bypass = any(trunk is not None and trunk.media is MediaMode.BYPASS for trunk in trunks)
    codecs: frozenset[str] | None = None
    for trunk in trunks:
        if trunk is not None and trunk.codecs is not None:
            allowed = frozenset(trunk.codecs)
            codecs = allowed if codecs is None else codecs & allowed
    settings = context.config.media
    media = CallMedia(
        None if bypass else context.relay,
        callId,
        onTimeout,
        codecs,
        context.quota,
        forbidden=context.forbidden,
        maxStreams=settings.maxStreams,
    )
    media.facing(Side.A, invite.source[0], party, settings)
    return media


Then = Callable[[bytes], object]
Failed = Callable[[Failure], object]


class CallMedia:
    """One call's way through the codec filter and the relay, in order.

    The call tells it, per side, as soon as it knows: ``sipSources``, the IP that side's
    signalling comes from (the relay may latch to media from it: NAT), and ``owners``, the trunk
    or account that the relay ports its SDP opens are charged to in ``quota``. Each offer or
    answer takes the side's values at the moment it is made.

    ``offer``/``answer`` give their result to ``then`` (or the failure to ``failed``): at once
    when the relay answered at once and nothing was waiting, else when it is this operation's turn.
    ``maxStreams`` and ``forbidden`` (``[media] max_streams`` and ``forbidden_targets``) are checked
    here, whatever the engine: an SDP with more m= lines, or one that sends media to a forbidden
    address, gets 488 before any port is charged or bound.
    """

    log = Logger()

    __slots__ = (
        "_busy",
        "_charged",
        "_last",
        "_parsed",
        "_streams",
        "callId",
        "closed",
        "codecs",
        "forbidden",
        "maxStreams",
        "offered",
        "onTimeout",
        "owners",
        "quota",
        "relay",
        "sent",
        "sipSources",
    )

    def __init__(
        self,
        relay: IMediaRelay | None,
        callId: str,
        onTimeout: Callable[[], object],
        codecs: frozenset[str] | None = None,
        quota: PortQuota | None = None,
        *,
        forbidden: IPSet | Networks | None = None,
        maxStreams: int | None = None,
    ) -> None:
        self.relay = relay
        # The relay takes and gives parsed SDP (the built-in one): asked once per call, not per SDP.
        self._parsed = relay is not None and IParsedMediaRelay.providedBy(relay)
        self.forbidden = networksOf(forbidden)
        self.maxStreams = maxStreams
        self.callId = callId
        self.onTimeout = onTimeout
        self.codecs = codecs
        self.quota = quota
        self.offered = False
        self.closed = False  # the call is over: an operation still to run fails, charging nothing
        # Operations started or queued and not yet settled, and the Deferred the next one waits
        # behind: none at all while the relay answers at once.
        self._busy = 0
        self._last: Deferred[Any] | None = None
        # The last SDP sent towards each side, for its o= line (RFC 3264 section 8).
        self.sent: dict[Side, SessionDescription] = {}
        self.sipSources: dict[Side, str] = {}
        self.owners: dict[Side, PortOwner] = {}
        # m= line indexes the relay holds ports for, and the ports charged: shared empties until a
        # relayed offer needs them (a held call keeps its media: every byte counts per call).
        self._streams: frozenset[int] = _NO_STREAMS
        self._charged: list[tuple[PortOwner | None, int]] | None = None

    def offer(self, side: Side, body: bytes, then: Then, failed: Failed) -> None:
        """Anchor an SDP offer from ``side``; ``then`` gets the SDP for the other side."""
        self._queue(True, side, body, then, failed)

    def answer(self, side: Side, body: bytes, then: Then, failed: Failed) -> None:
        """Anchor an SDP answer from ``side`` (an offer if nothing was offered yet)."""
        self._queue(False, side, body, then, failed)

    def after(self, action: Callable[..., object], *args: object) -> None:
        """Run ``action(*args)`` once every media operation started before it is done: keeps order."""
        if not self._busy:
            action(*args)
            return
        self._busy += 1
        cast("Deferred[Any]", self._last).addBoth(self._resumeAction, action, args)

    def facing(self, side: Side, sipSource: str, party: Party | None, settings: MediaSettings) -> None:
        """What the relay should know of ``side`` from now on: the IP its signalling comes from
        (media from it may latch: NAT), and the party its relay ports are charged to."""
        if self.relay is None:
            return  # bypassed: nobody latches media or holds ports for this call
        self.sipSources[side] = sipSource
        owner = ownerOf(party, settings)
        if owner is not None:
            self.owners[side] = owner

    def close(self) -> None:
        """The call is over: the relay forgets it (after pending work), the quota gets its ports back;
        operations queued behind the engine fail instead of running."""
        self.closed = True
        if self.relay is not None and self.offered:
            self.after(self._delete)
        if self.quota is not None:
            charged, self._charged = self._charged or (), None
            for owner, ports in charged:
                self.quota.release(owner, ports)

    # --- order ----------------------------------------------------------------------------------

    def _queue(self, offer: bool, side: Side, body: bytes, then: Then, failed: Failed) -> None:
        if self.relay is None and self.codecs is None and not self._busy:
            # Nothing to do with this SDP (bypassed, no codec list): it goes on as it came.
            try:
                then(body)
            except Exception:
                failed(Failure())
            return
        op = (side, body, offer, self.sipSources.get(side), self.owners.get(side))
        if not self._busy:
            self._run(op, then, failed, False)
            return
        self._busy += 1
        cast("Deferred[Any]", self._last).addBoth(self._resume, op, then, failed)

    def _run(self, op: _Op, then: Then, failed: Failed, queued: bool) -> object:
        if self.closed:
            return failed(Failure(MediaUnavailableError("the call is over")))
        before = self._busy
        self._busy += 1
        try:
            result = cast(
                "bytes | Deferred[bytes]", whenReady(self._process(*op), self._settled, self._settledFailed)
            )
        except Exception:
            self._busy = before
            return failed(Failure())
        if self._busy > before and not queued:
            self._last = cast("Deferred[bytes]", result)  # the engine answers later: queue behind it
        return whenReady(result, then, failed)

    def _settled(self, body: bytes) -> bytes:
        self._busy -= 1
        return body

    def _settledFailed(self, failure: Failure) -> Failure:
        self._busy -= 1
        return failure

    def _resume(self, _: object, op: _Op, then: Then, failed: Failed) -> object:
        self._busy -= 1
        return self._run(op, then, failed, True)

    def _resumeAction(self, _: object, action: Callable[..., object], args: tuple[object, ...]) -> None:
        self._busy -= 1
        action(*args)

    def _delete(self) -> None:
        """The engine forgets the call; a failure to (rtpengine unreachable) is logged, not raised."""
        if self.relay is not None:
            whenReady(self.relay.delete(self.callId), _ignore, self._deleteFailed)

    def _deleteFailed(self, failure: Failure) -> None:
        """Log once that the engine did not release the call (its own timeout reclaims the ports)."""
        if failure.check(MediaError):
            self.log.warn(
                "media engine did not release call {callId}: {error}",
                callId=self.callId,
                error=failure.getErrorMessage(),
            )
        else:
            self.log.failure("media engine failed to release call {callId}", failure, callId=self.callId)

    # --- one operation --------------------------------------------------------------------------

    def _process(
        self, side: Side, body: bytes, offer: bool, sipSource: str | None, owner: PortOwner | None
    ) -> bytes | Deferred[bytes]:
        relay = self.relay
        sdp: SessionDescription | None = None
        if self.codecs is not None:
            try:
                sdp = filterCodecs(parseSDP(body), self.codecs)
            except ValueError as e:
                raise NotAcceptableError(str(e)) from None
            if not hasActiveMedia(sdp):
                raise NotAcceptableError("no allowed codec")
            if not self._parsed:
                body = sdp.toBytes()  # what goes on as bytes: to the other side, or to the engine
        if relay is None:
            return body
        parsed = self._parsed
        if sdp is None:
            if parsed:
                sdp = parseSDP(body)  # a broken SDP fails here as the relay would fail it
            elif self.quota is not None or self.forbidden or self.maxStreams is not None:
                with contextlib.suppress(ValueError):  # a broken SDP: the relay reports it
                    sdp = parseSDP(body)
        opening: set[int] = set()
        if sdp is not None:
            # The stream cap before the quota: too many m= lines is the SDP's fault (488), not a
            # want of ports (503).
            checkTargets(sdp, self.forbidden, self.maxStreams)
        charge: tuple[PortOwner | None, int] = (owner, 0)
        if self.quota is not None:
            if sdp is not None:
                opening = relayedStreams(sdp) - self._streams
            ports = PORTS_PER_STREAM * len(opening)
            self.quota.charge(owner, ports)
            charge = (owner, ports)
            self._charged = [*(self._charged or ()), charge]
            self._streams = self._streams | opening
        towards = Side.B if side is Side.A else Side.A
        anchored: SessionDescription | None = None
        out: bytes | Deferred[bytes] = b""
        try:
            if parsed:
                assert sdp is not None
                # In this process, at once: no serialising for the relay, no parsing its answer.
                parsedRelay = cast(IParsedMediaRelay, relay)
                if offer or not self.offered:
                    self.offered = True
                    anchored = parsedRelay.offerParsed(self.callId, side, sdp, self.onTimeout, sipSource)
                else:
                    anchored = parsedRelay.answerParsed(self.callId, side, sdp, sipSource)
            elif offer or not self.offered:
                self.offered = True
                out = relay.offer(self.callId, side, body, self.onTimeout, sipSource)
            else:
                out = relay.answer(self.callId, side, body, sipSource)
        except Exception:
            if opening:
                self._refund(charge, opening)
            raise
        if anchored is not None:
            # Outside the try: once the relay answered, it holds the ports until the call ends.
            return self._ours(anchored, towards)
        ours = self._towardsB if side is Side.A else self._towardsA
        if not opening:
            return whenReady(out, ours)

        def refunded(failure: Failure) -> bytes:
            # The relay refused (488 before it binds anything): the ports charged for it go back.
            # Only the engine's failure: once it answered, it holds the ports until the call ends.
            self._refund(charge, opening)
            failure.raiseException()

        return whenReady(whenReady(out, _same, refunded), ours)

    def _refund(self, charge: tuple[PortOwner | None, int], opening: set[int]) -> None:
        if self.quota is not None and self._charged is not None and charge in self._charged:
            self._charged.remove(charge)
            self.quota.release(*charge)
        self._streams = self._streams - opening

    def _towardsA(self, body: bytes) -> bytes:
        return self._ours(parseSDP(body), Side.A)

    def _towardsB(self, body: bytes) -> bytes:
        return self._ours(parseSDP(body), Side.B)

    def _ours(self, sdp: SessionDescription, towards: Side) -> bytes:
        """Our own o= towards each side: our username and session id, versions that only grow."""
        previous = self.sent.get(towards)
        if previous is None:
            origin = sdp.origin
            sdp = sdp.withOrigin(
                Origin(
                    "sbc",
                    str(zlib.crc32(f"{self.callId}{towards.value}".encode())),
                    1,
                    origin.nettype,
                    origin.addrtype,
                    origin.address,
                )
            )
        else:
            sdp = bumpVersion(sdp, previous)
        self.sent[towards] = sdp
        return sdp.toBytes()


def _same(body: bytes) -> bytes:
    """The engine's answer, as it came (so that a failure after it is not taken for the engine's)."""
    return body


def _ignore(_: object) -> None:
    """Nothing to do with the engine's reply to a delete."""


_Op = tuple[Side, bytes, bool, "str | None", "PortOwner | None"]
_NO_STREAMS: frozenset[int] = frozenset()
