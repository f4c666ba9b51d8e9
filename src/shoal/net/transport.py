"""The transport seam: how byte streams to peers are opened and accepted.

Theory of operation
-------------------
Everything above this module (MSE, the BitTorrent handshake, `EngineSession`, the
torrent) works on a `trio.abc.Stream` and does not care how it was made. A
`Transport` opens outgoing streams (`connect`) and says which local end a stream has
(`local_end`: both ends of a connection see the dialling end alike, which the
duplicate-connection tie-break needs). For incoming connections, a transport runs its
own accept loop and hands each stream to `Listener.handle_stream`, the shared sniff /
MSE / handshake / dispatch code. `TcpTransport` is the one implementation today; uTP
or a SOCKS5 proxy slot in beside it without touching the engine.

Deadlines: `connect` bounds only the connection setup (`CONNECT_TIMEOUT`); callers add
their own cancel scopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["CONNECT_TIMEOUT", "InboundHandler", "TcpTransport", "Transport"]

Addr = tuple[str, int]

#: A TCP connect to a live host on a LAN or the Internet takes well under a second;
#: 10 s covers slow links while freeing half-open slots quickly.
CONNECT_TIMEOUT: Final = 10.0

#: Takes one accepted stream and the peer's address; owns (and closes) the stream.
InboundHandler: TypeAlias = "Callable[[trio.abc.Stream, Addr], Awaitable[None]]"


class Transport(Protocol):
    """Opens byte streams to peers (see the module docstring)."""

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        """A connected stream to `addr`.

        Raises:
            OSError: the connection failed.
            trio.TooSlowError: it did not complete in time.
        """
        ...

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        """Our (ip, port) of a stream this transport opened, if it has one."""
        ...


@final
class TcpTransport:
    """Plain TCP; with `bind_host`, connections leave from that address (``--bind``).

    `bind_hosts` (a dual-stack client, one address per family) picks the source address
    by the family of the peer instead: an IPv4 source cannot reach an IPv6 peer. A
    wildcard there (``0.0.0.0``, ``::``) lets the OS choose.
    """

    def __init__(self, bind_host: str | None = None, *, bind_hosts: Sequence[str] = ()) -> None:
        self.bind_host = bind_host
        self._by_family = {":" in host: host for host in bind_hosts}

    def local_address(self, ip: str) -> str | None:
        """The source address for a connection to `ip`."""
        if not self._by_family:
            return self.bind_host
        host = self._by_family.get(":" in ip)
        return None if host in (None, "0.0.0.0", "::", "") else host

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        with trio.fail_after(CONNECT_TIMEOUT):
            return await trio.open_tcp_stream(*addr, local_address=self.local_address(addr[0]))

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        if not isinstance(stream, trio.SocketStream):
            return None
        try:
            local = stream.socket.getsockname()
        except OSError:
            return None
        return (str(local[0]), int(local[1]))
