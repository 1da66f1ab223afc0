"""Gateway health: OPTIONS to each trunk gateway on a timer; one that stops answering is skipped.

After ``threshold`` pings in a row without an answer a gateway is down, and failover skips it
until it answers again. Any response counts as an answer, even an error: the gateway is there
and speaks SIP. Only silence until Timer F (RFC 3261 section 17.1.2.2) counts as a miss. A
gateway has at most one ping in flight, so a dead one costs one transaction per interval. Each
change of state is logged once; the states are what `sbc-ctl` and the metrics show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sbc.addresses import bracket, hostport
from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport
from sbc.options import optionsRequest
from sbc.sip.message import Response
from sbc.sip.uri import URI
from sbc.transaction import ClientTransaction, TransactionLayer

__all__ = ["GatewayHealth", "GatewayState"]


class GatewayState(StrEnum):
    """What the pings say of a gateway."""

    UP = "up"
    DOWN = "down"


class _Gateway:
    """One watched gateway's counters."""

    __slots__ = ("changed", "missed", "pending", "state", "threshold")

    def __init__(self, now: float, threshold: int) -> None:
        self.state = GatewayState.UP  # innocent until proven silent: a new gateway gets calls
        self.missed = 0
        self.pending: ClientTransaction | None = None
        self.changed = now
        self.threshold = threshold


@implementer(IClientTransactionUser)
class GatewayHealth:
    """Pings the gateways it is told to watch and says which are up."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        transactions: TransactionLayer,
        transportFor: Callable[[Address], ISIPTransport | None],
        serverName: str,
        threshold: int = 3,
    ) -> None:
        self.clock = clock
        self.transactions = transactions
        self.transportFor = transportFor
        self.serverName = serverName
        self.threshold = threshold
        self._gateways: dict[Address, _Gateway] = {}
        self._byTransaction: dict[ClientTransaction, Address] = {}

    def watch(self, gateways: Iterable[Address] | Mapping[Address, int]) -> None:
        """Watch exactly these gateways (after a reload): known ones keep their state. A mapping
        gives each gateway its own threshold (its trunk's ``ping_misses``)."""
        wanted = dict(gateways) if isinstance(gateways, Mapping) else dict.fromkeys(gateways, self.threshold)
        for address in [a for a in self._gateways if a not in wanted]:
            del self._gateways[address]
        now = self.clock.seconds()
        for address, threshold in wanted.items():
            self._gateways.setdefault(address, _Gateway(now, threshold)).threshold = threshold

    def isUp(self, address: Address) -> bool:
        """Whether calls may go to ``address``; a gateway nobody watches is assumed up."""
        gateway = self._gateways.get(address)
        return gateway is None or gateway.state is GatewayState.UP

    def states(self) -> dict[Address, GatewayState]:
        """Each watched gateway's state, for sbc-ctl and the metrics."""
        return {address: gateway.state for address, gateway in self._gateways.items()}

    def pingAll(self) -> None:
        """Send one OPTIONS to each watched gateway that has none in flight (called on a timer)."""
        self.ping(list(self._gateways))

    def ping(self, addresses: Iterable[Address]) -> None:
        """Send one OPTIONS to each of ``addresses`` that is watched and has none in flight."""
        for address in addresses:
            gateway = self._gateways.get(address)
            if gateway is not None and gateway.pending is None:
                self._ping(address, gateway)

    def _ping(self, address: Address, gateway: _Gateway) -> None:
        transport = self.transportFor(address)
        if transport is None:
            return
        params = () if transport.name == "UDP" else (("transport", transport.name.lower()),)
        uri = URI("sip", host=bracket(address[0]), port=address[1], params=params)
        request = optionsRequest(uri, f"sip:{hostport(address)}", transport, self.serverName)
        transaction = self.transactions.sendRequest(request, transport, address, self)
        gateway.pending = transaction
        self._byTransaction[transaction] = address

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """Any final answer shows the gateway is there: it is up again, its misses forgotten."""
        if response.status < 200:
            return
        address = self._byTransaction.pop(transaction, None)
        gateway = self._gateways.get(address) if address is not None else None
        if address is None or gateway is None:
            return
        gateway.pending = None
        gateway.missed = 0
        if gateway.state is GatewayState.DOWN:
            self._change(address, gateway, GatewayState.UP, f"it answers again ({response.status})")

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """No answer within Timer F: one more miss; ``threshold`` misses in a row take it down."""
        address = self._byTransaction.pop(transaction, None)
        gateway = self._gateways.get(address) if address is not None else None
        if address is None or gateway is None:
            return
        gateway.pending = None
        gateway.missed += 1
        if gateway.state is GatewayState.UP and gateway.missed >= gateway.threshold:
            self._change(address, gateway, GatewayState.DOWN, f"{gateway.missed} OPTIONS unanswered")

    def _change(self, address: Address, gateway: _Gateway, state: GatewayState, why: str) -> None:
        gateway.state = state
        gateway.changed = self.clock.seconds()
        self.log.warn(
            "gateway {gateway} is {state}: {why}", gateway=hostport(address), state=str(state), why=why
        )
