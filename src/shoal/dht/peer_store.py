"""Peers announced to us (BEP 5 announce_peer), per info-hash, bounded and expiring.

Theory of operation
-------------------
Anyone can announce, so everything here is capped: at most `max_info_hashes`
swarms, `max_peers` per swarm (oldest announcement evicted first) and
`max_total_peers` overall. BEP 5 says nothing about lifetimes; clients re-announce
every 15–30 minutes, so entries live `ttl` (30 min) after their last announce.

Peers are keyed by (IP, port), as BEP 5 stores "the IP address of the querying
node and the supplied port number". The IP always comes from the UDP source
address (announce tokens prove it), so each announcer is a real IP we can count.

Resisting a flush. Valid-token announces for thousands of new info-hashes must not
push the real swarms out:

* **Per-source-IP caps.** One IP may appear in at most `max_swarms_per_ip` swarms
  and with at most `max_ports_per_ip` ports in one swarm (NAT'd neighbours share an
  IP); announces past that are refused, so one host cannot flood alone.
* **Strength-ordered eviction.** A swarm's *strength* is its number of distinct
  announcing IPs. When the swarm table is full, a new swarm (strength 1) evicts the
  least recently announced swarm of the lowest strength, and only if that strength
  is 1: swarms that many hosts announce are never flushed by single-announcer ones.
  The total-peers cap likewise trims the weakest swarm first.

Swarms are kept in buckets by strength, each in last-announced order, so finding
the victim costs O(1) in the common case.

BEP 33: an announce may say ``seed=1``. Seeds are remembered in a per-swarm set
beside the peers (pruned against the live peers whenever it is read or grows past
them), `scrape_ips` returns the seed and non-seed IPs for the bloom filters, and
`get(..., noseed=True)` leaves seeds out.
BEP 51: `sample` draws random stored info-hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import random

    from .compact import Addr

__all__ = ["MAX_VALUES", "PeerStore", "PeerStoreConfig", "PeerStoreStats"]

#: Most peers returned by one `get` (a reply must fit a datagram; see node.py).
MAX_VALUES: Final = 50


@dataclass(frozen=True, slots=True)
class PeerStoreConfig:
    max_info_hashes: int = 2000
    max_peers: int = 500
    #: Bounds memory even when many swarms are near `max_peers` (2000 x 500 would be 1M).
    max_total_peers: int = 100_000
    ttl: float = 30 * 60.0
    #: Swarms one source IP may be stored in.
    max_swarms_per_ip: int = 50
    #: Ports one source IP may have in one swarm.
    max_ports_per_ip: int = 8


@dataclass(frozen=True, slots=True)
class PeerStoreStats:
    info_hashes: int
    peers: int
    evicted_swarms: int
    evicted_peers: int
    #: Announces refused by a per-IP cap or because only stronger swarms were stored.
    refused: int = 0


class PeerStore:
    """Announced peers; all time comes in as `now`."""

    def __init__(self, config: PeerStoreConfig | None = None) -> None:
        self.config = config if config is not None else PeerStoreConfig()
        # info_hash -> {peer: last announce time}, in last-announced order.
        self._swarms: dict[bytes, dict[Addr, float]] = {}
        # info_hash -> {ip: ports of that ip in the swarm}; len() is the strength.
        self._ips: dict[bytes, dict[str, int]] = {}
        # strength -> {info_hash: None}, each in last-announced order.
        self._by_strength: dict[int, dict[bytes, None]] = {}
        self._ip_swarms: dict[str, int] = {}  # ip -> swarms it is stored in
        # info_hash -> peers whose last announce said seed=1 (may hold departed peers).
        self._seeds: dict[bytes, set[Addr]] = {}
        self._total = 0
        self._evicted_swarms = 0
        self._evicted_peers = 0
        self._refused = 0

    def __len__(self) -> int:
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        return self._total

    def add(self, info_hash: bytes, peer: Addr, now: float, seed: bool = False) -> bool:
        """Record (or refresh) `peer` for `info_hash`; False if a cap refused it.

        `seed` is the announce's BEP 33 flag; the latest announce decides.
        """
        cfg = self.config
        ip = peer[0]
        swarm = self._swarms.get(info_hash)
        ips = self._ips.get(info_hash, {})
        if swarm is None or peer not in swarm:
            if ip not in ips and self._ip_swarms.get(ip, 0) >= cfg.max_swarms_per_ip:
                return self._refuse()
            if ips.get(ip, 0) >= cfg.max_ports_per_ip:
                return self._refuse()
        if swarm is None:
            if len(self._swarms) >= cfg.max_info_hashes and not self._evict_weak_swarm():
                return self._refuse()
            swarm = self._swarms[info_hash] = {}
            ips = self._ips[info_hash] = {}  # strength 0: in no bucket until the peer lands
        moved = False
        if swarm.pop(peer, None) is None:
            if len(swarm) >= cfg.max_peers:
                self._evict_peer(info_hash, next(iter(swarm)), drop_empty=False)
            self._total += 1
            moved = self._count_ip(info_hash, ip, +1)
        swarm[peer] = now
        self._mark_seed(info_hash, peer, seed)
        if not moved:
            self._touch(info_hash)
        while self._total > cfg.max_total_peers:
            victim = self._weakest(exclude=info_hash) or info_hash
            self._evict_peer(victim, next(iter(self._swarms[victim])))
        return True

    def get(
        self,
        info_hash: bytes,
        now: float,
        rng: random.Random,
        count: int = MAX_VALUES,
        *,
        noseed: bool = False,
    ) -> list[Addr]:
        """Up to `count` live peers for `info_hash`, a random sample when there are more.

        `noseed` (BEP 33, a get_peers from a seed): leave out peers whose latest
        announce said ``seed=1``; a seed has nothing to gain from other seeds.
        """
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return []
        self._expire_swarm(info_hash, swarm, now)
        seeds = self._seeds.get(info_hash) if noseed else None
        peers = [p for p in swarm if p not in seeds] if seeds else list(swarm)
        if len(peers) <= count:
            return peers
        return rng.sample(peers, max(0, count))

    def _mark_seed(self, info_hash: bytes, peer: Addr, seed: bool) -> None:
        seeds = self._seeds.get(info_hash)
        if seed:
            if seeds is None:
                seeds = self._seeds[info_hash] = set()
            seeds.add(peer)
            swarm = self._swarms.get(info_hash)
            if len(seeds) > 2 * len(swarm or ()) + 16:
                seeds &= (swarm or {}).keys()  # drop departed peers; keeps the set bounded
        elif seeds is not None:
            seeds.discard(peer)

    def scrape_ips(self, info_hash: bytes, now: float) -> tuple[set[str], set[str]] | None:
        """(seed IPs, non-seed IPs) of the live peers, or None for an unknown swarm."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return None
        self._expire_swarm(info_hash, swarm, now)
        if info_hash not in self._swarms:
            return None
        seeds = self._seeds.get(info_hash, set())
        seeds &= swarm.keys()
        seed_ips = {ip for ip, _ in seeds}
        return seed_ips, {ip for ip, _ in swarm if ip not in seed_ips}

    def sample(self, rng: random.Random, count: int) -> list[bytes]:
        """Up to `count` stored info-hashes, drawn at random (BEP 51)."""
        hashes = list(self._swarms)
        return hashes if len(hashes) <= count else rng.sample(hashes, count)

    def expire(self, now: float) -> None:
        """Drop every entry older than the ttl (call periodically; `get` also expires)."""
        for info_hash, swarm in list(self._swarms.items()):
            self._expire_swarm(info_hash, swarm, now)

    def strength(self, info_hash: bytes) -> int:
        """Distinct IPs announcing `info_hash` (0 if not stored)."""
        return len(self._ips.get(info_hash, ()))

    def statistics(self) -> PeerStoreStats:
        return PeerStoreStats(
            len(self._swarms), self._total, self._evicted_swarms, self._evicted_peers, self._refused
        )

    # ---- bookkeeping -----------------------------------------------------------------

    def _refuse(self) -> bool:
        self._refused += 1
        return False

    def _bucket(self, strength: int) -> dict[bytes, None]:
        return self._by_strength.setdefault(strength, {})

    def _touch(self, info_hash: bytes) -> None:
        """Move `info_hash` to the back of its strength bucket (most recently announced)."""
        bucket = self._bucket(self.strength(info_hash))
        bucket.pop(info_hash, None)
        bucket[info_hash] = None

    def _count_ip(self, info_hash: bytes, ip: str, delta: int) -> bool:
        """Add `delta` ports of `ip` to the swarm; True if it moved to another bucket."""
        ips = self._ips[info_hash]
        before = len(ips)
        ports = ips.get(ip, 0) + delta
        if ports > 0:
            ips[ip] = ports
        else:
            ips.pop(ip, None)
        if ports == 1 and delta > 0:
            self._ip_swarms[ip] = self._ip_swarms.get(ip, 0) + 1
        elif ports == 0:
            left = self._ip_swarms.get(ip, 0) - 1
            if left > 0:
                self._ip_swarms[ip] = left
            else:
                self._ip_swarms.pop(ip, None)
        if len(ips) == before:
            return False
        if before:
            old = self._by_strength[before]
            del old[info_hash]
            if not old:
                del self._by_strength[before]
        if ips:
            self._bucket(len(ips))[info_hash] = None
        return True

    def _weakest(self, exclude: bytes | None = None) -> bytes | None:
        for strength in sorted(self._by_strength):
            for info_hash in self._by_strength[strength]:
                if info_hash != exclude:
                    return info_hash
        return None

    def _evict_weak_swarm(self) -> bool:
        """Evict a swarm to make room for a new one, if one is no stronger than it."""
        victim = self._weakest()
        if victim is None or self.strength(victim) > 1:
            return False
        self._evicted_swarms += 1
        self._evicted_peers += len(self._swarms[victim])
        self._drop_swarm(victim)
        return True

    def _drop_swarm(self, info_hash: bytes) -> None:
        swarm = self._swarms.pop(info_hash)
        self._total -= len(swarm)
        for ip in list(self._ips[info_hash]):
            self._count_ip(info_hash, ip, -self._ips[info_hash][ip])
        del self._ips[info_hash]  # strength 0 now: in no bucket
        self._seeds.pop(info_hash, None)

    def _remove_peer(self, info_hash: bytes, peer: Addr, *, drop_empty: bool = True) -> None:
        del self._swarms[info_hash][peer]
        self._total -= 1
        self._count_ip(info_hash, peer[0], -1)
        if drop_empty and not self._swarms[info_hash]:
            self._drop_swarm(info_hash)

    def _evict_peer(self, info_hash: bytes, peer: Addr, *, drop_empty: bool = True) -> None:
        self._evicted_peers += 1
        self._remove_peer(info_hash, peer, drop_empty=drop_empty)

    def _expire_swarm(self, info_hash: bytes, swarm: dict[Addr, float], now: float) -> None:
        cutoff = now - self.config.ttl
        while info_hash in self._swarms and swarm:
            peer, at = next(iter(swarm.items()))
            if at > cutoff:
                break
            self._remove_peer(info_hash, peer)
