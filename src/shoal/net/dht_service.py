"""The Trio side of the DHT: one UDP socket driving the sans-IO `DHTNode` engine.

Theory of operation
-------------------
`DHTService.serve` owns the socket and runs the aioquic-style driver loop: wait until
the socket is readable or the engine's timer fires (`move_on_at(engine.get_timer())`),
feed in every datagram that is ready (up to `RECV_BATCH`), fire ``handle_timer`` when
the deadline has passed, then flush ``datagrams_to_send()`` and dispatch
``next_event()``. The protocol work (retries, lookups, tokens) is all in
the engine; this module only moves bytes and wakes waiters.

Callers in other tasks (``get_peers``, ``announce``) run an engine command, which may
queue datagrams and move the timer earlier, and then *wake* the loop by cancelling the
scope around its ``wait_readable`` (cancelling a wait loses nothing). So there is no
polling, and no task but the loop touches the socket.

Results go back through per-lookup `_Waiter` objects: a list of events plus a
`trio.lowlevel.ParkingLot`. The engine bounds how many events a lookup produces, so the
list needs no channel-style backpressure, and a circular flow through bounded channels
(the deadlock trio's docs warn about) cannot happen.

Address families: the socket's family follows the bind address (an IPv6 literal makes
an IPv6 socket, with ``IPV6_V6ONLY`` so that ``::`` does not also take the IPv4 port).
A dual-stack node is two services, one per family, each driving its own engine
(BEP 32: the IPv4 and IPv6 DHTs are separate networks).

Sharing the socket (uTP, BEP 29): a KRPC message is a bencoded dict, so its first
byte is ``d``; a uTP packet starts with ``type << 4 | version`` (0x01 to 0x41). With a
handler registered (`set_datagram_handler`), every datagram of the batch whose first
byte is not ``d`` goes to it instead of the engine, synchronously, with the batch's
``now``; `send_datagram` (async) / `send_datagram_nowait` send on the same socket, so
both protocols share one port. Those sending methods are the `SharedSocket` mixin
(``net/dht_shared.py``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NoReturn, final

import trio

from ..dht.events import (
    AnnounceSent,
    BootstrapFinished,
    DHTEvent,
    LookupFinished,
    OtherFamilyNodes,
    PeersFound,
)
from ..dht.routing import NodeState
from ..errors import DecodeError, RemoteProtocolError
from .dht_shared import MAX_SEND_BACKLOG as MAX_SEND_BACKLOG
from .dht_shared import STREAM_BUFFER as STREAM_BUFFER
from .dht_shared import DatagramHandler as DatagramHandler
from .dht_shared import SharedSocket
from .dht_shared import is_krpc as is_krpc
from .dht_state import load_state, save_state

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ..dht.compact import Addr
    from ..dht.node import DHTNode

__all__ = [
    "DHTService",
    "DHTServiceStats",
    "DatagramHandler",
    "is_krpc",
    "load_state",
    "save_state",
    "socket_family",
]

log = logging.getLogger(__name__)

# KRPC messages fit one unfragmented datagram; 64 KiB takes anything the kernel hands us.
MAX_DATAGRAM: Final = 65_536
# How often the routing table is written to the state file while running (and on exit).
SAVE_INTERVAL: Final = 300.0
# BEP 5: every query has "y": "q", the last key of a canonical encoding: it ends so.
_QUERY_END: Final = b"1:y1:qe"
# Datagrams read per wake-up before replies are flushed: large enough to amortise the
# scheduler round trip, small enough that the first reply of a batch is not held long.
RECV_BATCH: Final = 64
#: Datagrams read per wake-up while a handler (uTP) shares the socket; still at most
#: `RECV_BATCH` of them KRPC. uTP's own socket reads 256: a stream's window arrives in
#: bursts, and its ACKs leave together after the batch.
SHARED_RECV_BATCH: Final = 256
# Receive buffer asked of the kernel (Linux caps it at net.core.rmem_max).
RECV_BUFFER: Final = 1 << 21
# A sendto that keeps blocking after this many waits for writability is dropped.
_SEND_RETRIES: Final = 8


def socket_family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (``::1``, ``::``), else AF_INET (names resolve as IPv4)."""
    try:
        version = ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return socket.AF_INET
    return socket.AF_INET6 if version == 6 else socket.AF_INET


@dataclass(frozen=True, slots=True)
class DHTServiceStats:
    """Counters of the socket layer (the engine keeps its own protocol statistics)."""

    address: Addr | None
    datagrams_in: int
    datagrams_out: int
    #: Queries among `datagrams_out` (the rest are our replies).
    queries_out: int
    bytes_in: int
    bytes_out: int
    #: Datagrams the engine rejected as malformed.
    malformed: int
    #: sendto/recvfrom calls that failed with an OSError (ICMP errors, no route).
    socket_errors: int
    #: Datagrams handed to / sent for the datagram handler (uTP), not in the counts above.
    handler_in: int = 0
    handler_out: int = 0
    #: Handler datagrams dropped because the socket stayed full (or failed).
    handler_dropped: int = 0


@dataclass(eq=False)
class _Waiter:
    """Events of one lookup, handed from the driver loop to the task that asked.

    A get_peers lookup is done at `LookupFinished`; an announce only at `AnnounceSent`,
    which the engine reports after the lookup has finished and announce_peer went out.
    """

    announce: bool = False
    events: list[PeersFound] = field(default_factory=list)
    finished: LookupFinished | None = None
    done: bool = False
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    def push(self, event: PeersFound) -> None:
        self.events.append(event)
        self.lot.unpark_all()

    def finish(self) -> None:
        self.done = True
        self.lot.unpark_all()

    async def wait_done(self) -> None:
        await trio.lowlevel.checkpoint()
        while not self.done:
            await self.lot.park()


@final
class DHTService(SharedSocket):
    """Bind a UDP socket and drive a `DHTNode` on it until cancelled.

    Args:
        node: the engine; the service is its only driver.
        bind: local (host, port); port 0 picks a free port.
        state_file: where to save our node ID and good nodes (on exit and periodically).
        save_interval: seconds between periodic saves of `state_file`.
        sock: an unbound UDP socket to bind, drive and close instead of a new one:
            a `shoal.net.socks_udp.RelayedSocket` (the DHT through a SOCKS5 proxy).
    """

    def __init__(
        self,
        node: DHTNode,
        *,
        bind: Addr = ("127.0.0.1", 0),
        state_file: Path | None = None,
        save_interval: float = SAVE_INTERVAL,
        sock: socket.socket | None = None,
    ) -> None:
        self._given = sock
        self._node = node
        self._bind = bind
        self._state_file = state_file
        self._save_interval = save_interval
        self._sock: socket.socket | None = None
        self._raw: socket.socket | None = None
        self._handler: DatagramHandler | None = None
        self._backlog: deque[tuple[bytes, Addr]] = deque()
        self._handler_in = self._handler_out = self._handler_dropped = 0
        self._sibling: DHTService | None = None
        self._fed_sibling = False
        self._wakeup = trio.CancelScope()
        self._dirty = False
        self._waiters: dict[int, _Waiter] = {}
        self._bootstrapped = trio.Event()
        self.address: Addr | None = None
        self._in = self._out = self._bytes_in = self._bytes_out = 0
        self._malformed = self._socket_errors = self._queries_out = 0

    @property
    def node(self) -> DHTNode:
        return self._node

    async def wait_bootstrapped(self) -> None:
        """Return once a bootstrap has reached the network (it never does without seeds)."""
        await self._bootstrapped.wait()

    def statistics(self) -> DHTServiceStats:
        return DHTServiceStats(
            self.address,
            self._in,
            self._out,
            self._queries_out,
            self._bytes_in,
            self._bytes_out,
            self._malformed,
            self._socket_errors,
            self._handler_in,
            self._handler_out,
            self._handler_dropped,
        )

    @property
    def family(self) -> socket.AddressFamily:
        """The address family of the socket (from the bind address)."""
        return socket_family(self._bind[0])

    async def serve(
        self, *, task_status: trio.TaskStatus[Addr] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Run until cancelled; ``task_status.started`` gets the bound address.

        The state file, if any, is saved every `SAVE_INTERVAL` seconds and once more on the
        way out, even when cancelled.
        """
        family = self.family
        raw = self._given if self._given is not None else socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            # Only IPv6 on this socket: the IPv4 service of a dual-stack node binds the
            # same port number, and IPv4-mapped addresses would mix the two tables.
            raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # The driver loop uses `raw` directly (non-blocking), see `_drive`.
        with raw:
            # Bursts of small datagrams overflow the default buffer (~270 of them on
            # Linux) long before the CPU is saturated; ask for more (capped by rmem_max).
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            await self._bind_socket(raw)
            host, port = raw.getsockname()[:2]
            self.address = (host, port)
            self._sock = raw
            self._raw = raw
            try:
                async with trio.open_nursery() as nursery:
                    if self._state_file is not None:
                        nursery.start_soon(self._save_periodically)
                    task_status.started(self.address)
                    await self._drive(raw)
            finally:
                self._sock = self._raw = None
                self._backlog.clear()
                for waiter in self._waiters.values():
                    waiter.finish()
                self._waiters.clear()
                if self._state_file is not None:
                    with trio.CancelScope(shield=True):
                        await self.save_state()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _bind_socket(self, raw: socket.socket) -> None:
        """Bind, non-blocking (async: a name may resolve); a given `RelayedSocket`, which
        trio will not wrap, binds its IP literal directly (that cannot block)."""
        addr = (self._bind[0].strip("[]"), self._bind[1])
        if type(raw) is socket.socket:
            await trio.socket.from_stdlib_socket(raw).bind(addr)  # also non-blocking now
        else:
            raw.setblocking(False)
            raw.bind(addr)
            await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ driver loop

    async def _drive(self, sock: socket.socket) -> NoReturn:
        """Wait until readable (or the timer, or a wake-up), then read a whole batch.

        Trio's ``recvfrom`` costs a scheduler round trip per datagram, more than the
        engine spends answering it; here one ``wait_readable`` and one clock read serve
        up to `RECV_BATCH` datagrams, read with plain non-blocking ``recvfrom``.
        """
        while True:
            self._dirty = False
            await self._flush(sock)
            if self._dirty:  # a command ran while we were sending
                continue
            deadline = self._node.get_timer()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._wakeup = scope
                await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            self._receive_batch(sock, now)
            if deadline is not None and now >= deadline:
                self._node.handle_timer(now)

    def _receive_batch(self, sock: socket.socket, now: float) -> None:
        handler = self._handler
        if handler is not None:
            self._receive_shared(sock, now, handler)
            return
        # The DHT alone: the tightest loop (serving cost is measured per datagram).
        receive = self._node.receive_datagram
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except (ConnectionResetError, ConnectionRefusedError) as exc:
                # ICMP "port unreachable" for an earlier sendto (some platforms report
                # it here). Any other OSError means the socket is broken: let it raise.
                self._socket_errors += 1
                log.debug("recvfrom failed: %s", exc)
                continue
            self._in += 1
            self._bytes_in += len(data)
            try:
                receive(data, addr if len(addr) == 2 else (addr[0], addr[1]), now)
            except (DecodeError, RemoteProtocolError) as exc:
                self._malformed += 1
                log.debug("dropped datagram from %s: %s", addr, exc)

    def _receive_shared(self, sock: socket.socket, now: float, handler: DatagramHandler) -> None:
        """`_receive_batch` with a handler: up to `SHARED_RECV_BATCH` datagrams, of which
        at most `RECV_BATCH` KRPC (the DHT's replies wait for no more queries than alone).
        """
        receive = self._node.receive_datagram
        krpc = 0
        for _ in range(SHARED_RECV_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except (ConnectionResetError, ConnectionRefusedError) as exc:
                self._socket_errors += 1
                log.debug("recvfrom failed: %s", exc)
                continue
            if data[:1] != b"d":  # not KRPC: see `is_krpc`
                self._handler_in += 1
                try:
                    handler(data, (addr[0], addr[1]), now)
                except (DecodeError, RemoteProtocolError) as exc:
                    self._malformed += 1
                    log.debug("handler dropped datagram from %s: %s", addr, exc)
                continue
            self._in += 1
            self._bytes_in += len(data)
            try:
                receive(data, (addr[0], addr[1]), now)
            except (DecodeError, RemoteProtocolError) as exc:
                self._malformed += 1
                log.debug("dropped datagram from %s: %s", addr, exc)
            krpc += 1
            if krpc == RECV_BATCH:
                return

    async def _flush(self, sock: socket.socket) -> None:
        """Send what the engine queued, then hand its events to waiting tasks.

        ``sendto`` on a non-blocking UDP socket almost never blocks; only when it does
        do we wait (and so checkpoint) for the socket to drain.
        """
        while self._backlog:
            data, addr = self._backlog.popleft()
            if await self._send_waiting(sock, data, addr):
                self._handler_out += 1
            else:
                self._handler_dropped += 1
        for data, addr in self._node.datagrams_to_send():
            try:  # the common case inline: a coroutine call per reply is measurable
                sock.sendto(data, addr)
                sent = True
            except BlockingIOError:
                sent = await self._send_waiting(sock, data, addr)
            except OSError as exc:
                self._socket_errors += 1
                log.debug("sendto %s failed: %s", addr, exc)
                sent = False
            if sent:
                self._out += 1
                self._bytes_out += len(data)
                self._queries_out += data.endswith(_QUERY_END)
        while (event := self._node.next_event()) is not None:
            self._dispatch(event)

    async def _send_waiting(self, sock: socket.socket, data: bytes, addr: Addr) -> bool:
        """``sendto``, waiting for writability while the socket is full; False: dropped."""
        for _ in range(_SEND_RETRIES):
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                self._socket_errors += 1
                log.debug("sendto %s failed: %s", addr, exc)
                return False
            return True
        self._socket_errors += 1  # the socket stayed full: drop, as UDP may
        return False

    def _dispatch(self, event: DHTEvent) -> None:
        if isinstance(event, PeersFound):
            waiter = self._waiters.get(event.lookup_id)
            if waiter is not None:
                waiter.push(event)
        elif isinstance(event, LookupFinished):
            waiter = self._waiters.get(event.lookup_id)
            if waiter is not None:
                waiter.finished = event
                if not waiter.announce:
                    del self._waiters[event.lookup_id]
                    waiter.finish()
        elif isinstance(event, BootstrapFinished):
            self._bootstrapped.set()
        elif isinstance(event, AnnounceSent):
            waiter = self._waiters.pop(event.lookup_id, None)
            if waiter is not None:
                waiter.finish()
        elif isinstance(event, OtherFamilyNodes):
            self._feed_sibling(event)

    def set_sibling(self, sibling: DHTService | None) -> None:
        """The service of the other address family (dual stack): it gets the contacts
        of its family that our engine learns (`OtherFamilyNodes`)."""
        self._sibling = sibling

    def _feed_sibling(self, event: OtherFamilyNodes) -> None:
        """First time: bootstrap the sibling through the contacts too (if it has not
        joined yet); then ping them (each enters its table if it answers). The engine
        stops sending these events once the sibling's table holds k nodes, so this is
        bounded."""
        sibling = self._sibling
        if sibling is None or sibling._sock is None:
            return
        now = trio.current_time()
        if not self._fed_sibling and not sibling.node.statistics(now).bootstrapped:
            self._fed_sibling = True
            known = sibling.node.bootstrap_addrs
            sibling.add_nodes([*known, *(n.addr for n in event.nodes if n.addr not in known)])
            return
        table = sibling.node.table
        for node in event.nodes:
            if table.get_by_addr(node.addr) is None:
                sibling.node.ping(node.addr, now, node.node_id)
        sibling._wake()

    def _wake(self) -> None:
        """A command queued work: make the loop flush and re-read the timer now.

        The loop awaits only in ``wait_readable`` (cancelled here) and, when the socket
        is full, in ``wait_writable`` during a flush (noticed through ``_dirty``), so a
        wake-up is never lost.
        """
        self._dirty = True
        self._wakeup.cancel()

    # ------------------------------------------------------------ commands

    def register(self, lookup_id: int, *, announce: bool = False) -> _Waiter:
        """Start collecting the events of `lookup_id` and wake the loop to send its queries.

        Call it right after the engine command, before any checkpoint, so that no event of
        the lookup can be dispatched before the waiter exists.
        """
        if self._sock is None:
            raise trio.ClosedResourceError("the DHT service is not running")
        waiter = self._waiters.setdefault(lookup_id, _Waiter(announce=announce))
        self._wake()
        return waiter

    def add_nodes(self, addrs: Iterable[Addr]) -> None:
        """Bootstrap from `addrs` (resolved IP addresses)."""
        self._node.bootstrap(list(addrs), trio.current_time())
        self._wake()

    # ------------------------------------------------------------ state file

    async def save_state(self) -> None:
        """Write the state file now (a no-op without one).

        It holds the nodes of the sibling engine too (the other address family of a
        dual-stack node, see `DHTNode.set_sibling`), so one file keeps both tables.
        """
        if self._state_file is None:
            await trio.lowlevel.checkpoint()
        else:
            now = trio.current_time()
            engines = (
                [self._node] if self._node.sibling is None else [self._node, self._node.sibling]
            )
            nodes = [
                (e.node_id, e.addr)
                for engine in engines
                for e in engine.table.entries()
                if e.last_response is not None and e.state(now) is not NodeState.BAD
            ]
            ids = {"ipv6" if e.config.ipv6 else "ipv4": e.node_id for e in engines}  # BEP 42
            await trio.to_thread.run_sync(
                save_state, self._state_file, engines[0].node_id, nodes, ids
            )

    async def _save_periodically(self) -> None:
        while True:
            await trio.sleep(self._save_interval)
            try:
                await self.save_state()
            except OSError as exc:
                log.warning("could not save DHT state to %s: %s", self._state_file, exc)
