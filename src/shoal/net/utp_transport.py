"""uTP as a peer transport (``net/transport.py``'s seam), and uTP-first with TCP fallback.

`UTPTransport` dials through a `UTPSocket`; `serve_utp` accepts its incoming
connections and hands each to an `InboundHandler` (``Listener.handle_stream``), so
sniffing, MSE and the BitTorrent handshake are the TCP code path unchanged.

`UTPTransport` holds one `UTPSocket` per bound address family (the DHT's sockets,
one per ``--bind`` family) and dials from the one of the peer's family.

`FallbackTransport` is the outgoing policy for ``both``: uTP first, TCP raced against
it ("happy eyeballs", RFC 8305). uTP gets a head start of `UTP_HEAD_START`; TCP starts
when the head start is over or as soon as uTP fails (a RESET), and the first
connection up wins while the other attempt is cancelled (or closed, if it too got
through). A peer that speaks uTP answers our SYN within one round trip, and the TCP
attempt also needs one round trip after it starts, so uTP wins against every uTP peer
unless its SYN or SYN-ACK is lost; a TCP-only peer costs the head start, not the 3 s
(libtorrent's ``utp_connect_timeout``) that waiting out the uTP connect cost before.
libtorrent itself waits the whole 3 s; RFC 8305 recommends 250 ms between attempts.
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

__all__ = ["UTP_HEAD_START", "FallbackTransport", "UTPTransport", "is_utp", "serve_utp"]

Addr = tuple[str, int]

#: How long uTP dials alone before TCP joins the race (see the module docstring).
UTP_HEAD_START: Final = 0.25


def _is_v6(ip: str) -> bool:
    return ":" in ip


@final
class UTPTransport:
    """Outgoing uTP connections, from the socket of the peer's address family."""

    def __init__(self, *sockets: UTPSocket) -> None:
        if not sockets:
            raise ValueError("UTPTransport needs at least one socket")
        self.sockets = sockets
        self._by_family: dict[bool, UTPSocket] = {}
        for sock in sockets:
            local = sock.local_address
            self._by_family.setdefault(local is not None and _is_v6(local[0]), sock)

    @property
    def socket(self) -> UTPSocket:
        """The first socket (the one of `ClientConfig.bind_host`'s family)."""
        return self.sockets[0]

    def socket_for(self, ip: str) -> UTPSocket | None:
        """The socket that can reach `ip` (same address family), if we have one."""
        return self._by_family.get(_is_v6(ip))

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        sock = self.socket_for(addr[0])
        if sock is None:
            raise OSError(f"no uTP socket of the address family of {addr[0]}")
        with trio.fail_after(CONNECT_TIMEOUT):
            return await sock.connect(addr)

    def local_end(self, stream: trio.abc.Stream) -> Addr | None:
        if not isinstance(stream, UTPStream):
            return None
        local = self.socket_for(stream.remote_address[0])
        address = None if local is None else local.local_address
        if address is None or address[0] in ("0.0.0.0", "::"):
            return None  # a wildcard socket has no single address the remote sees
        return address


@final
class FallbackTransport:
    """Dial `first` (uTP), and `second` (TCP) after `head_start` or once `first` fails;
    the first connection up wins (see the module docstring)."""

    def __init__(
        self, first: Transport, second: Transport, *, head_start: float = UTP_HEAD_START
    ) -> None:
        self.first = first
        self.second = second
        self.head_start = head_start
        #: Connections that ended up on `second` (TCP).
        self.fallbacks = 0

    async def connect(self, addr: Addr) -> trio.abc.Stream:
        winner: list[tuple[trio.abc.Stream, Transport]] = []
        errors: dict[Transport, Exception] = {}
        first_failed = trio.Event()

        async def attempt(transport: Transport, nursery: trio.Nursery) -> None:
            if transport is self.second:
                with trio.move_on_after(self.head_start):
                    await first_failed.wait()
            try:
                stream = await transport.connect(addr)
            except (OSError, trio.TooSlowError) as exc:
                errors[transport] = exc
                first_failed.set()
                return
            if winner:  # both got through at once: keep the first
                await trio.aclose_forcefully(stream)
                return
            winner.append((stream, transport))
            nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(attempt, self.first, nursery)
                nursery.start_soon(attempt, self.second, nursery)
        except BaseException:  # cancelled from outside just as an attempt got through
            for stream, _ in winner:
                await trio.aclose_forcefully(stream)
            raise
        if not winner:  # both failed: TCP's error is the more telling one
            raise errors.get(self.second) or errors[self.first]
        stream, transport = winner[0]
        if transport is self.second:
            self.fallbacks += 1
        return stream

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
