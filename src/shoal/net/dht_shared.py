"""`SharedSocket`: the DHT's UDP socket lent to another protocol (uTP, BEP 29).

A KRPC message is a bencoded dict (first byte ``d``), a uTP packet never starts so
(`is_krpc`), so both can share one port: `DHTService` hands the datagrams that are not
KRPC to the registered `DatagramHandler`, and the other protocol sends on the same
socket through `send_datagram` / `send_datagram_nowait` / `send_datagrams` (with a
bounded backlog while the socket is full). Those sending methods are this mixin of
`DHTService` (which owns the socket and the loop that drains the backlog), so that
``dht_service.py`` stays about driving the DHT engine; a mixin adds no call overhead
on the per-datagram path.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

import trio

from ..dht.compact import Addr
from .udp_gso import GsoRefused, send_batch

if TYPE_CHECKING:
    from collections import deque

__all__ = [
    "MAX_SEND_BACKLOG",
    "STREAM_BUFFER",
    "DatagramHandler",
    "SharedSocket",
    "is_krpc",
]

# The service's logger: these records were always `shoal.net.dht_service`'s.
log = logging.getLogger("shoal.net.dht_service")

#: Handler datagrams queued while the socket is full; past this, new ones are dropped
#: (as a full network queue would drop them; uTP retransmits).
MAX_SEND_BACKLOG: Final = 256

#: Receives the datagrams that are not KRPC (`is_krpc`): ``handler(data, addr, now)``.
#: It runs inside the socket loop, so it must not block; it may raise only
#: `DecodeError` / `RemoteProtocolError` (counted as malformed), anything else is a bug.
DatagramHandler: TypeAlias = Callable[[bytes, Addr, float], None]


def is_krpc(data: bytes) -> bool:
    """Whether a datagram belongs to the DHT: KRPC messages are bencoded dicts (``d``).

    uTP packets (BEP 29) start with ``type << 4 | 1``, 0x01 to 0x41, never 0x64.
    """
    return data[:1] == b"d"


#: Socket buffers once a stream protocol (uTP) shares the socket: a window of full-size
#: packets in flight overflows the DHT's 2 MiB while the loop is busy with a batch, and
#: every overflow is a loss that halves uTP's window (uTP's own socket asks the same).
STREAM_BUFFER: Final = 4 << 20


def _enlarge_for_streams(sock: socket.socket) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):  # the kernel caps it at net.core.[rw]mem_max
            sock.setsockopt(socket.SOL_SOCKET, option, STREAM_BUFFER)


class SharedSocket:
    """A mixin of `DHTService`: another protocol's datagrams on the DHT's socket."""

    _gso = True  # UDP segmentation for `send_datagrams` until the kernel refuses it

    # The socket-side state of the service (set by its __init__ and serve).
    _raw: socket.socket | None
    _handler: DatagramHandler | None
    _backlog: deque[tuple[bytes, Addr]]
    _handler_out: int
    _handler_dropped: int

    def _wake(self) -> None:
        raise NotImplementedError  # the service's: make its loop flush the backlog

    def set_datagram_handler(self, handler: DatagramHandler | None) -> None:
        """Hand every received datagram that is not KRPC (`is_krpc`) to `handler`.

        ``handler(data, addr, now)`` is called from the socket loop, once per datagram,
        with the ``now`` of its receive batch; it must not block (feed a sans-IO engine
        and wake its driver). None restores the default: everything goes to the DHT
        engine, which counts non-KRPC datagrams as malformed.
        """
        self._handler = handler
        if handler is not None and self._raw is not None:
            _enlarge_for_streams(self._raw)

    async def send_datagram(self, data: bytes, addr: Addr) -> None:
        """`send_datagram_nowait` as an async call: the ``DatagramTransport`` shape
        (``shoal.net.utp_socket``), so a `DHTService` carries uTP's output as it is.

        Only a cancellation point, not a scheduling one: uTP flushes a window of
        datagrams in a row, and a full yield per datagram would cost more than the
        ``sendto`` (the same choice as uTP's own socket transport).

        Raises:
            trio.ClosedResourceError: the service is not running.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self.send_datagram_nowait(data, addr)

    def send_datagram_nowait(self, data: bytes, addr: Addr) -> None:
        """Send `data` to `addr` from the DHT's socket (for the datagram handler's protocol).

        A non-blocking ``sendto`` right away, which almost never blocks; if the socket is
        full the datagram waits (in order, at most `MAX_SEND_BACKLOG`) for the socket
        loop to send it, and past that it is dropped, as UDP may.

        Raises:
            trio.ClosedResourceError: the service is not running.
        """
        sock = self._raw
        if sock is None:
            raise trio.ClosedResourceError("the DHT service is not running")
        if not self._backlog:
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                pass
            except OSError as exc:
                self._handler_dropped += 1
                log.debug("sendto %s failed: %s", addr, exc)
                return
            else:
                self._handler_out += 1
                return
        if len(self._backlog) >= MAX_SEND_BACKLOG:
            self._handler_dropped += 1
            return
        self._backlog.append((data, addr))
        self._wake()

    async def send_datagrams(self, batch: list[tuple[bytes, Addr]]) -> None:
        """`send_datagram` for a whole uTP flush: runs of equal-size datagrams to one
        address leave in one segmented send (`shoal.net.udp_gso`) while the kernel
        takes them and nothing waits in the backlog; the rest one by one, as above.
        Never on a `RelayedSocket` (a subclass): its ``sendto`` wraps for the proxy's
        relay, and a ``sendmsg`` would go direct."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if type(self._raw) is socket.socket and not self._backlog and self._gso:
            try:
                done, errors = send_batch(self._raw, batch)
            except GsoRefused as exc:
                self._gso, done, errors = False, exc.unsent, 0
            self._handler_out += done - errors
            self._handler_dropped += errors
            batch = batch[done:]
        for data, addr in batch:
            self.send_datagram_nowait(data, addr)
