"""The Kademlia routing table of BEP 5: k-buckets split around our own node ID.

Theory of operation
-------------------
The ID space [0, 2**160) is covered by a *flat list* of buckets. Bucket ``i`` (for every
bucket but the last) holds the IDs that share exactly ``i`` leading bits with our own ID;
the last bucket holds every ID sharing at least ``len(buckets) - 1`` bits, so it is the one
that contains our own ID. BEP 5 only ever splits the bucket containing our own ID, so the
tree that BEP 5 describes is always a "spine" and a list is the natural shape for it: the
bucket of an ID is ``min(common_prefix_len(id, own), len(buckets) - 1)``, found with one
XOR and one ``bit_length`` instead of a tree walk. (libtorrent uses the same layout.)

Node states are computed from timestamps, never stored, so that every query agrees with
``now``:

* GOOD: responded to one of our queries within the last 15 minutes, or has ever
  responded and sent us a query within the last 15 minutes (BEP 5, "Routing Table").
* QUESTIONABLE: 15 minutes without that activity, or never responded at all.
* BAD: ``MAX_FAILURES`` consecutive failed queries; a questionable node is BAD after a
  single failure (BEP 5: a questionable node that does not answer its ping is replaced).

The table never sends anything. A full bucket with a questionable node answers an insert
with ``Pending(ping=...)`` and keeps the newcomer in the bucket's replacement cache; the
caller pings, and either ``heard_from(responded=True)`` keeps the old node or ``failed()``
makes it BAD and the best replacement takes its slot (rust-libp2p's ``Pending`` design).

Layout: the entry record and its state rule, and the bucket record, live in
`dht.buckets`; the /24 (/64) of an address in `dht.subnets`; this module is the table.

Invariants (checked by the stateful test): no bucket above ``k``; every entry lies in the
range of its bucket; the bucket ranges partition the ID space; our own ID is never stored;
one entry per address, and with ``restrict_ips`` one entry per IP and no two entries of a
bucket in the same /24 (IPv6: /64), except for loopback, private and link-local IPs.
"""

from __future__ import annotations

import math
import operator
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, final

from .buckets import (
    BAD_AFTER_FAILURES,
    QUESTIONABLE_AFTER,
    Addr,
    Bucket,
    Entry,
    K,
    NodeState,
)
from .compact import encode_nodes
from .subnets import ip_subnet

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "BAD_AFTER_FAILURES",
    "QUESTIONABLE_AFTER",
    "REFRESH_INTERVAL",
    "Added",
    "Addr",
    "Entry",
    "InsertResult",
    "K",
    "NodeState",
    "Pending",
    "Rejected",
    "RoutingStats",
    "RoutingTable",
    "Updated",
]

# BEP 5: "Buckets that have not been changed in 15 minutes should be refreshed."
REFRESH_INTERVAL: Final = 15 * 60.0
#: A full replacement cache lets a new querier evict its oldest candidate only when
#: that one was last seen this long ago (cheap churn under a flood of new queriers).
REPLACEMENT_FRESH: Final = 60.0
# Smoothing factor of the RTT estimate, the 1/8 of TCP's SRTT (RFC 6298).
RTT_ALPHA: Final = 0.125
_ID_BITS: Final = 160
_ID_SPACE: Final = 1 << _ID_BITS


@dataclass(frozen=True, slots=True)
class Added:
    """The node now has a slot in the table."""

    entry: Entry


@dataclass(frozen=True, slots=True)
class Updated:
    """The node was already in the table; its timestamps were refreshed."""

    entry: Entry


@dataclass(frozen=True, slots=True)
class Pending:
    """The bucket is full: ping `ping`; the newcomer waits in the replacement cache."""

    ping: Entry


@dataclass(frozen=True, slots=True)
class Rejected:
    """The node was not added (own ID, IP restrictions, or a bucket of good nodes)."""

    reason: str


InsertResult: TypeAlias = Added | Updated | Pending | Rejected

# The answer to most queries from new nodes once the table has filled: made once.
_FULL_OF_GOOD_NODES: Final = Rejected("bucket full of good nodes")


@dataclass(frozen=True, slots=True)
class RoutingStats:
    """A snapshot for `statistics()` and the CLI."""

    nodes: int
    good: int
    questionable: int
    bad: int
    verified: int
    buckets: int
    replacements: int


# Sort keys as C-level getters: the full-bucket path of every query from a new node.
_LAST_SEEN: Final = operator.attrgetter("last_seen")
_STALENESS: Final = operator.attrgetter("last_seen", "verified")


def _as_int(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big")


@final
class RoutingTable:
    """BEP 5 routing table; pure: all time comes in as `now`, entropy as `rng`.

    Args:
        own_id: our 20-byte node ID (never stored).
        k: bucket capacity (BEP 5: 8).
        now: creation time; empty buckets count as changed at this time.
        restrict_ips: enforce one entry per IP and one per /24 (/64) per bucket.
        rng: used only to pick refresh targets; defaults to a generator seeded by `own_id`.
    """

    def __init__(
        self,
        own_id: bytes,
        *,
        k: int = K,
        now: float,
        restrict_ips: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if len(own_id) != 20:
            raise ValueError("own_id must be 20 bytes")
        if k < 1:
            raise ValueError("k must be positive")
        self._own = bytes(own_id)
        self._own_int = _as_int(own_id)
        self._k = k
        self._restrict = restrict_ips
        self._rng = rng if rng is not None else random.Random(self._own)
        self._buckets: list[Bucket] = [Bucket(0, _ID_SPACE, now)]
        self._by_addr: dict[Addr, Entry] = {}
        self._by_ip: dict[str, Entry] = {}

    # ------------------------------------------------------------------ queries

    @property
    def own_id(self) -> bytes:
        return self._own

    @property
    def k(self) -> int:
        return self._k

    def __len__(self) -> int:
        return len(self._by_addr)

    def entries(self) -> Iterator[Entry]:
        for bucket in self._buckets:
            yield from bucket.entries.values()

    def get(self, node_id: bytes) -> Entry | None:
        return self._bucket_for(node_id).entries.get(bytes(node_id))

    def get_by_addr(self, addr: Addr) -> Entry | None:
        return self._by_addr.get(addr)

    def rtt(self, addr: Addr) -> float | None:
        """Smoothed RTT of the node at `addr`, for adaptive query timeouts."""
        entry = self._by_addr.get(addr)
        return None if entry is None else entry.rtt

    def bucket_ranges(self) -> list[tuple[int, int]]:
        """The [lo, hi) ID ranges of the buckets, in ID-prefix order (for tests and tools)."""
        return [(b.lo, b.hi) for b in self._buckets]

    def bucket_entries(self) -> list[list[Entry]]:
        return [list(b.entries.values()) for b in self._buckets]

    def replacement_entries(self) -> list[list[Entry]]:
        """Each bucket's replacement cache, oldest first (for tests and tools)."""
        return [list(b.replacements.values()) for b in self._buckets]

    def statistics(self, now: float | None = None) -> RoutingStats:
        """Counts by state; without `now` the newest timestamp in the table stands in for it."""
        entries = list(self.entries())
        if now is None:
            now = max((e.last_seen for e in entries), default=0.0)
        states = [e.state(now) for e in entries]
        return RoutingStats(
            nodes=len(entries),
            good=states.count(NodeState.GOOD),
            questionable=states.count(NodeState.QUESTIONABLE),
            bad=states.count(NodeState.BAD),
            verified=sum(e.verified for e in entries),
            buckets=len(self._buckets),
            replacements=sum(len(b.replacements) for b in self._buckets),
        )

    def closest(self, target: bytes, count: int = K, *, now: float | None = None) -> list[Entry]:
        """Up to `count` non-BAD entries closest to `target` by XOR, nearest first.

        Runs on every incoming get_peers/find_node, so it visits buckets in distance
        order and stops early instead of sorting the whole table. With the flat bucket
        list the order is exact: let c be the bucket `target` falls in. Bucket c's IDs
        share the most bits with `target`; all deeper buckets together form the next
        distance band; then buckets c-1, c-2, ... 0 are each a band of their own.
        Without `now`, only the failure count decides badness.
        """
        if count <= 0:
            return []
        t = _as_int(target)
        c = self._index_of(t)
        first = self._buckets[c]
        if now is not None and now < first.good_until and len(first.entries) >= count:
            # The usual case on a busy node: the target's bucket is full and known to be
            # all GOOD (see `_insert`), so no state checks; the same result as below.
            by_distance = sorted(first.entries.values(), key=lambda e: e._id_int ^ t)
            return by_distance[:count]
        out: list[Entry] = []
        bad = NodeState.BAD
        for band in self._bands(c):
            # Inlined `_is_bad` and `_as_int`: this runs for every get_peers/find_node.
            if now is None:
                usable = [e for e in band if e.failures < BAD_AFTER_FAILURES]
            else:
                usable = [e for e in band if e.state(now) is not bad]
            usable.sort(key=lambda e: e._id_int ^ t)
            if not out and len(usable) >= count:
                return usable[:count]  # the usual case: the target's own bucket is enough
            out.extend(usable[: count - len(out)])
            if len(out) >= count:
                break
        return out

    def closest_compact(self, target: bytes, count: int, now: float) -> bytes | None:
        """``encode_nodes(closest(target, k, now=now))`` for the usual case, else None.

        The usual case on a busy node: the target's bucket is full and all GOOD, so the
        answer is that bucket, nearest first. Its entries' compact forms are kept with
        the bucket, so a find_node/get_peers reply costs a sort of k integers and a
        join. None (an IPv6 table, a bucket not known to be all GOOD): call `closest`.
        """
        t = int.from_bytes(target, "big")
        # `_index_of`, inlined: this runs for most queries a node answers.
        buckets = self._buckets
        common = _ID_BITS - (t ^ self._own_int).bit_length()
        bucket = buckets[min(common, len(buckets) - 1)]
        if now >= bucket.good_until or len(bucket.entries) < count or count <= 0:
            return None
        pairs = bucket.compact
        if pairs is None:
            entries = list(bucket.entries.values())
            if any(":" in e.addr[0] for e in entries):
                return None
            pairs = bucket.compact = [(e._id_int, encode_nodes([e.info])) for e in entries]
        # Distinct ids make distinct distances: the sort never compares the bytes.
        ordered = sorted([(i ^ t, compact) for i, compact in pairs])
        return b"".join([compact for _, compact in ordered[:count]])

    def _bands(self, c: int) -> Iterator[Iterable[Entry]]:
        """The distance bands of `closest`, made lazily: most calls need only the first."""
        buckets = self._buckets
        yield buckets[c].entries.values()
        if c + 1 < len(buckets):
            yield [e for b in buckets[c + 1 :] for e in b.entries.values()]
        for i in range(c - 1, -1, -1):
            yield buckets[i].entries.values()

    def buckets_to_refresh(self, now: float, rng: random.Random | None = None) -> list[bytes]:
        """Random target IDs, one per bucket unchanged for 15 minutes (BEP 5 refresh).

        A bucket's clock restarts when it yields a target, so a refresh lookup that finds
        nobody does not make the bucket ask again on every call.
        """
        rng = rng if rng is not None else self._rng
        targets = []
        for bucket in self._buckets:
            if now - bucket.last_changed >= REFRESH_INTERVAL:
                bucket.last_changed = now
                value = bucket.lo + rng.randrange(bucket.hi - bucket.lo)
                targets.append(value.to_bytes(20, "big"))
        return targets

    # ------------------------------------------------------------------ updates

    def heard_from(
        self,
        node_id: bytes,
        addr: Addr,
        now: float,
        *,
        responded: bool,
        rtt: float | None = None,
        verified: bool = False,
    ) -> InsertResult:
        """Record that `node_id` at `addr` sent us a response (`responded`) or a query.

        Returns what happened; on `Pending`, ping `result.ping` and report the outcome
        with `heard_from(responded=True)` or `failed()`.
        """
        node_id = bytes(node_id)
        if len(node_id) != 20:
            return Rejected("node id is not 20 bytes")
        if node_id == self._own:
            return Rejected("own id")
        bucket = self._bucket_for(node_id)
        entry = bucket.entries.get(node_id)
        if entry is not None and entry.addr != addr:
            if entry.state(now) is not NodeState.BAD:
                # A live node does not change address; this is more likely a spoof.
                return Rejected("node id already known at another address")
            self._remove(bucket, entry)
            entry = None
        if entry is not None:
            self._touch(entry, now, responded=responded, rtt=rtt, verified=verified)
            if responded:
                bucket.last_changed = now
            return Updated(entry)
        new = bucket.replacements.get(node_id)
        if new is None or new.addr != addr:
            if not responded and now < bucket.good_until and len(bucket.entries) >= self._k:
                full = self._querier_to_full_bucket(node_id, addr, now, verified, bucket)
                if full is not None:
                    return full
            new = Entry(node_id, addr, last_seen=now, verified=verified)
            if not responded:  # what `_touch` would do, for the most common newcomer
                new.last_query = now
                return self._insert(new, bucket, now)
        self._touch(new, now, responded=responded, rtt=rtt, verified=verified)
        return self._insert(new, bucket, now)

    def _querier_to_full_bucket(
        self, node_id: bytes, addr: Addr, now: float, verified: bool, bucket: Bucket
    ) -> Rejected | None:
        """Fast path for the commonest insert: a new querier, its bucket full of GOOD nodes.

        BEP 5: "If all nodes in the bucket are known to be good, the new node is simply
        discarded." We still keep it as a replacement, but only build an `Entry` when it
        has a place there: the cache has room, or its oldest candidate is stale. Under
        load most queriers are new and most buckets full, so this skips the entry, the
        state scan and the cache eviction scan (~2/3 of the insert's cost). None: take
        the general path (the bucket can split, or the address conflicts).
        """
        if bucket is self._buckets[-1] and len(self._buckets) < _ID_BITS:
            return None  # the bucket holding our own id splits instead
        if self._ip_conflict(addr, bucket) is not None:
            return None
        reps = bucket.replacements
        if len(reps) >= self._k:
            # Insertion order is freshness order: `_cache_replacement` re-appends.
            oldest = next(iter(reps.values()))
            if now - oldest.last_seen < REPLACEMENT_FRESH:
                return _FULL_OF_GOOD_NODES
            del reps[oldest.node_id]
        new = Entry(node_id, addr, last_seen=now, verified=verified)
        new.last_query = now
        reps[node_id] = new
        return _FULL_OF_GOOD_NODES

    def failed(self, node: bytes | Addr, now: float) -> None:
        """A query to `node` (an ID or an address) timed out or got an error reply.

        When the node turns BAD and its bucket has a replacement waiting, the replacement
        takes the slot at once; otherwise the BAD node stays until someone better comes.
        """
        entry = self._by_addr.get(node) if isinstance(node, tuple) else self.get(node)
        if entry is None:
            self._drop_replacement(node)
            return
        entry.failures += 1
        bucket = self._bucket_for(entry.node_id)
        bucket.good_until = -math.inf
        if entry.state(now) is NodeState.BAD:
            self._remove(bucket, entry)
            if not self._promote(bucket, now):
                self._place(bucket, entry, None)  # nobody better: keep it for now

    def remove(self, node_id: bytes) -> bool:
        """Forget a node entirely (e.g. it sent garbage); returns whether it was present."""
        bucket = self._bucket_for(node_id)
        entry = bucket.entries.get(bytes(node_id))
        if entry is None:
            return False
        self._remove(bucket, entry)
        return True

    def drop_addresses(self, blocked: Callable[[str], bool]) -> int:
        """Forget every node, in buckets and replacement caches, whose IP is `blocked`
        (an IP filter was set or reloaded); returns how many left the buckets."""
        dropped = 0
        for bucket in self._buckets:
            for entry in [e for e in bucket.entries.values() if blocked(e.addr[0])]:
                self._remove(bucket, entry)
                dropped += 1
            for entry in [e for e in bucket.replacements.values() if blocked(e.addr[0])]:
                del bucket.replacements[entry.node_id]
        return dropped

    # ------------------------------------------------------------------ internals

    def _index_of(self, value: int) -> int:
        common = _ID_BITS - (value ^ self._own_int).bit_length()
        deepest = len(self._buckets) - 1
        return common if common < deepest else deepest

    def _bucket_for(self, node_id: bytes) -> Bucket:
        return self._buckets[self._index_of(_as_int(node_id))]

    def _is_bad(self, entry: Entry, now: float | None) -> bool:
        if now is None:
            return entry.failures >= BAD_AFTER_FAILURES
        return entry.state(now) is NodeState.BAD

    @staticmethod
    def _touch(
        entry: Entry, now: float, *, responded: bool, rtt: float | None, verified: bool
    ) -> None:
        entry.last_seen = max(entry.last_seen, now)
        entry.verified = entry.verified or verified
        if not responded:
            entry.last_query = now
            return
        entry.last_response = now
        entry.failures = 0
        if rtt is not None and rtt >= 0:
            entry.rtt = rtt if entry.rtt is None else entry.rtt + RTT_ALPHA * (rtt - entry.rtt)

    def _insert(self, new: Entry, bucket: Bucket, now: float) -> InsertResult:
        """Place `new` in `bucket` (its bucket, as the caller already looked it up)."""
        conflict = self._ip_conflict(new.addr, bucket)
        if conflict is not None:
            if conflict.state(now) is not NodeState.BAD:
                return Rejected(f"address conflicts with {conflict.addr[0]} already in the table")
            self._remove(self._bucket_for(conflict.node_id), conflict)
        for _ in range(_ID_BITS + 1):  # each pass but the last splits the deepest bucket
            bucket.replacements.pop(new.node_id, None)
            if len(bucket.entries) < self._k:
                self._place(bucket, new, now)
                return Added(new)
            bad: list[Entry] = []
            questionable: list[Entry] = []
            good_until = math.inf
            for e in bucket.entries.values():  # one pass over the states
                state = e.state(now)
                if state is NodeState.BAD:
                    bad.append(e)
                elif state is NodeState.QUESTIONABLE:
                    questionable.append(e)
                else:  # GOOD: it has responded; it stays GOOD until its recency runs out
                    responded, queried = e.last_response or 0.0, e.last_query
                    recent = queried if queried and queried > responded else responded
                    good_until = min(good_until, recent + QUESTIONABLE_AFTER)
            if not bad and not questionable:
                bucket.good_until = good_until
            victim = self._eviction_victim(bad)
            if victim is not None:
                self._remove(bucket, victim)
                self._place(bucket, new, now)
                return Added(new)
            if bucket is self._buckets[-1] and len(self._buckets) < _ID_BITS:
                self._split()
                bucket = self._bucket_for(new.node_id)
                continue
            self._cache_replacement(bucket, new)
            if questionable:
                # Ping the stalest; among equals an unverified node, the one we'd rather lose.
                return Pending(min(questionable, key=_STALENESS))
            return _FULL_OF_GOOD_NODES
        raise AssertionError("unreachable: a bucket cannot split more than 160 times")

    @staticmethod
    def _eviction_victim(bad: list[Entry]) -> Entry | None:
        # Prefer keeping BEP 42-verified nodes: evict unverified, then the most failed.
        return min(bad, key=lambda e: (e.verified, -e.failures, e.last_seen), default=None)

    def _ip_conflict(self, addr: Addr, bucket: Bucket) -> Entry | None:
        same_addr = self._by_addr.get(addr)
        if same_addr is not None or not self._restrict:
            return same_addr
        subnet = ip_subnet(addr[0])
        if subnet is None:
            return None
        same_ip = self._by_ip.get(addr[0])
        if same_ip is not None:
            return same_ip
        return bucket.subnets.get(subnet)

    def _place(self, bucket: Bucket, entry: Entry, now: float | None) -> None:
        bucket.entries[entry.node_id] = entry
        bucket.good_until = -math.inf
        bucket.compact = None
        if now is not None:
            bucket.last_changed = now
        self._by_addr[entry.addr] = entry
        if self._restrict:
            subnet = ip_subnet(entry.addr[0])
            if subnet is not None:
                self._by_ip[entry.addr[0]] = entry
                bucket.subnets[subnet] = entry

    def _remove(self, bucket: Bucket, entry: Entry) -> None:
        del bucket.entries[entry.node_id]
        bucket.good_until = -math.inf
        bucket.compact = None
        if self._by_addr.get(entry.addr) is entry:
            del self._by_addr[entry.addr]
        if bucket.subnets:
            ip = entry.addr[0]
            if self._by_ip.get(ip) is entry:
                del self._by_ip[ip]
            subnet = ip_subnet(ip)
            if subnet is not None and bucket.subnets.get(subnet) is entry:
                del bucket.subnets[subnet]

    def _split(self) -> None:
        """Split the last bucket (the one holding our own ID) in two halves."""
        old = self._buckets[-1]
        mid = (old.lo + old.hi) // 2
        low = Bucket(old.lo, mid, old.last_changed)
        high = Bucket(mid, old.hi, old.last_changed)
        near, far = (low, high) if self._own_int < mid else (high, low)
        for attr in ("entries", "replacements"):
            for node_id, entry in getattr(old, attr).items():
                dest = near if near.lo <= _as_int(node_id) < near.hi else far
                getattr(dest, attr)[node_id] = entry
        for subnet, entry in old.subnets.items():
            dest = near if entry.node_id in near.entries else far
            dest.subnets[subnet] = entry
        self._buckets[-1:] = [far, near]

    def _cache_replacement(self, bucket: Bucket, entry: Entry) -> None:
        bucket.replacements.pop(entry.node_id, None)
        bucket.replacements[entry.node_id] = entry
        if len(bucket.replacements) > self._k:
            # Drop the stalest candidate; dicts keep insertion order, newest last.
            stalest = min(bucket.replacements.values(), key=_LAST_SEEN)
            del bucket.replacements[stalest.node_id]

    def _promote(self, bucket: Bucket, now: float) -> bool:
        """Move the best live replacement into the bucket; returns whether one moved."""
        candidates = [
            e
            for e in bucket.replacements.values()
            if e.state(now) is not NodeState.BAD and self._ip_conflict(e.addr, bucket) is None
        ]
        # Responded and verified nodes first, then the most recently seen.
        best = max(
            candidates,
            key=lambda e: (e.last_response is not None, e.verified, e.last_seen),
            default=None,
        )
        if best is None:
            return False
        del bucket.replacements[best.node_id]
        self._place(bucket, best, now)
        return True

    def _drop_replacement(self, node: bytes | Addr) -> None:
        for bucket in self._buckets:
            for entry in list(bucket.replacements.values()):
                if entry.addr == node or entry.node_id == node:
                    entry.failures += 1
                    if entry.failures >= BAD_AFTER_FAILURES or entry.last_response is None:
                        del bucket.replacements[entry.node_id]
