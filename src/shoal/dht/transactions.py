"""Outstanding KRPC queries: ``(addr, t)`` → caller data, with deadlines.

Why a table of its own: the transaction id is the only thing tying a UDP reply to
our query, so it is allocated from the injected rng (an off-path spoofer must
guess it) and a reply is matched on the *address* as well as the id. BEP 5 says
"typically 2 characters are enough"; ids are unique per address, and after a few
collisions we fall back to 4 bytes rather than loop.

Deadlines sit in a heap with lazy deletion, so ``next_deadline`` is O(1) amortised
and answering a reply does not have to search the heap.
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

    def get(self, addr: Addr, t: bytes) -> T | None:
        """The value for a pending `(addr, t)` without removing it; None if unknown."""
        entry = self._pending.get((addr, t))
        return None if entry is None else entry[2]

    def pop(self, addr: Addr, t: bytes) -> T | None:
        """The value for a reply from `addr` with id `t`, removing it; None if unknown."""
        entry = self._pending.pop((addr, t), None)
        return None if entry is None else entry[2]

    def pop_expired(self, now: float) -> list[tuple[Addr, T]]:
        """Remove and return every transaction whose deadline is at or before `now`."""
        out: list[tuple[Addr, T]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, addr, t = heapq.heappop(heap)
            entry = self._pending.get((addr, t))
            if entry is not None and entry[0] == seq:
                del self._pending[(addr, t)]
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
