"""Outstanding KRPC queries: ``(addr, t)`` → caller data, with deadlines.

Why a table of its own: the transaction id is the only thing tying a UDP reply to
our query, so it is allocated from the injected rng (an off-path spoofer must
guess it) and a reply is matched on the *address* as well as the id. BEP 5 says
"typically 2 characters are enough"; ids are unique per address, and after a few
collisions we fall back to 4 bytes rather than loop.

Deadlines sit in a heap with lazy deletion, so ``next_deadline`` is O(1) amortised
and answering a reply does not have to search the heap.

Retransmission lives here too, so that the caller's state machines (lookups) never
see it: `schedule_resend` keeps the exact datagram, `pop_resends` hands it back once
when its time comes if the transaction is still pending. Same bytes means the same
``t``, so a reply to either copy matches the one transaction.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import random

    from .compact import Addr

__all__ = ["TransactionTable"]

T = TypeVar("T")


class TransactionTable(Generic[T]):
    """Pending queries keyed by (address, transaction id); values are the caller's."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._pending: dict[tuple[Addr, bytes], tuple[int, float, T]] = {}
        self._heap: list[tuple[float, int, Addr, bytes]] = []
        self._seq = 0
        self._resend: dict[tuple[Addr, bytes], bytes] = {}
        self._resend_heap: list[tuple[float, int, Addr, bytes]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: tuple[Addr, bytes]) -> bool:
        return key in self._pending

    def add(self, addr: Addr, value: T, deadline: float) -> bytes:
        """Register a query to `addr`; returns the fresh transaction id to send."""
        t = self._new_tid(addr)
        self._seq += 1
        self._pending[(addr, t)] = (self._seq, deadline, value)
        heapq.heappush(self._heap, (deadline, self._seq, addr, t))
        return t

    def pop(self, addr: Addr, t: bytes) -> T | None:
        """The value for a reply from `addr` with id `t`, removing it; None if unknown."""
        entry = self._pending.pop((addr, t), None)
        if entry is None:
            return None
        self._resend.pop((addr, t), None)
        return entry[2]

    def schedule_resend(self, addr: Addr, t: bytes, at: float, datagram: bytes) -> None:
        """Send `datagram` (the query as sent) once more at `at` unless answered by then."""
        if (addr, t) in self._pending:
            self._resend[(addr, t)] = datagram
            self._seq += 1
            heapq.heappush(self._resend_heap, (at, self._seq, addr, t))

    def pop_resends(self, now: float) -> list[tuple[Addr, bytes, T]]:
        """(address, datagram, value) of every pending query due for its one resend."""
        out: list[tuple[Addr, bytes, T]] = []
        heap = self._resend_heap
        while heap and heap[0][0] <= now:
            _, _, addr, t = heapq.heappop(heap)
            datagram = self._resend.pop((addr, t), None)
            entry = self._pending.get((addr, t))
            if datagram is not None and entry is not None:
                out.append((addr, datagram, entry[2]))
        return out

    def next_resend(self) -> float | None:
        """When `pop_resends` next has something to return, or None."""
        heap = self._resend_heap
        while heap and (heap[0][2], heap[0][3]) not in self._resend:
            heapq.heappop(heap)  # answered or expired meanwhile
        return heap[0][0] if heap else None

    def pop_expired(self, now: float) -> list[tuple[Addr, T]]:
        """Remove and return every transaction whose deadline is at or before `now`."""
        out: list[tuple[Addr, T]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, addr, t = heapq.heappop(heap)
            entry = self._pending.get((addr, t))
            if entry is not None and entry[0] == seq:
                del self._pending[(addr, t)]
                self._resend.pop((addr, t), None)
                out.append((addr, entry[2]))
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline still pending, or None."""
        heap = self._heap
        while heap:
            _, seq, addr, t = heap[0]
            entry = self._pending.get((addr, t))
            if entry is not None and entry[0] == seq:
                return heap[0][0]
            heapq.heappop(heap)  # answered already: drop the stale heap entry
        return None

    def _new_tid(self, addr: Addr) -> bytes:
        for _ in range(8):
            t = self._rng.randbytes(2)
            if (addr, t) not in self._pending:
                return t
        while True:  # 2**32 ids per address: ends at once with overwhelming probability
            t = self._rng.randbytes(4)
            if (addr, t) not in self._pending:
                return t
