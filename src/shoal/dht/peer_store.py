"""Peers announced to us (BEP 5 announce_peer), per info-hash, bounded and expiring.

Theory of operation
-------------------
Anyone can announce, so everything here is capped: at most `max_info_hashes`
swarms (least recently *announced* swarm evicted first), `max_peers` per swarm
(oldest announcement evicted first) and `max_total_peers` overall. Both levels
are insertion-ordered dicts kept in "last announced" order, so the oldest entry
is always at the front and expiry pops from the front until it meets a live
entry. BEP 5 says nothing about lifetimes; clients re-announce every 15–30
minutes, so entries live `ttl` (30 min) after their last announce.

Peers are keyed by (IP, port), as BEP 5 stores "the IP address of the querying
node and the supplied port number". The IP always comes from the UDP source
address (announce tokens prove it), so filling a swarm needs many real IPs.

BEP 33: an announce may say ``seed=1``. Seeds are remembered in a per-swarm set
beside the peers (pruned against the live peers whenever it is read or grows past
them), and `scrape_ips` returns the seed and non-seed IPs for the bloom filters.
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


@dataclass(frozen=True, slots=True)
class PeerStoreStats:
    info_hashes: int
    peers: int
    evicted_swarms: int
    evicted_peers: int


class PeerStore:
    """Announced peers; all time comes in as `now`."""

    def __init__(self, config: PeerStoreConfig | None = None) -> None:
        self.config = config if config is not None else PeerStoreConfig()
        # info_hash -> {peer: last announce time}; both in last-announced order.
        self._swarms: dict[bytes, dict[Addr, float]] = {}
        # info_hash -> peers whose last announce said seed=1 (may hold departed peers).
        self._seeds: dict[bytes, set[Addr]] = {}
        self._total = 0
        self._evicted_swarms = 0
        self._evicted_peers = 0

    def __len__(self) -> int:
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        return self._total

    def add(self, info_hash: bytes, peer: Addr, now: float, seed: bool = False) -> None:
        """Record (or refresh) `peer` for `info_hash`, evicting the oldest on overflow.

        `seed` is the announce's BEP 33 flag; the latest announce decides.
        """
        self._mark_seed(info_hash, peer, seed)
        cfg = self.config
        swarm = self._swarms.pop(info_hash, None)
        if swarm is None:
            if len(self._swarms) >= cfg.max_info_hashes:
                self._evict_swarm()
            swarm = {}
        self._swarms[info_hash] = swarm  # (re)insert at the back: most recently announced
        if swarm.pop(peer, None) is None:
            self._total += 1
            if len(swarm) >= cfg.max_peers:
                self._evict_peer(swarm)
        swarm[peer] = now
        while self._total > cfg.max_total_peers:
            oldest = next(iter(self._swarms))
            if oldest == info_hash and len(self._swarms) == 1:
                self._evict_peer(swarm)
            else:
                self._evict_swarm()

    def get(
        self, info_hash: bytes, now: float, rng: random.Random, count: int = MAX_VALUES
    ) -> list[Addr]:
        """Up to `count` live peers for `info_hash`, a random sample when there are more."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return []
        self._expire_swarm(info_hash, swarm, now)
        peers = list(swarm)
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

    def statistics(self) -> PeerStoreStats:
        return PeerStoreStats(
            len(self._swarms), self._total, self._evicted_swarms, self._evicted_peers
        )

    def _expire_swarm(self, info_hash: bytes, swarm: dict[Addr, float], now: float) -> None:
        cutoff = now - self.config.ttl
        while swarm:
            peer, at = next(iter(swarm.items()))
            if at > cutoff:
                break
            del swarm[peer]
            self._total -= 1
        if not swarm:
            del self._swarms[info_hash]
            self._seeds.pop(info_hash, None)

    def _evict_swarm(self) -> None:
        info_hash = next(iter(self._swarms))
        swarm = self._swarms.pop(info_hash)
        self._seeds.pop(info_hash, None)
        self._total -= len(swarm)
        self._evicted_swarms += 1
        self._evicted_peers += len(swarm)

    def _evict_peer(self, swarm: dict[Addr, float]) -> None:
        del swarm[next(iter(swarm))]
        self._total -= 1
        self._evicted_peers += 1
