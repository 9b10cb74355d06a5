"""Listening TCP sockets of processes, read from ``/proc`` (Linux): which address each binds.

Why not ``ss`` or psutil: neither is a dependency, and ``/proc/net/tcp{,6}`` plus the socket
inodes in ``/proc/PID/fd`` are what both read."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

_LISTEN = "0A"


def _address(hex_addr: str, family: int) -> str:
    """``/proc/net/tcp``'s hex address (host byte order, per 32-bit word) as text."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, words)


def listening_by_inode() -> dict[int, tuple[str, int]]:
    """Every listening TCP socket of this network namespace: inode -> (address, port)."""
    found = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == _LISTEN:
                addr, port = local.split(":")
                found[inode] = (_address(addr, family), int(port, 16))
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (empty when it is gone)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """``(pid, address, port)`` of every listening TCP socket the processes hold."""
    table = listening_by_inode()
    return [(pid, *table[i]) for pid in pids for i in sorted(socket_inodes(pid)) if i in table]


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, and 127.x written as IPv6 (``::ffff:127.0.0.1``, how a dual-stack gRPC
    server shows a loopback bind); ``::`` and ``0.0.0.0`` (every interface) are not.

    >>> [is_loopback(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "::", "0.0.0.0", "10.0.0.5")]
    [True, True, True, False, False, False]
    """
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...), from ``/proc/*/stat``."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (e.g. a Ray session folder)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                pids.append(int(entry))
    return pids
