"""CPU time and memory of a process and its descendants, read from /proc (Linux only)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    """
    Memory of a process tree, in bytes.

    @ivar rss: the sum of each process's VmRSS (pages shared between the processes count once per
        process).
    @ivar pss: the sum of each process's proportional set size (shared pages divided among the
        processes that share them): what the tree costs, shared memory counted once.
    """

    rss: int
    pss: int


def _stat(pid: int) -> list[str] | None:
    """The fields of C{/proc/PID/stat} after the command name, or C{None} when the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or parentheses itself.
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """C{root} and every live process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree = [root]
    for pid in tree:
        tree.extend(children.get(pid, ()))
    return tree


def cpuSeconds(root: int) -> float:
    """User plus system CPU seconds of C{root}'s process tree (its live processes) so far."""
    total = 0
    for pid in descendants(root):
        fields = _stat(pid)
        if fields is not None:
            # Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _kilobytes(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def memory(root: int) -> Memory:
    """The resident memory of C{root}'s process tree now."""
    rss = pss = 0
    for pid in descendants(root):
        rss += _kilobytes(PROC / str(pid) / "status", "VmRSS:")
        pss += _kilobytes(PROC / str(pid) / "smaps_rollup", "Pss:")
    return Memory(rss=rss * 1024, pss=pss * 1024)


def udpDrops(host: str, port: int) -> int | None:
    """
    How many datagrams the kernel dropped so far on the IPv4 UDP socket bound to C{host}:C{port}
    (its receive buffer was full), from C{/proc/net/udp}; C{None} when no such socket exists.
    """
    found = udpSocket(host, port)
    return None if found is None else found[1]


def udpSocket(host: str, port: int, table: str | None = None) -> tuple[int, int] | None:
    """
    The bytes waiting in the receive queue of the IPv4 UDP socket bound to C{host}:C{port} (each
    datagram counted at its kernel size, see L{datagramSize}) and the datagrams the kernel dropped
    there so far, from C{/proc/net/udp} (or C{table}, its text); C{None} when no such socket exists.
    """
    a, b, c, d = (int(part) for part in host.split("."))
    # /proc/net/udp writes the address as the 32-bit value in host (little-endian) order.
    wanted = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"
    text = (PROC / "net" / "udp").read_text() if table is None else table
    # A find rather than a parse of every line: the harness samples this while thousands of relay
    # sockets are open, and must stay cheap beside the system under test.
    start = text.find(f" {wanted} ")
    while start >= 0:
        end = text.find("\n", start)
        fields = text[text.rfind("\n", 0, start) + 1 : end if end >= 0 else None].split()
        if len(fields) > 4 and fields[1] == wanted:
            # tx_queue:rx_queue, in hexadecimal.
            return int(fields[4].split(":")[1], 16), int(fields[-1])
        start = text.find(f" {wanted} ", start + 1)
    return None


def datagramSize(host: str, payload: int, count: int = 8) -> int:
    """
    How many bytes of a receive queue one datagram of C{payload} bytes takes on this kernel (its
    buffer's true size, which /proc/net/udp counts): C{count} of them sent to a socket of our own on
    C{host}, which must be a loopback address.
    """
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source,
    ):
        if not host.startswith("127."):
            raise ValueError(f"{host} is not a loopback address")
        sink.bind((host, 0))
        for _ in range(count):
            source.sendto(b"\0" * payload, sink.getsockname())
        found = udpSocket(host, sink.getsockname()[1])
    if found is None or not found[0]:
        return payload  # the kernel did not say: count each datagram at its payload
    return max(1, found[0] // count)


def strangers(names: frozenset[str]) -> list[str]:
    """
    Processes named in C{names} (by their command name) that are not below this process: another
    load on the machine, e.g. C{["sipp 1234", "twistd 1240"]}.
    """
    ours = set(descendants(os.getpid()))
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            command = (entry / "comm").read_text().strip()
            if command.startswith("python") or command.startswith("pypy"):
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
                command = next((Path(a.decode()).name for a in arguments[1:2] if a), command)
        except OSError:
            continue
        if command in names:
            found.append(f"{command} {entry.name}")
    return found
