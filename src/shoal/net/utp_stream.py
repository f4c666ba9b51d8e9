"""`UTPStream`: one uTP connection as a `trio.abc.HalfCloseableStream`.

The bytes live in the pure `UTPConnection` (its send buffer and its receive buffer);
this class only waits. ``send_all`` queues into the send buffer and waits for room
(`Writable`), ``receive_some`` takes what is readable or waits for `Readable`. The
driving `UTPSocket` wakes the stream on every event of its connection, and is woken
in turn (``poke``) after every call here so queued packets go out.

Semantics follow trio's TCP ``SocketStream``:

- ``send_all`` returns once the data is queued (the engine then owns delivery);
- ``send_eof`` sends FIN and keeps receiving (half close);
- ``aclose`` sends FIN after the queued data and drops unread bytes; data the remote
  sends after that is answered with ST_RESET, so its ``send_all`` fails with
  `trio.BrokenResourceError`, as with a TCP RST;
- a remote RESET, a connection timeout or the socket shutting down make every later
  call raise `trio.BrokenResourceError`; our own ``aclose`` makes them raise
  `trio.ClosedResourceError`; the remote's FIN makes ``receive_some`` return ``b""``.
"""

from __future__ import annotations

from typing import Final, Protocol, final

import trio

from ..utp import CloseReason, ConnState, UTPConnection
from ._conflict import ConflictDetector

__all__ = ["UTPDriver", "UTPStream"]


class UTPDriver(Protocol):
    """What a stream needs from its `shoal.net.utp_socket.UTPSocket`."""

    @property
    def closed(self) -> bool: ...

    def poke(self) -> None: ...


DEFAULT_RECEIVE_SIZE: Final = 65536


@final
class UTPStream(trio.abc.HalfCloseableStream):
    """A byte stream over uTP; create with `UTPSocket.connect` / `UTPSocket.accept`."""

    def __init__(self, socket: UTPDriver, conn: UTPConnection) -> None:
        self._socket = socket
        self.conn = conn
        self._changed = trio.Event()
        self._waiters = 0
        self._closed = False
        self._eof_sent = False
        self._send_conflict = ConflictDetector("another task is sending on this UTPStream")
        self._receive_conflict = ConflictDetector("another task is receiving on this UTPStream")

    @property
    def remote_address(self) -> tuple[str, int]:
        return self.conn.addr

    # -- called by the socket -------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiters:  # most events find nobody waiting: no Event churn then
            self._changed.set()
            self._changed = trio.Event()

    async def _wait(self) -> None:
        self._waiters += 1
        try:
            await self._changed.wait()
        finally:
            self._waiters -= 1

    def _broken(self) -> bool:
        return self.conn.state is ConnState.CLOSED or self._socket.closed

    async def _wait_connected(self) -> None:
        while self.conn.state is ConnState.SYN_SENT and not self._socket.closed:
            await self._wait()
        if self.conn.state is ConnState.CONNECTED:
            return
        if self.conn.close_reason is CloseReason.TIMED_OUT:
            raise TimeoutError(f"uTP connect to {self.conn.addr} timed out")
        raise ConnectionRefusedError(f"uTP connect to {self.conn.addr} refused")

    def _check_send(self) -> None:
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("UTPStream is closed for sending")
        if self._broken():
            raise trio.BrokenResourceError(f"uTP connection {self._reason()}")

    def _reason(self) -> str:
        reason = self.conn.close_reason
        return "closed: socket shut down" if reason is None else f"ended: {reason.value}"

    # -- trio.abc.Stream ------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            self._check_send()
            await trio.lowlevel.checkpoint_if_cancelled()
            view = memoryview(data).cast("B")
            while view:
                taken = self.conn.send(view, trio.current_time())
                view = view[taken:]
                self._socket.poke()
                # Level-triggered: the Writable event may already have fired inside
                # send() (the engine drained the buffer at once), so look, then wait.
                if view and not self.conn.send_buffer_free:
                    await self._wait()
                self._check_send()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            self._check_send()
            while not self.conn.send_buffer_free:
                await self._wait()
                self._check_send()
            await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receive_conflict:
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("UTPStream is closed")
                chunk = self.conn.read(max_bytes, trio.current_time())
                if chunk:
                    self._socket.poke()  # a window update may be due
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return chunk
                if self.conn.eof:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return b""
                if self._broken():
                    raise trio.BrokenResourceError(f"uTP connection {self._reason()}")
                await self._wait()

    async def send_eof(self) -> None:
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("UTPStream is closed")
            if not self._eof_sent and not self._broken():
                self._eof_sent = True
                self.conn.send_eof(trio.current_time())
                self._socket.poke()
            self._eof_sent = True
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if not self._broken():
                self.conn.close(trio.current_time())
                self._socket.poke()
            self._wake()  # tasks blocked in send_all / receive_some see the close
        await trio.lowlevel.checkpoint()
