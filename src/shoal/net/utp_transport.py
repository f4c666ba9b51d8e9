"""uTP as a peer transport (``net/transport.py``'s seam), and uTP-first with TCP fallback.

`UTPTransport` dials through a `UTPSocket`; `serve_utp` accepts its incoming
connections and hands each to an `InboundHandler` (``Listener.handle_stream``), so
sniffing, MSE and the BitTorrent handshake are the TCP code path unchanged.

`FallbackTransport` is libtorrent's outgoing policy: try uTP first and, if the peer
does not answer it within `UTP_FIRST_BUDGET`, dial TCP. The budget is shorter than a
full uTP connect (1 + 2 + 4 s of SYN resends) because a peer that speaks uTP answers a
SYN within one round trip; libtorrent's ``utp_connect_timeout`` is the same 3 s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

import trio

from .mse_stream import MSEStream
from .transport import CONNECT_TIMEOUT
from .utp_stream import UTPStream

if TYPE_CHECKING:
    from .transport import InboundHandler, Transport
    from .utp_socket import UTPSocket

__all__ = ["UTP_FIRST_BUDGET", "FallbackTransport", "UTPTransport", "is_utp", "serve_utp"]

Addr = tuple[str, int]

UTP_FIRST_BUDGET: Final = 3.0


@final
class UTPTransport:
    """Outgoing uTP connections from one `UTPSocket`."""

    def __init__(self, socket: UTPSocket) -> None:
        self.socket = socket

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        with trio.fail_after(CONNECT_TIMEOUT):
            return await self.socket.connect(addr)

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        local = self.socket.local_address
        if not isinstance(stream, UTPStream) or local is None or local[0] in ("0.0.0.0", "::"):
            return None  # a wildcard socket has no single address the remote sees
        return local


@final
class FallbackTransport:
    """Dial `first` (uTP) for at most `budget` seconds, then `second` (TCP)."""

    def __init__(self, first: Transport, second: Transport, *, budget: float = UTP_FIRST_BUDGET):
        self.first = first
        self.second = second
        self.budget = budget
        self.fallbacks = 0

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        with trio.move_on_after(self.budget):
            try:
                return await self.first.connect(addr)
            except OSError:
                pass  # refused (RESET) or unreachable: TCP may still work
        self.fallbacks += 1
        return await self.second.connect(addr)

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        if isinstance(stream, UTPStream):
            return self.first.local_end(stream)
        return self.second.local_end(stream)


def is_utp(stream: trio.abc.Stream) -> bool:
    """Whether a peer stream runs over uTP (under MSE or not): BEP 11's "supports uTP"."""
    while isinstance(stream, MSEStream):
        stream = stream.transport_stream
    return isinstance(stream, UTPStream)


async def serve_utp(
    socket: UTPSocket,
    handler: InboundHandler,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept uTP connections forever, each handled in its own task by `handler`."""
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            try:
                stream = await socket.accept()
            except trio.EndOfChannel:
                return  # the socket shut down
            nursery.start_soon(handler, stream, stream.remote_address)
