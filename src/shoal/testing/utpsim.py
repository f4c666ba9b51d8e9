"""Drive `UTPEndpoint`s on `SimNet` with a tiny built-in application (bulk sender/reader).

`UTPApp` wraps an endpoint as a `simnet.DatagramEngine`; after every datagram and timer
it runs the application: it keeps the send buffer of its connections topped up from a
byte budget (`send_bytes`) and reads everything that becomes readable, checking order
on the fly (the bytes are a deterministic pattern, so the receiver only keeps a count
and the first mismatch instead of a copy of gigabytes). Pure, like `simnet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utp.endpoint import UTPEndpoint
from ..utp.events import ConnectionClosed, IncomingConnection

if TYPE_CHECKING:
    import random

    from ..utp.connection import UTPConfig, UTPConnection
    from .simnet import Addr

__all__ = ["UTPApp", "pattern"]

_PATTERN = bytes(range(251))  # 251 is prime: offsets do not line up with packet sizes


def pattern(offset: int, size: int) -> bytes:
    """Bytes ``offset .. offset+size`` of the endless test stream."""
    start = offset % len(_PATTERN)
    reps = (start + size) // len(_PATTERN) + 1
    return (_PATTERN * reps)[start : start + size]


class UTPApp:
    """An endpoint plus a bulk application; see the module docstring.

    Args:
        send_bytes: how many pattern bytes to send on each connection (0: only read).
        close_when_done: half-close each connection once all its bytes are queued, and
            close it once the remote's end of stream was read.
    """

    def __init__(
        self,
        rng: random.Random,
        config: UTPConfig | None = None,
        *,
        send_bytes: int = 0,
        close_when_done: bool = True,
    ) -> None:
        self.endpoint = UTPEndpoint(rng, config)
        self.send_bytes = send_bytes
        self.close_when_done = close_when_done
        self.sent: dict[UTPConnection, int] = {}
        self.received: dict[UTPConnection, int] = {}
        self.corrupt: dict[UTPConnection, int] = {}  # first bad offset per connection
        self.closed: dict[UTPConnection, object] = {}
        self._now = 0.0

    def connect(self, addr: Addr, now: float) -> UTPConnection:
        conn = self.endpoint.connect(addr, now)
        self._adopt(conn)
        self._run_app(now)
        return conn

    # -- DatagramEngine -------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.endpoint.receive_datagram(data, addr, now)
        self._run_app(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        return self.endpoint.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self.endpoint.get_timer()

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)
        self._run_app(now)

    # -- application ----------------------------------------------------------------------

    def _adopt(self, conn: UTPConnection) -> None:
        self.sent.setdefault(conn, 0)
        self.received.setdefault(conn, 0)

    def _run_app(self, now: float) -> None:
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, IncomingConnection):
                self._adopt(event.conn)
            elif isinstance(event, ConnectionClosed):
                self.closed[event.conn] = event.reason
        for conn in list(self.sent):
            if conn in self.closed:
                continue
            self._read(conn, now)
            self._write(conn, now)

    def _read(self, conn: UTPConnection, now: float) -> None:
        while chunk := conn.read(1 << 20, now):
            got = self.received[conn]
            if conn not in self.corrupt and chunk != pattern(got, len(chunk)):
                self.corrupt[conn] = got
            self.received[conn] = got + len(chunk)

    def _write(self, conn: UTPConnection, now: float) -> None:
        left = self.send_bytes - self.sent[conn]
        while left > 0:
            room = min(left, conn.send_buffer_free, 1 << 18)
            if room <= 0:
                return
            taken = conn.send(pattern(self.sent[conn], room), now)
            self.sent[conn] += taken
            left -= taken
            if taken < room:
                return
        if self.close_when_done:
            conn.send_eof(now)
            if conn.eof:
                conn.close(now)
