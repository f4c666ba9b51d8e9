"""BEP 33 DHT scrapes: the 256-byte bloom filters of seeds and peers, and the estimate.

Theory of operation
-------------------
A storing node answers ``get_peers`` with ``scrape=1`` by adding two filters, ``BFsd``
(seeds) and ``BFpe`` (peers), built from the IPs it stores for the info-hash. Each IP
(4 or 16 raw bytes, never a port) sets two bits: SHA-1 of the IP, bytes 0-1 and 2-3
as little-endian 16-bit indexes, each mod 2048 (the BEP's pseudocode, k = 2,
m = 2048). Filters of several nodes combine by OR, which is why a scrape can
count a swarm whose announces are scattered over many nodes without counting an
IP twice. The size of the set is estimated from the zero bits:

    c = min(m - 1, zero bits);  n = log(c / m) / (k * log(1 - 1 / m))

which breaks down near 8,000 entries (the filter is nearly full).

A requester combines the filters of the closest nodes that answered; a node that
answers with ``values`` but no filters (an older client) contributes those IPs to
the peer filter unless the seed filters already hold them (BEP 33 "Handling legacy
responses"). `ScrapeTally` does that bookkeeping for the engine.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Final

from .compact import ip_packed
from .events import ScrapeEstimate

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["BLOOM_BYTES", "Bloom", "ScrapeTally", "combine_estimates", "estimate"]

BLOOM_BYTES: Final = 256
_M: Final = BLOOM_BYTES * 8
_K: Final = 2


class Bloom:
    """One BEP 33 filter (mutable; `bytes(bloom)` is its wire form)."""

    __slots__ = ("bits",)

    def __init__(self, data: bytes = bytes(BLOOM_BYTES)) -> None:
        if len(data) != BLOOM_BYTES:
            raise ValueError("a BEP 33 bloom filter is 256 bytes")
        self.bits = bytearray(data)

    def __bytes__(self) -> bytes:
        return bytes(self.bits)

    def insert(self, ip: str) -> None:
        """Insert an IPv4 or IPv6 address (text form)."""
        self.insert_packed(ip_packed(ip))

    def insert_packed(self, packed: bytes) -> None:
        digest = hashlib.sha1(packed).digest()
        for index in (digest[0] | digest[1] << 8, digest[2] | digest[3] << 8):
            index %= _M
            self.bits[index // 8] |= 1 << (index % 8)

    def __contains__(self, ip: str) -> bool:
        digest = hashlib.sha1(ip_packed(ip)).digest()
        for index in (digest[0] | digest[1] << 8, digest[2] | digest[3] << 8):
            index %= _M
            if not self.bits[index // 8] & (1 << (index % 8)):
                return False
        return True

    def union(self, other: bytes | Bloom) -> None:
        """OR `other` into this filter (the union of both sets)."""
        data = bytes(other)
        if len(data) != BLOOM_BYTES:
            raise ValueError("a BEP 33 bloom filter is 256 bytes")
        merged = int.from_bytes(self.bits, "big") | int.from_bytes(data, "big")
        self.bits[:] = merged.to_bytes(BLOOM_BYTES, "big")

    def estimate(self) -> float:
        return estimate(bytes(self.bits))

    @classmethod
    def of(cls, ips: Iterable[str]) -> Bloom:
        bloom = cls()
        for ip in ips:
            bloom.insert(ip)
        return bloom


def estimate(data: bytes) -> float:
    """The BEP 33 estimate of how many distinct IPs filter `data` holds."""
    ones = int.from_bytes(data, "big").bit_count()
    # The BEP clamps to m - 1; a full filter (no zero bit) is clamped to 1 as well,
    # where the formula would take log(0): its estimate is the largest there is.
    zeros = max(1, min(_M - 1, _M - ones))
    return math.log(zeros / _M) / (_K * math.log(1 - 1 / _M))


class ScrapeTally:
    """Combines the scrape answers of several nodes (requester side)."""

    def __init__(self) -> None:
        self.seeds = Bloom()
        self.peers = Bloom()
        self._legacy: set[str] = set()
        self.responders = 0

    def add_filters(self, bf_seeds: bytes | None, bf_peers: bytes | None) -> None:
        """A node answered with filters (either may be missing)."""
        if bf_seeds is not None:
            self.seeds.union(bf_seeds)
        if bf_peers is not None:
            self.peers.union(bf_peers)
        self.responders += 1

    def add_legacy_values(self, ips: Iterable[str]) -> None:
        """A node answered with ``values`` only: count them as peers (see module doc)."""
        self._legacy.update(ips)

    def result(self) -> tuple[float, float]:
        """(estimated seeds, estimated peers)."""
        seeds, peers = self.filters()
        return Bloom(seeds).estimate(), Bloom(peers).estimate()

    def filters(self) -> tuple[bytes, bytes]:
        """The combined (seed, peer) filters, legacy ``values`` folded into the peers."""
        peers = Bloom(bytes(self.peers))
        for ip in self._legacy:
            if ip not in self.seeds:
                peers.insert(ip)
        return bytes(self.seeds), bytes(peers)


def combine_estimates(estimates: Sequence[ScrapeEstimate]) -> ScrapeEstimate:
    """One estimate from the scrapes of several address families (BEP 32 dual stack).

    The filters are ORed, as the filters of several nodes are, so an IP that two
    lookups both saw counts once; the responders add up. A scrape without filters
    (nobody answered) contributes nothing.
    """
    seeds, peers = Bloom(), Bloom()
    for est in estimates:
        if est.bf_seeds:
            seeds.union(est.bf_seeds)
        if est.bf_peers:
            peers.union(est.bf_peers)
    responders = sum(e.responders for e in estimates)
    return ScrapeEstimate(
        seeds.estimate(), peers.estimate(), responders, bytes(seeds), bytes(peers)
    )
