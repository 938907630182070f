"""Who is on the other end of a loopback TCP connection: the peer socket's owner from /proc/net/tcp.

In the multiuser engine a task's proxy must answer only that task's processes. For a connection
accepted on 127.0.0.1, the client's own socket is listed in `/proc/net/tcp` (or `tcp6` for IPv6
and for IPv4 clients of a dual-stack socket) with local address = the peer address we see,
remote address = our listening address, and the uid that created it. Matching both ends (not
only the client's port, as upstream's proxy does) keeps a listening or unrelated socket from
ever being taken for the client.

Only sockets of this network namespace are visible: a client in another namespace is never
found, and is refused (fail closed). Linux only; elsewhere `/proc/net/tcp` does not exist and
every lookup fails, so the caller refuses.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC_NET = Path("/proc/net")
"""Where the kernel lists this network namespace's TCP sockets (a parameter for tests)."""

Endpoint = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


class PeerNotFound(Exception):
    """No socket in /proc matches the connection (the client hung up, or is in another namespace)."""


@dataclass(frozen=True)
class SocketEntry:
    """One line of /proc/net/tcp or tcp6: the socket's two ends and its owner's uid."""

    local: Endpoint
    remote: Endpoint
    uid: int


def parse_address(text: str) -> Endpoint:
    """Decode `0100007F:1F90` (or the 32-hex-digit IPv6 form) into an (address, port) pair.

    The kernel prints the address as 32-bit words in the machine's byte order and the port in
    host order, so on little-endian machines each word's bytes are reversed.
    """
    address_hex, port_hex = text.split(":")
    raw = bytes.fromhex(address_hex)
    if len(raw) not in (4, 16):
        raise ValueError(f"not a /proc/net/tcp address: {text!r}")
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
    return address, int(port_hex, 16)


def parse_table(lines: Iterable[str]) -> Iterator[SocketEntry]:
    """The entries of a /proc/net/tcp{,6} table (its header line and malformed lines skipped)."""
    for line in lines:
        fields = line.split()
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
        if len(fields) < 8 or not fields[0].endswith(":") or not fields[7].isdigit():
            continue
        try:
            local, remote = parse_address(fields[1]), parse_address(fields[2])
        except ValueError:
            continue
        yield SocketEntry(local=local, remote=remote, uid=int(fields[7]))


def _normalise(endpoint: tuple[str, int]) -> Endpoint:
    """An address as Python's socket module gives it, with IPv4-mapped IPv6 turned into IPv4."""
    host, port = endpoint[0], endpoint[1]
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped, port
    return address, port


def _entry_key(entry: SocketEntry) -> tuple[Endpoint, Endpoint]:
    local, remote = entry.local, entry.remote
    if isinstance(local[0], ipaddress.IPv6Address) and local[0].ipv4_mapped is not None:
        local = (local[0].ipv4_mapped, local[1])
    if isinstance(remote[0], ipaddress.IPv6Address) and remote[0].ipv4_mapped is not None:
        remote = (remote[0].ipv4_mapped, remote[1])
    return local, remote


def find_peer_uid(
    peername: tuple[str, int], sockname: tuple[str, int], tables: Iterable[Iterable[str]]
) -> int:
    """The uid owning the client socket of an accepted connection, from the given tables.

    `peername` / `sockname` are the accepted socket's `getpeername()` / `getsockname()`.
    Raises PeerNotFound when no entry has local = peer and remote = our end.
    """
    wanted = (_normalise(peername), _normalise(sockname))
    # Cheap pre-filter on busy hosts: only lines whose local port is the peer's port are decoded.
    port_suffix = f":{wanted[0][1]:04X}"
    for table in tables:
        candidates = (line for line in table if port_suffix in line)
        for entry in parse_table(candidates):
            if _entry_key(entry) == wanted:
                return entry.uid
    raise PeerNotFound(f"no socket from {peername[0]}:{peername[1]} to {sockname[0]}:{sockname[1]} in /proc")


def peer_uid(peername: tuple[str, int], sockname: tuple[str, int], proc_net: Path = PROC_NET) -> int:
    """Blocking: the uid of the process that opened the client end of a local TCP connection.

    Raises PeerNotFound (also when /proc/net cannot be read).
    """
    for name in ("tcp", "tcp6"):
        try:
            with open(proc_net / name, encoding="ascii", errors="replace") as table:
                return find_peer_uid(peername, sockname, [table])
        except PeerNotFound:
            continue
        except OSError:
            continue  # e.g. no IPv6 in this kernel
    raise PeerNotFound(f"no socket from {peername[0]}:{peername[1]} to {sockname[0]}:{sockname[1]} in /proc")
