"""PeerPool: the peer addresses a torrent knows, and which one to dial next.

Theory of operation
-------------------
Addresses arrive from several sources (DHT, PEX, the magnet's ``x.pe``, the caller,
inbound connections). The pool keeps one `_Entry` per address with the sources that
named it, its failure count and the earliest time it may be dialled again. Each
failed attempt doubles that back-off (30 s, 60 s, ... capped at 30 min) and after
`max_failures` the address is forgotten until a source names it again.
`pop_candidates(now, n)` hands out at most ``n`` addresses that are neither
connected, connecting, banned nor backing off, and never more than `connect_rate`
per second on average (a token bucket), so a flood of PEX contacts cannot turn into
a flood of SYNs. The caller reports each outcome with `connected`/`failed`/`closed`.

Hostile sources (see docs/security.md):

* **Inbound peers are not dial targets.** `mark_busy` for an inbound connection
  records its (ephemeral) source address only while it is connected; it never enters
  the dial pool and is forgotten on `closed`. The peer's BEP 10 ``p`` listen port is
  dialable (`PeerSource.LISTEN`), as an unverified address.
* **Trusted sources first.** DHT, user and magnet addresses, and any address that has
  completed a handshake, are dialled before unverified PEX/listen ones, and when the
  pool is full (`max_known`, for every source) a trusted address evicts an idle
  unverified one. So handshake-then-close storms and PEX floods cannot hide the swarm
  the DHT returned.
* **Bans by host, fair to NAT.** `ban(addr)` bans one address; `host_ban_after`
  banned ports of one IP ban the whole host (as libtorrent's smart ban does), so a
  corrupt peer cannot dodge its ban by reconnecting from new source ports, while one
  bad client behind a NAT does not lock out its neighbours at once. At most
  `max_per_ip` connections per IP are busy at a time.
* **PEX names no private networks to strangers.** A PEX address that is loopback,
  private or link-local is dropped unless the peer that named it is on such a network
  too (`pex_address_allowed`, libtorrent's rule), so strangers cannot make us probe
  our LAN.

Pure: time is the ``now`` argument, there is no I/O.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Final, final

__all__ = ["PeerPool", "PeerPoolStats", "PeerSource", "pex_address_allowed"]

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
    #: An inbound connection's source address (ephemeral: never dialled).
    INCOMING = enum.auto()
    #: An inbound peer's BEP 10 ``p`` listen port (dialable, unverified).
    LISTEN = enum.auto()


#: Sources we trust to name real peers: dialled first, never evicted for PEX.
TRUSTED: Final = PeerSource.DHT | PeerSource.USER | PeerSource.MAGNET


def _local_kind(ip: str) -> str | None:
    """'loopback' / 'private' / 'link-local' for non-public IPs, else None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "invalid"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_private:
        return "private"
    return None


def pex_address_allowed(named: str, by: str) -> bool:
    """May we dial IP `named` that the peer at IP `by` sent us in PEX?

    Public addresses always; loopback, private and link-local ones only when `by` is
    itself on such a network (a LAN peer may name LAN peers). Multicast, unspecified
    and malformed addresses never.
    """
    try:
        addr = ipaddress.ip_address(named)
    except ValueError:
        return False
    if addr.is_multicast or addr.is_unspecified:
        return False
    kind = _local_kind(named)
    return kind is None or _local_kind(by) is not None


@dataclass(slots=True)
class _Entry:
    sources: PeerSource
    failures: int = 0
    retry_at: float = 0.0
    busy: bool = False  # connecting or connected
    verified: bool = False  # a handshake with it succeeded

    @property
    def dialable(self) -> bool:
        return bool(self.sources & ~PeerSource.INCOMING)

    @property
    def tier(self) -> int:
        return 0 if self.verified or self.sources & TRUSTED else 1


@final
@dataclass(frozen=True, slots=True)
class PeerPoolStats:
    known: int
    busy: int
    banned: int
    #: Addresses refused because the pool was full of better ones.
    refused: int = 0


@final
@dataclass
class PeerPool:
    """Known addresses with back-off, bans and a connect-rate limit.

    Args:
        connect_rate: new outgoing attempts per second (token bucket refill rate).
        burst: bucket size: how many attempts may start at once after a quiet spell.
        max_failures: consecutive failures after which an address is dropped.
        max_known: cap on remembered addresses, inbound ones included; beyond it a
            trusted address evicts an idle unverified one and others are ignored, so a
            hostile PEX source or a connect storm cannot grow our memory.
        max_per_ip: connections (in or out) busy at once per IP.
        host_ban_after: banned ports of one IP after which the whole host is banned.
        max_banned: banned addresses/hosts remembered (oldest forgotten first).
    """

    connect_rate: float = 10.0
    burst: int = 20
    max_failures: int = 5
    max_known: int = 2000
    max_per_ip: int = 8
    host_ban_after: int = 3
    max_banned: int = 10_000
    _entries: dict[Addr, _Entry] = field(default_factory=dict)
    _banned: dict[str | Addr, None] = field(default_factory=dict)  # insertion-ordered
    _bad_ports: dict[str, int] = field(default_factory=dict)
    _busy_per_ip: dict[str, int] = field(default_factory=dict)
    _tokens: float = -1.0
    _last_refill: float | None = None
    _refused: int = 0

    def add(self, addr: Addr, source: PeerSource, *, named_by: str | None = None) -> bool:
        """Remember `addr`; returns True if it is new.

        Banned or invalid addresses are ignored, and so are PEX addresses on a private
        network when `named_by` (the IP of the peer that sent them) is public.
        """
        if self.is_banned(addr) or not 0 < addr[1] <= 0xFFFF:
            return False
        if named_by is not None and not pex_address_allowed(addr[0], named_by):
            return False
        entry = self._entries.get(addr)
        if entry is not None:
            entry.sources |= source
            return False
        new = _Entry(source)
        if not self._make_room(new.tier):
            return False
        self._entries[addr] = new
        return True

    def _make_room(self, tier: int) -> bool:
        if len(self._entries) < self.max_known:
            return True
        if tier == 0:  # evict the oldest idle unverified address
            for addr, entry in self._entries.items():
                if entry.tier == 1 and not entry.busy:
                    del self._entries[addr]
                    return True
        self._refused += 1
        return False

    def ban(self, addr: Addr, *, whole_host: bool = False) -> None:
        """Never dial or accept `addr` again; `host_ban_after` bans ban its whole host."""
        ip = addr[0]
        if not self.is_banned(addr):
            self._bad_ports[ip] = self._bad_ports.get(ip, 0) + 1
        if whole_host or self._bad_ports.get(ip, 0) >= self.host_ban_after:
            self._remember_ban(ip)
            for known in [a for a in self._entries if a[0] == ip and not self._entries[a].busy]:
                del self._entries[known]
        else:
            self._remember_ban(addr)
        entry = self._entries.pop(addr, None)
        if entry is not None and entry.busy:
            self._release_ip(ip)

    def _remember_ban(self, key: str | Addr) -> None:
        self._banned[key] = None
        while len(self._banned) > self.max_banned:
            del self._banned[next(iter(self._banned))]
        if len(self._bad_ports) > self.max_banned:
            del self._bad_ports[next(iter(self._bad_ports))]

    def is_banned(self, addr: Addr) -> bool:
        return addr in self._banned or addr[0] in self._banned

    def _refill(self, now: float) -> None:
        if self._last_refill is None or self._tokens < 0:
            self._tokens = float(self.burst)
        else:
            elapsed = max(0.0, now - self._last_refill)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.connect_rate)
        self._last_refill = now

    def _ip_full(self, ip: str) -> bool:
        return self._busy_per_ip.get(ip, 0) >= self.max_per_ip

    def _take_ip(self, ip: str) -> None:
        self._busy_per_ip[ip] = self._busy_per_ip.get(ip, 0) + 1

    def _release_ip(self, ip: str) -> None:
        left = self._busy_per_ip.get(ip, 0) - 1
        if left > 0:
            self._busy_per_ip[ip] = left
        else:
            self._busy_per_ip.pop(ip, None)

    def pop_candidates(self, now: float, n: int) -> list[Addr]:
        """Up to `n` addresses to dial now; each is marked busy until reported back."""
        self._refill(now)
        out: list[Addr] = []
        limit = min(n, int(self._tokens))
        if limit <= 0:
            return out
        # Trusted first, then fewest failures, then the order we learned them (stable).
        ready = [
            (e.tier, e.failures, a)
            for a, e in self._entries.items()
            if e.dialable and not e.busy and e.retry_at <= now
        ]
        ready.sort(key=lambda tfa: (tfa[0], tfa[1]))
        for _, _, addr in ready:
            if len(out) >= limit:
                break
            if self._ip_full(addr[0]):
                continue
            self._entries[addr].busy = True
            self._take_ip(addr[0])
            out.append(addr)
        self._tokens -= len(out)
        return out

    def retry_now(self, now: float) -> None:
        """End every back-off (failure counts stay): the user resumed a paused torrent,
        so the connections that pause closed, and dials that failed meanwhile, are
        worth trying at once, not after `BASE_BACKOFF`."""
        for entry in self._entries.values():
            if entry.dialable and not entry.busy:
                entry.retry_at = min(entry.retry_at, now)

    def ready_count(self, now: float) -> int:
        """Dialable addresses that could be dialled now if a slot were free."""
        return sum(
            1
            for a, e in self._entries.items()
            if e.dialable and not e.busy and e.retry_at <= now and not self._ip_full(a[0])
        )

    def next_ready_time(self, now: float) -> float | None:
        """When `pop_candidates` could next return something (None: nothing to dial)."""
        times = [e.retry_at for e in self._entries.values() if e.dialable and not e.busy]
        if not times:
            return None
        at = max(now, min(times))
        if self._tokens < 1 and self.connect_rate > 0:
            at = max(at, now + (1 - self._tokens) / self.connect_rate)
        return at

    def mark_busy(self, addr: Addr, source: PeerSource) -> bool:
        """A connection from or to `addr` we did not dial: False if it must be refused.

        With `PeerSource.INCOMING` the address is tracked only while connected (an
        ephemeral port is no dial target); `PeerSource.LISTEN` (BEP 10 ``p``) makes it
        dialable later.
        """
        if self.is_banned(addr) or self._ip_full(addr[0]):
            return False
        entry = self._entries.get(addr)
        if entry is None:
            entry = _Entry(source)
            if not self._make_room(entry.tier):
                return False
            self._entries[addr] = entry
        elif entry.busy:
            return False
        entry.busy = True
        entry.sources |= source
        self._take_ip(addr[0])
        return True

    def connected(self, addr: Addr) -> None:
        """A dial or handshake with `addr` succeeded: clear its failures, trust it."""
        entry = self._entries.get(addr)
        if entry is not None:
            entry.failures = 0
            entry.verified = True

    def failed(self, addr: Addr, now: float) -> None:
        """A dial to `addr` failed: back off exponentially, forget it after max_failures."""
        entry = self._settle(addr)
        if entry is None:
            return
        entry.failures += 1
        if entry.failures >= self.max_failures or not entry.dialable:
            del self._entries[addr]
            return
        entry.retry_at = now + min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (entry.failures - 1))

    def closed(self, addr: Addr, now: float) -> None:
        """A connection ended: allow a redial after the base back-off (inbound: forget)."""
        entry = self._settle(addr)
        if entry is None:
            return
        if not entry.dialable:
            del self._entries[addr]
            return
        entry.retry_at = now + BASE_BACKOFF

    def _settle(self, addr: Addr) -> _Entry | None:
        """The dial or connection to `addr` is over: it no longer holds its IP's slot."""
        entry = self._entries.get(addr)
        if entry is not None:
            if entry.busy:
                self._release_ip(addr[0])
            entry.busy = False
        return entry

    def known(self) -> list[Addr]:
        """Every dialable address (PEX 'added' lists are built from connected ones instead)."""
        return [a for a, e in self._entries.items() if e.dialable]

    def statistics(self) -> PeerPoolStats:
        busy = sum(1 for e in self._entries.values() if e.busy)
        return PeerPoolStats(
            known=len(self.known()), busy=busy, banned=len(self._banned), refused=self._refused
        )
