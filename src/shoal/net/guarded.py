"""Transports that guard the seam (`net/transport.py`): proxy, IP filter, rate limits.

Each wraps another `Transport` (or replaces TCP) and is chosen by `open_client` from
`ClientConfig`, so the engine and the sessions above never know they are there:

* `Socks5Transport` dials every peer through SOCKS5 CONNECT and has no fallback: a
  proxy failure is an `OSError` to the dialer (a failed dial, as for a dead peer),
  never a direct connection.
* `FilteredTransport` refuses to dial an address the IP filter blocks.
* `RateLimitedTransport` wraps every stream it opens in a `RateLimitedStream`
  (`net/bandwidth.py`), charging the client-wide channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

from ..errors import ProxyError, ShoalError
from .socks import Socks5Connector
from .transport import CONNECT_TIMEOUT

if TYPE_CHECKING:
    from ..ipfilter import IPFilter
    from ..socks5 import ProxyURL
    from .bandwidth import BandwidthManager
    from .transport import Addr, Transport

__all__ = ["BlockedAddress", "FilteredTransport", "RateLimitedTransport", "Socks5Transport"]


class BlockedAddress(ShoalError, ConnectionRefusedError):
    """A dial refused locally because the IP filter blocks the address.

    Also a `ConnectionRefusedError` (an `OSError`), so every dial path treats it as
    a connection that failed, with no special case.
    """


@final
class Socks5Transport:
    """Peer connections through a SOCKS5 proxy (CONNECT), failing closed."""

    def __init__(self, proxy: ProxyURL, *, bind_host: str | None = None) -> None:
        self.connector = Socks5Connector(proxy, bind_host=bind_host)

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                return await self.connector.connect(addr[0], addr[1])
        except ProxyError as exc:
            # The dialer treats OSError as "this dial failed"; the message says why.
            raise ConnectionError(str(exc)) from exc

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        return None  # our end is the proxy's: nothing a peer could match


@final
class FilteredTransport:
    """Refuses dials to addresses the IP filter blocks; passes the rest on.

    `ip_filter` may be swapped at any time (`Client.set_ip_filter`); None blocks nothing.
    """

    def __init__(self, inner: Transport, ip_filter: IPFilter | None) -> None:
        self.inner = inner
        self.ip_filter = ip_filter
        self.refused = 0

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        if self.ip_filter is not None and self.ip_filter.blocks(addr[0]):
            self.refused += 1
            raise BlockedAddress(f"{addr[0]} is blocked by the IP filter")
        return await self.inner.connect(addr)

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        return self.inner.local_end(getattr(stream, "transport_stream", stream))


@final
class RateLimitedTransport:
    """Every stream it opens is charged to the client-wide rate limits."""

    def __init__(self, inner: Transport, bandwidth: BandwidthManager) -> None:
        self.inner = inner
        self.bandwidth = bandwidth

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        return self.bandwidth.wrap(await self.inner.connect(addr))

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        return self.inner.local_end(getattr(stream, "transport_stream", stream))
