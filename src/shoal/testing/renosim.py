"""A TCP-like (Reno) bulk flow over `SimNet`: the competing traffic in congestion tests.

It is not TCP: only what decides how a loss-based flow shares a bottleneck. Packets of
`SEGMENT` bytes are numbered; the receiver acknowledges every packet with the highest
in-order number (duplicates signal holes). The sender does slow start, additive
increase of one packet per RTT, halving on three duplicate acks (with a retransmission
of the first missing packet) and, after a 1 s silence, a restart from one packet
(go-back-N). That is enough to fill a drop-tail queue the way TCP does, which is what
LEDBAT must yield to. Pure, like `simnet`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .simnet import Addr

__all__ = ["SEGMENT", "RenoReceiver", "RenoSender"]

SEGMENT: Final = 1200
_RTO: Final = 1.0
_SEQ = struct.Struct(">Q")


class RenoSender:
    """Sends an endless stream to `dst` from `start` on (see the module docstring)."""

    def __init__(self, dst: Addr, *, start: float = 0.0) -> None:
        self.dst = dst
        self.start = start
        self.cwnd = 2.0
        self.ssthresh = 1e9
        self.next_seq = 0
        self.acked = 0  # every packet below this is acknowledged
        self._dups = 0
        self._out: list[tuple[bytes, Addr]] = []
        self._rto_at: float | None = None
        self._recover = -1

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        (ack,) = _SEQ.unpack_from(data)
        if ack > self.acked:
            newly = ack - self.acked
            self.acked = ack
            self._dups = 0
            for _ in range(newly):
                self.cwnd += 1.0 if self.cwnd < self.ssthresh else 1.0 / self.cwnd
            self._rto_at = now + _RTO
        elif ack == self.acked:
            self._dups += 1
            if self._dups == 3 and self.acked > self._recover:
                self._recover = self.next_seq
                self.ssthresh = self.cwnd = max(2.0, self.cwnd / 2)
                self._emit(self.acked)
        self._fill(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return self.start if self.next_seq == 0 else self._rto_at

    def handle_timer(self, now: float) -> None:
        if self.next_seq and self._rto_at is not None and now >= self._rto_at:
            self.ssthresh = max(2.0, self.cwnd / 2)
            self.cwnd = 1.0
            self.next_seq = self.acked  # go back N
        self._fill(now)

    def _fill(self, now: float) -> None:
        if now < self.start:
            return
        while self.next_seq - self.acked < int(self.cwnd):
            self._emit(self.next_seq)
            self.next_seq += 1
        self._rto_at = now + _RTO

    def _emit(self, seq: int) -> None:
        self._out.append((_SEQ.pack(seq) + bytes(SEGMENT - _SEQ.size), self.dst))


class RenoReceiver:
    """Acknowledges every packet with the number of the first one still missing."""

    def __init__(self) -> None:
        self.expected = 0
        self.received_bytes = 0
        self._ahead: set[int] = set()
        self._out: list[tuple[bytes, Addr]] = []

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        (seq,) = _SEQ.unpack_from(data)
        if seq == self.expected:
            self.expected += 1
            self.received_bytes += len(data)
            while self.expected in self._ahead:
                self._ahead.discard(self.expected)
                self.expected += 1
                self.received_bytes += len(data)
        elif seq > self.expected:
            self._ahead.add(seq)
        self._out.append((_SEQ.pack(self.expected), addr))

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None
