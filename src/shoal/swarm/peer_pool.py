"""PeerPool: the peer addresses a torrent knows, and which one to dial next.

Theory of operation
-------------------
Addresses arrive from several sources (DHT, PEX, the magnet's ``x.pe``, the caller,
inbound connections). The pool keeps one `_Entry` per address with the sources that
named it, its failure count and the earliest time it may be dialled again. Each
failed attempt doubles that back-off (30 s, 60 s, ... capped at 30 min) and after
`max_failures` the address is forgotten until a source names it again. A ban (bad
pieces, protocol abuse) is permanent for the pool's lifetime and wins over every
source. `pop_candidates(now, n)` hands out at most ``n`` addresses that are neither
connected, connecting, banned nor backing off, and never more than `connect_rate`
per second on average (a token bucket), so a flood of PEX contacts cannot turn into
a flood of SYNs. The caller reports each outcome with `connected`/`failed`/`closed`.

Pure: time is the ``now`` argument, there is no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, final

__all__ = ["PeerPool", "PeerPoolStats", "PeerSource"]

Addr = tuple[str, int]

#: First back-off after a failed dial; doubled per consecutive failure.
BASE_BACKOFF: Final = 30.0
MAX_BACKOFF: Final = 1800.0


class PeerSource(enum.Flag):
    """Where we heard of an address (kept as flags: one address, several sources)."""

    DHT = enum.auto()
    PEX = enum.auto()
    MAGNET = enum.auto()
    USER = enum.auto()
    INCOMING = enum.auto()


@dataclass(slots=True)
class _Entry:
    sources: PeerSource
    failures: int = 0
    retry_at: float = 0.0
    busy: bool = False  # connecting or connected


@final
@dataclass(frozen=True, slots=True)
class PeerPoolStats:
    known: int
    busy: int
    banned: int


@final
@dataclass
class PeerPool:
    """Known addresses with back-off, bans and a connect-rate limit.

    Args:
        connect_rate: new outgoing attempts per second (token bucket refill rate).
        burst: bucket size: how many attempts may start at once after a quiet spell.
        max_failures: consecutive failures after which an address is dropped.
        max_known: cap on remembered addresses; new ones beyond it are ignored,
            so a hostile PEX source cannot grow our memory without bound.
    """

    connect_rate: float = 10.0
    burst: int = 20
    max_failures: int = 5
    max_known: int = 2000
    _entries: dict[Addr, _Entry] = field(default_factory=dict)
    _banned: set[str | Addr] = field(default_factory=set)
    _tokens: float = -1.0
    _last_refill: float | None = None

    def add(self, addr: Addr, source: PeerSource) -> bool:
        """Remember `addr`; returns True if it is new. Banned or invalid addresses are ignored."""
        if self.is_banned(addr) or not 0 < addr[1] <= 0xFFFF:
            return False
        entry = self._entries.get(addr)
        if entry is not None:
            entry.sources |= source
            return False
        if len(self._entries) >= self.max_known:
            return False
        self._entries[addr] = _Entry(source)
        return True

    def ban(self, addr: Addr, *, whole_host: bool = False) -> None:
        """Never dial or accept `addr` again (or any port of its host)."""
        self._banned.add(addr[0] if whole_host else addr)
        self._entries.pop(addr, None)

    def is_banned(self, addr: Addr) -> bool:
        return addr in self._banned or addr[0] in self._banned

    def _refill(self, now: float) -> None:
        if self._last_refill is None or self._tokens < 0:
            self._tokens = float(self.burst)
        else:
            elapsed = max(0.0, now - self._last_refill)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.connect_rate)
        self._last_refill = now

    def pop_candidates(self, now: float, n: int) -> list[Addr]:
        """Up to `n` addresses to dial now; each is marked busy until reported back."""
        self._refill(now)
        out: list[Addr] = []
        limit = min(n, int(self._tokens))
        if limit <= 0:
            return out
        # Fewest failures first, then the order we learned them (dict order).
        ready = [
            (e.failures, a) for a, e in self._entries.items() if not e.busy and e.retry_at <= now
        ]
        ready.sort(key=lambda fa: fa[0])
        for _, addr in ready[:limit]:
            self._entries[addr].busy = True
            out.append(addr)
        self._tokens -= len(out)
        return out

    def next_ready_time(self, now: float) -> float | None:
        """When `pop_candidates` could next return something (None: nothing to dial)."""
        times = [e.retry_at for e in self._entries.values() if not e.busy]
        if not times:
            return None
        at = max(now, min(times))
        if self._tokens < 1 and self.connect_rate > 0:
            at = max(at, now + (1 - self._tokens) / self.connect_rate)
        return at

    def mark_busy(self, addr: Addr, source: PeerSource) -> bool:
        """An inbound connection from `addr`: returns False if it must be refused."""
        if self.is_banned(addr):
            return False
        entry = self._entries.get(addr)
        if entry is None:
            entry = self._entries[addr] = _Entry(source)
        elif entry.busy:
            return False
        entry.busy = True
        entry.sources |= source
        return True

    def connected(self, addr: Addr) -> None:
        """A dial or handshake with `addr` succeeded: clear its failure history."""
        entry = self._entries.get(addr)
        if entry is not None:
            entry.failures = 0

    def failed(self, addr: Addr, now: float) -> None:
        """A dial to `addr` failed: back off exponentially, forget it after max_failures."""
        entry = self._entries.get(addr)
        if entry is None:
            return
        entry.busy = False
        entry.failures += 1
        if entry.failures >= self.max_failures:
            del self._entries[addr]
            return
        entry.retry_at = now + min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (entry.failures - 1))

    def closed(self, addr: Addr, now: float) -> None:
        """An established connection ended: allow a redial after the base back-off."""
        entry = self._entries.get(addr)
        if entry is not None:
            entry.busy = False
            entry.retry_at = now + BASE_BACKOFF

    def known(self) -> list[Addr]:
        """Every remembered address (PEX 'added' lists are built from connected ones instead)."""
        return list(self._entries)

    def statistics(self) -> PeerPoolStats:
        busy = sum(1 for e in self._entries.values() if e.busy)
        return PeerPoolStats(known=len(self._entries), busy=busy, banned=len(self._banned))
