"""Binding that never falls back (issue 14): stop when the ``--bind`` address goes away.

Theory of operation
-------------------
With ``--bind ADDR`` every socket shoal opens is bound to ADDR explicitly: the TCP
listener and dials (`TcpTransport`), the DHT's and uTP's UDP sockets, the connection
to a SOCKS5 proxy and its UDP association. A bind to an address that is not there
fails, and nothing retries it without the address, so no packet ever leaves from
another one. What the sockets do *not* notice is ADDR disappearing later (a VPN going
down): a bound listener keeps listening and a bound UDP socket just sees its sends
fail. `watch_bind_addresses` closes that gap: every `WATCH_INTERVAL` seconds it binds
a throwaway UDP socket to ``(ADDR, 0)`` (no packet is sent) and, when the kernel
answers EADDRNOTAVAIL, raises `BindAddressError`, which cancels the nursery it runs
in: the client (or ``shoal dht``) stops with that one error instead of carrying on.
A dial that fails meanwhile is only a failed dial; it never uses another address.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from typing import TYPE_CHECKING, Final, NoReturn

import trio

from ..errors import BindAddressError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["WATCH_INTERVAL", "check_bind_address", "watch_bind_addresses", "watched_hosts"]

log = logging.getLogger(__name__)

#: Seconds between checks: how long shoal may run on after ADDR went away.
WATCH_INTERVAL: Final = 2.0


def watched_hosts(hosts: Iterable[str]) -> list[str]:
    """The addresses worth watching: IP literals, not the wildcards (``0.0.0.0``, ``::``)
    that mean "any address" and so cannot go away, and not host names (resolved by
    the OS at bind time)."""
    out = []
    for host in hosts:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            continue
        if not ip.is_unspecified and str(ip) not in out:
            out.append(str(ip))
    return out


async def check_bind_address(host: str) -> None:
    """Raise `BindAddressError` if a socket can no longer be bound to `host`.

    Only EADDRNOTAVAIL means the address is gone. Any other failure (out of file
    descriptors under a connection storm, say) says nothing about it: that check is
    skipped, and the next one decides.
    """
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    try:
        with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as probe:
            await probe.bind((host, 0))
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL:
            log.debug("bind address check of %s inconclusive: %s", host, exc)
            return
        raise BindAddressError(
            f"the bind address {host} is gone ({exc.strerror}); stopped rather than"
            " use another address"
        ) from exc


async def watch_bind_addresses(
    hosts: Sequence[str], *, interval: float = WATCH_INTERVAL
) -> NoReturn:
    """Check `hosts` now and every `interval` seconds; raise `BindAddressError` when one
    of them can no longer be bound (see the module docstring). Runs until cancelled."""
    while True:
        for host in hosts:
            await check_bind_address(host)
        await trio.sleep(interval)
