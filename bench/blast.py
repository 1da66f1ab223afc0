"""
Fast UDP senders and a counting receiver, each a child process, for the gate flood and the RTP blast.

A sender sends the same few datagrams in a tight loop, from bound source addresses to their
destinations in turn (a flow each), until its deadline, as fast as it can or paced at a given rate,
and reports how many it sent.  Python's
C{socket.sendto} in such a loop reaches a few hundred thousand datagrams per second per core on
loopback, which is more than either test needs.
Everything is bounded in time and goes to 127.0.0.0/8 only.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import struct
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection

_BATCH = 256


def _checkLoopback(*hosts: str) -> None:
    for host in hosts:
        if not host.startswith("127."):
            raise ValueError(f"{host} is not a loopback address; the benchmark sends only to 127.0.0.0/8")


Flow = tuple[tuple[str, int], tuple[str, int]]


def _send(
    flows: Sequence[Flow],
    packets: Sequence[bytes],
    seconds: float,
    rate: float | None,
    result: Connection,
) -> None:
    sockets = []
    for source, _ in flows:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(source)
        sockets.append(sock)
    senders = [(sock.sendto, destination) for sock, (_, destination) in zip(sockets, flows, strict=True)]
    started = time.monotonic()
    deadline = started + seconds
    # Paced: about a millisecond's worth of packets per batch, then sleep until they are due.
    batch = _BATCH if rate is None else max(1, min(_BATCH, int(rate / 1000)))
    count = len(packets)
    sent = 0
    index = 0
    while (now := time.monotonic()) < deadline:
        if rate is not None and (due := started + sent / rate) > now:
            time.sleep(due - now)
        for _ in range(batch):
            # One packet to each flow in turn; the packet index moves on once per round.
            sendto, destination = senders[sent % len(senders)]
            try:
                sendto(packets[index], destination)
            except OSError:  # ENOBUFS and friends: the kernel is saturated, keep trying
                continue
            sent += 1
            if sent % len(senders) == 0:
                index = index + 1 if index + 1 < count else 0
    for sock in sockets:
        sock.close()
    result.send(sent)


def _receive(addresses: Sequence[tuple[str, int]], seconds: float, result: Connection) -> None:
    selector = selectors.DefaultSelector()
    for address in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(address)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    result.send("ready")
    buffer = bytearray(2048)
    deadline = time.monotonic() + seconds
    received = 0
    while time.monotonic() < deadline:
        for key, _ in selector.select(0.2):
            recvInto = key.fileobj.recv_into  # type: ignore[union-attr]
            try:
                for _ in range(_BATCH):
                    recvInto(buffer)
                    received += 1
            except BlockingIOError:
                continue
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    result.send(received)


class Blast:
    """Senders and, optionally, a receiver running as child processes; L{wait} collects their counts."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("fork")
        self.senders: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self.receiver: tuple[multiprocessing.process.BaseProcess, Connection] | None = None

    def receive(self, addresses: Sequence[tuple[str, int]], seconds: float) -> None:
        """Count datagrams arriving at C{addresses} for C{seconds}; returns once the sockets are bound."""
        _checkLoopback(*(host for host, _ in addresses))
        mine, theirs = self.context.Pipe()
        process = self.context.Process(target=_receive, args=(list(addresses), seconds, theirs), daemon=True)
        process.start()
        if not mine.poll(5.0) or mine.recv() != "ready":
            process.kill()
            raise RuntimeError(f"the receiver could not bind {addresses}")
        self.receiver = (process, mine)

    def send(
        self,
        flows: Sequence[Flow],
        packets: Sequence[bytes],
        seconds: float,
        rate: float | None = None,
    ) -> None:
        """
        Send C{packets} round and round for C{seconds}, one to each flow (source, destination) in turn,
        at C{rate} packets per second in all or as fast as it can.
        """
        _checkLoopback(*(host for flow in flows for host, _ in flow))
        mine, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_send,
            args=(list(flows), list(packets), seconds, rate, theirs),
            daemon=True,
        )
        process.start()
        self.senders.append((process, mine))

    def wait(self, timeout: float) -> tuple[int, int]:
        """Wait for every child (killing any that outlive C{timeout}); (datagrams sent, received)."""
        deadline = time.monotonic() + timeout
        sent = sum(_collect(process, pipe, deadline) for process, pipe in self.senders)
        received = 0 if self.receiver is None else _collect(*self.receiver, deadline)
        self.senders = []
        self.receiver = None
        return sent, received


def _collect(process: multiprocessing.process.BaseProcess, pipe: Connection, deadline: float) -> int:
    count = 0
    if pipe.poll(max(0.0, deadline - time.monotonic())):
        value = pipe.recv()
        count = value if isinstance(value, int) else 0
    process.join(max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        process.kill()
        process.join(1.0)
    return count


def rtpPackets(count: int = 1000, payloadSize: int = 160, ssrc: int = 0x5BC0BE7C) -> list[bytes]:
    """C{count} consecutive 20 ms PCMU RTP packets (RFC 3550 headers, silence payloads)."""
    payload = b"\xff" * payloadSize
    return [struct.pack("!BBHII", 0x80, 0, seq, seq * payloadSize, ssrc) + payload for seq in range(count)]


def sipProbe(target: tuple[str, int], source: tuple[str, int]) -> bytes:
    """An OPTIONS request as a scanner would send it: the flood's datagram."""
    return (
        f"OPTIONS sip:100@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK-flood;rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:scanner@{source[0]}>;tag=flood\r\n"
        f"To: <sip:100@{target[0]}>\r\n"
        f"Call-ID: flood@{source[0]}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "User-Agent: friendly-scanner\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
