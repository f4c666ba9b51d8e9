"""`UTPSocket`: drives the pure `UTPEndpoint` over UDP and hands out `UTPStream`s.

Theory of operation
-------------------
The endpoint is a datagram engine (style.md 4.2). This module only moves bytes and
time in and out of it:

- **Input** is `UTPSocket.datagram_received(data, addr)`, a plain synchronous call. Who
  reads the UDP socket is not our business: `open_utp_socket` binds its own socket and
  reads it in batches, and a socket shared with the DHT (demultiplexed by the first
  byte: KRPC messages are bencoded dicts and start with ``d``, a uTP header starts with
  ``0x01``, ``0x11``, ``0x21``, ``0x31`` or ``0x41``) can call the same method.
- **Output** goes through a `DatagramTransport` (one async ``send_datagram`` method),
  so the same driver runs over our own socket now and the shared one later.
- **One task** (`serve`) flushes queued datagrams and sleeps until the engine's timer or
  a wake-up (every input and every stream call wakes it), so acknowledgements for a
  whole batch of received datagrams go out together.
- **Events** wake the one stream they concern; incoming connections go to a bounded
  channel read by `accept` (when it is full the connection is reset: back-pressure).

Errors: a datagram that is not uTP raises `DecodeError` in the engine and is dropped
and counted here. `connect` raises `ConnectionRefusedError` / `TimeoutError` (both
`OSError`s, like a TCP dial) when the remote refuses or never answers.
"""

from __future__ import annotations

import logging
import math
import random
import socket as stdlib_socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import trio

from ..errors import DecodeError, RemoteProtocolError
from ..utp import (
    ConnectionClosed,
    IncomingConnection,
    UTPConfig,
    UTPConnection,
    UTPEndpoint,
)
from .udp_gso import GsoRefused, send_batch
from .utp_stream import UTPStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["DatagramTransport", "UTPSocket", "UTPSocketStats", "open_utp_socket"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]
#: Incoming connections waiting for `accept`; more are reset.
ACCEPT_BACKLOG: Final = 64
RECV_BATCH: Final = 256
MAX_DATAGRAM: Final = 65536
_SEND_RETRIES: Final = 8
SOCKET_BUFFER: Final = 4 << 20


class DatagramTransport(Protocol):
    """Where `UTPSocket` sends its datagrams (our own socket, or one shared with the DHT).

    A transport may also have ``send_datagrams(batch)`` (`BatchTransport`): then a
    whole flush goes to it in one call, so it can coalesce datagrams (see `send_batch`).
    """

    async def send_datagram(self, data: bytes, addr: Addr) -> None: ...


class BatchTransport(DatagramTransport, Protocol):
    """A `DatagramTransport` that takes a flush's datagrams at once."""

    async def send_datagrams(self, batch: list[tuple[bytes, Addr]]) -> None: ...


@dataclass(frozen=True, slots=True)
class UTPSocketStats:
    connections: int
    datagrams_in: int
    datagrams_out: int
    malformed: int
    syns_refused: int


class UTPSocket:
    """All uTP connections over one datagram transport (see the module docstring)."""

    def __init__(
        self,
        transport: DatagramTransport,
        *,
        config: UTPConfig | None = None,
        accept: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._endpoint = UTPEndpoint(rng or random.SystemRandom(), config, accept=accept)
        self._streams: dict[UTPConnection, UTPStream] = {}
        self._incoming_send, self._incoming = trio.open_memory_channel[UTPStream](ACCEPT_BACKLOG)
        self._wakeup = trio.Event()
        self._closed = False
        self._malformed = 0
        #: Where the socket is bound, when `open_utp_socket` created it.
        self.local_address: Addr | None = None

    @property
    def endpoint(self) -> UTPEndpoint:
        return self._endpoint

    # -- input ----------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr, now: float | None = None) -> None:
        """Feed one UDP datagram (synchronous: callable from any reader loop, e.g. as
        `DHTService.set_datagram_handler`'s handler); `now`: the batch's time if known.

        The events are dispatched (and the ACKs sent) by the driver task, which this
        wakes: a reader handing over a batch of datagrams pays for that once.
        """
        self._feed(data, addr, trio.current_time() if now is None else now)
        self._wakeup.set()

    def _feed(self, data: bytes, addr: Addr, now: float) -> None:
        """One datagram into the engine, without dispatching (a batch pokes once)."""
        try:
            self._endpoint.receive_datagram(data, addr, now)
        except (DecodeError, RemoteProtocolError) as exc:
            self._malformed += 1
            log.debug("dropped datagram from %s: %s", addr, exc)

    def poke(self) -> None:
        """Dispatch the engine's events and wake the sender (after any engine call)."""
        self._dispatch()
        self._wakeup.set()

    def _dispatch(self) -> None:
        while (event := self._endpoint.next_event()) is not None:
            if isinstance(event, IncomingConnection):
                self._adopt(event.conn)
                continue
            stream = self._streams.get(event.conn)
            if isinstance(event, ConnectionClosed):
                self._streams.pop(event.conn, None)
            if stream is not None:
                stream._wake()

    def _adopt(self, conn: UTPConnection) -> None:
        stream = UTPStream(self, conn)
        try:
            self._incoming_send.send_nowait(stream)
        except trio.WouldBlock:
            conn.abort(trio.current_time())  # nobody accepts fast enough
            return
        self._streams[conn] = stream

    # -- commands -------------------------------------------------------------------------

    async def connect(self, addr: Addr) -> UTPStream:
        """Open a uTP connection to `addr` (use a cancel scope to bound the wait).

        Raises `ConnectionRefusedError` (RESET, or the SYN was never answered after the
        configured resends: `TimeoutError`).
        """
        if self._closed:
            raise trio.ClosedResourceError("uTP socket is closed")
        conn = self._endpoint.connect(addr, trio.current_time())
        stream = UTPStream(self, conn)
        self._streams[conn] = stream
        self.poke()
        try:
            await stream._wait_connected()
        except BaseException:
            conn.abort(trio.current_time())
            self.poke()
            raise
        return stream

    async def accept(self) -> UTPStream:
        """The next incoming connection."""
        return await self._incoming.receive()

    def statistics(self) -> UTPSocketStats:
        ep = self._endpoint.statistics()
        return UTPSocketStats(
            ep.connections, ep.datagrams_in, ep.datagrams_out, self._malformed, ep.syns_refused
        )

    # -- driver ---------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush datagrams and run timers until cancelled; then every stream breaks."""
        task_status.started()
        try:
            while True:
                self._wakeup = trio.Event()
                await self._flush()
                deadline = self._endpoint.get_timer()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wakeup.wait()
                now = trio.current_time()
                if deadline is not None and now >= deadline:
                    self._endpoint.handle_timer(now)
                    self._dispatch()
        finally:
            self._shutdown()

    async def _flush(self) -> None:
        send_batch = getattr(self._transport, "send_datagrams", None)
        while out := self._endpoint.datagrams_to_send():
            if send_batch is not None:
                await send_batch(out)
                continue
            for data, addr in out:
                await self._transport.send_datagram(data, addr)
        self._dispatch()

    def _shutdown(self) -> None:
        self._closed = True
        self._incoming_send.close()
        for stream in list(self._streams.values()):
            stream._wake()
        self._streams.clear()

    @property
    def closed(self) -> bool:
        return self._closed


class _UDPTransport:
    """Non-blocking ``sendto`` on our own socket; waits only when its buffer is full."""

    def __init__(self, sock: stdlib_socket.socket) -> None:
        self._sock = sock
        self.errors = 0
        self.segment = True  # UDP GSO until the kernel refuses it once

    async def send_datagrams(self, batch: list[tuple[bytes, Addr]]) -> None:
        """A flush's datagrams: runs of equal size to one address in one ``sendmsg``
        each (`shoal.net.udp_gso`); waits while the socket buffer is full."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while batch and self.segment:
            try:
                done, errors = send_batch(self._sock, batch)
            except GsoRefused as exc:  # no UDP GSO here (old kernel, another OS)
                log.debug("%s; sendto from now on", exc)
                self.segment = False
                batch = batch[exc.unsent :]
                break
            self.errors += errors
            batch = batch[done:]
            if batch:
                await trio.lowlevel.wait_writable(self._sock)
        for data, addr in batch:
            await self.send_datagram(data, addr)

    async def send_datagram(self, data: bytes, addr: Addr) -> None:
        for _ in range(_SEND_RETRIES):
            try:
                self._sock.sendto(data, addr)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
            except OSError as exc:  # e.g. ICMP unreachable reported on a later send
                self.errors += 1
                log.debug("sendto %s failed: %s", addr, exc)
            return
        self.errors += 1  # stayed full: drop, as UDP may


@asynccontextmanager
async def open_utp_socket(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    config: UTPConfig | None = None,
    accept: bool = True,
) -> AsyncIterator[UTPSocket]:
    """Bind a UDP socket at (host, port) and run a `UTPSocket` on it until the block exits."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    with stdlib_socket.socket(family, stdlib_socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        _enlarge_buffers(sock)
        sock.bind((host, port))
        utp = UTPSocket(_UDPTransport(sock), config=config, accept=accept)
        utp.local_address = sock.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            await nursery.start(utp.serve)
            nursery.start_soon(_read_loop, sock, utp)
            try:
                yield utp
            finally:
                nursery.cancel_scope.cancel()


def _enlarge_buffers(sock: stdlib_socket.socket) -> None:
    """Ask for `SOCKET_BUFFER` each way (the kernel caps it at net.core.[rw]mem_max).

    The default ~200 KiB receive buffer overflows on loopback while our task is busy
    with the previous batch, and every overflow is a loss that halves the window.
    """
    for option in (stdlib_socket.SO_RCVBUF, stdlib_socket.SO_SNDBUF):
        try:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, option, SOCKET_BUFFER)
        except OSError:  # pragma: no cover - some platforms refuse large values
            log.debug("could not set socket buffer option %s", option)


async def _read_loop(sock: stdlib_socket.socket, utp: UTPSocket) -> None:
    """Wait until readable, then read a whole batch with plain non-blocking ``recvfrom``.

    Trio's ``recvfrom`` costs a scheduler round trip per datagram (see
    net/dht_service.py); one ``wait_readable`` per batch also lets the acks for the
    whole batch leave together.
    """
    feed = utp._feed
    while True:
        await trio.lowlevel.wait_readable(sock)
        now = trio.current_time()
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except (ConnectionResetError, ConnectionRefusedError):
                continue  # ICMP for an earlier sendto
            feed(data, (addr[0], addr[1]), now)
        utp.poke()
