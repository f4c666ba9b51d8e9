"""The iterative Kademlia lookup of BEP 5 as a pure iterator: which node to ask next.

Theory of operation
-------------------
A `Lookup` keeps *candidates* sorted by XOR distance to the target (BEP 5: "the
distance metric is XOR"). Each candidate is in one `CandidateState`:

* NOT_CONTACTED: known, never queried.
* WAITING: queried; it has a *soft* and a *hard* deadline.
* UNRESPONSIVE: the soft deadline passed. The node no longer holds a parallelism
  slot (and, after ``patience``, no longer blocks termination), but a late reply
  still counts in full.
* FAILED: the hard deadline passed, or the driver reported an error reply.
* SUCCEEDED: it answered; its ``nodes`` became candidates, its ``values`` peers.

The driver calls ``next(now)`` until it returns `Wait` or `LookupDone`, sends one
query per `QueryNode`, and feeds replies back with `on_response` / `on_failure`. Timeouts
are not separate inputs: ``next(now)`` expires deadlines itself, so the driver only has
to call it again at ``Wait.until`` (the earliest pending deadline) or on a reply.

``next`` walks the candidates closest first, counting SUCCEEDED ones and skipping
UNRESPONSIVE/FAILED ones, and stops at the k-th success. The first NOT_CONTACTED node
on the way is queried if fewer than ``alpha`` queries are in flight. The lookup is done
when the walk finds nothing pending before it ends: the k closest live nodes have all
answered and no closer node is waiting or still to be asked. This is the rule of
rust-libp2p's ``ClosestPeersIter``, except that a WAITING node closer than the k-th
success blocks termination (it may know closer nodes), and so does an UNRESPONSIVE one
until ``patience`` after its query: the slot is freed at the soft deadline, but a slow
node among the closest is not dropped from the result that quickly. A lookup that
has no answer at all waits for its UNRESPONSIVE nodes a little longer still
(``empty_patience``).

Why soft timeouts: about half the addresses in the Mainline DHT never answer. With one
fixed timeout, every dead node among the closest holds a slot for a full second or more.
The soft deadline is per node, from its smoothed RTT when the routing table knows it
(``clamp(rtt_factor * rtt, min_soft_timeout, max_soft_timeout)``), else from the RTTs
this lookup has already measured, else a default. Slow-but-alive nodes that miss it
still answer later, and that reply is used, so a tight soft timeout costs only an
extra query. `LookupConfig.libtorrent_like` turns adaptation off (1 s / 15 s, alpha 5)
as a baseline; ``tools/bench/dht_lookup.py`` compares the two (10k simulated nodes,
55% dead: time to first peer p50 0.39 s vs 1.04 s, p99 1.45 s vs 3.24 s, for 7% more
queries; see tools/bench/README.md).

Hostile input is bounded: nodes with our own ID, a bad ID length or port 0 are dropped;
a node is never queried twice (by address *or* by ID); the candidate list is capped
(farthest not-yet-queried nodes are evicted first) and so is the number of queries, so
a node that invents ever-closer IDs cannot keep a lookup alive or grow its memory.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "Addr",
    "CandidateState",
    "Contact",
    "Lookup",
    "LookupConfig",
    "LookupDone",
    "LookupKind",
    "LookupStats",
    "QueryNode",
    "Wait",
]

Addr: TypeAlias = tuple[str, int]

# BEP 5: node IDs are 160 bits, "the same as the info-hash".
_ID_LENGTH: Final = 20
# Seeds given without a node ID sort after every real distance (which is < 2**160).
_UNKNOWN_DISTANCE: Final = 1 << 160
# How many RTTs this lookup must have measured before it trusts their median.
_MIN_RTT_SAMPLES: Final = 3


class LookupKind(enum.Enum):
    """Which BEP 5 query the lookup sends."""

    #: ``find_node``: converge on the k closest nodes (bootstrap, refresh).
    FIND_NODE = "find_node"
    #: ``get_peers``: as FIND_NODE, also collecting ``values`` and ``token``\\s.
    GET_PEERS = "get_peers"


class CandidateState(enum.Enum):
    """Where one candidate node is in the lookup."""

    #: Known but never queried.
    NOT_CONTACTED = "not_contacted"
    #: Queried, soft deadline not reached: holds one of the alpha slots.
    WAITING = "waiting"
    #: Soft deadline passed: slot freed, a late reply is still accepted.
    UNRESPONSIVE = "unresponsive"
    #: Hard deadline passed or error reply: ignored from now on.
    FAILED = "failed"
    #: Answered.
    SUCCEEDED = "succeeded"


class _Input(enum.Enum):
    QUERY = "query"
    SOFT_TIMEOUT = "soft_timeout"
    HARD_TIMEOUT = "hard_timeout"
    RESPONSE = "response"
    FAILURE = "failure"


_S = CandidateState
#: The candidate state machine as data; a missing (state, input) pair means "ignore"
#: (e.g. a duplicated reply to a node that already SUCCEEDED).
TRANSITIONS: Final[dict[tuple[CandidateState, _Input], CandidateState]] = {
    (_S.NOT_CONTACTED, _Input.QUERY): _S.WAITING,
    (_S.WAITING, _Input.SOFT_TIMEOUT): _S.UNRESPONSIVE,
    (_S.WAITING, _Input.HARD_TIMEOUT): _S.FAILED,
    (_S.WAITING, _Input.RESPONSE): _S.SUCCEEDED,
    (_S.WAITING, _Input.FAILURE): _S.FAILED,
    (_S.UNRESPONSIVE, _Input.HARD_TIMEOUT): _S.FAILED,
    (_S.UNRESPONSIVE, _Input.RESPONSE): _S.SUCCEEDED,
    (_S.UNRESPONSIVE, _Input.FAILURE): _S.FAILED,
}


@dataclass(frozen=True, slots=True)
class LookupConfig:
    """Lookup policy. The defaults are shoal's, chosen by simulation (see tools/bench).

    Attributes:
        alpha: queries in flight (not yet soft-timed-out) at once. BEP 5 leaves it open;
            Kademlia suggests 3. In simulation (10k nodes, 55% dead, tools/bench) alpha
            3/4/5/6/8 gave first-peer p50 0.50/0.39/0.34/0.33/0.28 s for 28/31/31/34/38
            queries: 5 is the knee, and equal to libtorrent's, so the comparison with
            `libtorrent_like` isolates the timeout policy.
        k: how many closest nodes must answer before the lookup ends (BEP 5: K = 8).
        soft_timeout: soft timeout for a node whose RTT nobody knows.
        hard_timeout: after this a silent node is FAILED and its late reply ignored.
        adaptive: derive each soft timeout from the node's (or the lookup's) RTT.
        rtt_factor, min_soft_timeout, max_soft_timeout: the adaptive soft timeout is
            ``clamp(rtt_factor * rtt, min_soft_timeout, max_soft_timeout)``.
        max_candidates: cap on the candidate list (default ``4 * k * alpha``).
        max_queries: cap on queries per lookup; guarantees termination against
            nodes that keep inventing closer IDs.
        patience: a soft-timed-out node closer than the k-th answer still holds up
            *termination* (not a slot) until this long after its query, so a slow node
            among the closest is not dropped from the result just for being slow.
            0.5 s measured +0.1 closest-8 overlap for +0.1 s finish time; 1 s cost 0.6 s.
        empty_patience: while *no* node has answered, a soft-timed-out node holds up
            termination this long after its query (a lone slow bootstrap node). Longer
            mostly waits on lost datagrams: 1 s covers all but ~0.02% of simulated paths,
            and each extra second adds to every cold start whose first datagram is lost.
    """

    alpha: int = 5
    k: int = 8
    soft_timeout: float = 0.5
    hard_timeout: float = 5.0
    adaptive: bool = True
    rtt_factor: float = 2.5
    min_soft_timeout: float = 0.1
    max_soft_timeout: float = 1.0
    max_candidates: int | None = None
    max_queries: int = 200
    patience: float = 0.5
    empty_patience: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha < 1 or self.k < 1 or self.max_queries < 1:
            raise ValueError("alpha, k and max_queries must be positive")
        if not 0 < self.soft_timeout <= self.hard_timeout:
            raise ValueError("need 0 < soft_timeout <= hard_timeout")
        if not 0 < self.min_soft_timeout <= self.max_soft_timeout <= self.hard_timeout:
            raise ValueError("need 0 < min_soft_timeout <= max_soft_timeout <= hard_timeout")
        if self.patience < 0 or self.empty_patience < 0:
            raise ValueError("patience must not be negative")
        if self.max_candidates is not None and self.max_candidates < self.k:
            raise ValueError("max_candidates must be at least k")

    @classmethod
    def libtorrent_like(cls) -> LookupConfig:
        """The comparison baseline: libtorrent's branch factor 5 and 1 s / 15 s timeouts."""
        return cls(
            alpha=5,
            soft_timeout=1.0,
            hard_timeout=15.0,
            adaptive=False,
            max_soft_timeout=1.0,
            patience=0.0,
        )

    @property
    def candidate_cap(self) -> int:
        return self.max_candidates if self.max_candidates is not None else 4 * self.k * self.alpha


@final
@dataclass(frozen=True, slots=True)
class QueryNode:
    """Send one ``find_node`` / ``get_peers`` query to this node now."""

    node_id: bytes | None
    addr: Addr


@final
@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to send; call ``next`` again at ``until`` or when a reply arrives."""

    until: float | None


@final
@dataclass(frozen=True, slots=True)
class LookupDone:
    """The lookup has finished; read ``closest_responded()``, ``peers`` and statistics."""


@dataclass(frozen=True, slots=True)
class LookupStats:
    """What a lookup cost and achieved (times are in the caller's ``now`` clock)."""

    queries_sent: int
    responses: int
    #: Replies that arrived after the node's soft deadline (and were used).
    late_responses: int
    #: Soft timeouts (each freed a slot early).
    timeouts: int
    #: Error replies, unreachable nodes and hard timeouts.
    failures: int
    #: Deepest hop among the k closest responders (seeds are hop 1).
    hops: int
    #: Hop of the node whose reply carried the first peer, if any.
    first_peer_hops: int | None
    started: float
    first_peer_at: float | None
    finished_at: float | None


class Contact(Protocol):
    """Anything with a node ID and an address (e.g. `shoal.dht.compact.NodeInfo`)."""

    @property
    def node_id(self) -> bytes: ...
    @property
    def addr(self) -> Addr: ...


@dataclass(slots=True, eq=False)
class _Candidate:
    key: tuple[int, int]  # (XOR distance, insertion order): a total, stable order
    node_id: bytes | None
    addr: Addr
    depth: int
    state: CandidateState = CandidateState.NOT_CONTACTED
    sent_at: float = 0.0
    soft_deadline: float = 0.0
    patience_deadline: float = 0.0
    hard_deadline: float = 0.0
    token: bytes | None = field(default=None)


def _valid_addr(addr: Addr) -> bool:
    # BEP 5 compact info carries a 16-bit port; 0 is not a port anyone listens on.
    return bool(addr[0]) and 0 < addr[1] < 65536


class Lookup:
    """One iterative ``find_node`` / ``get_peers`` lookup (see the module docstring).

    Args:
        target: the 20-byte node ID or info-hash searched for.
        kind: which query to send (the driver builds it; the lookup only picks nodes).
        seeds: starting contacts, usually the routing table's closest nodes. A ``None``
            ID (a bootstrap address) is allowed; it sorts last until it replies.
        now: the current time.
        config: the policy; defaults to shoal's.
        rtt_of: smoothed RTT of an address if known (``RoutingTable.rtt``).
        own_id: our node ID; contacts claiming it are ignored.
        learned: further starting contacts with the hop at which another lookup found
            them (a get_peers started during bootstrap), so hop counts stay honest.
    """

    def __init__(
        self,
        target: bytes,
        kind: LookupKind,
        seeds: Iterable[tuple[bytes | None, Addr]],
        *,
        now: float,
        config: LookupConfig | None = None,
        rtt_of: Callable[[Addr], float | None] | None = None,
        own_id: bytes | None = None,
        learned: Iterable[tuple[bytes | None, Addr, int]] = (),
    ) -> None:
        if len(target) != _ID_LENGTH:
            raise ValueError("target must be 20 bytes")
        self.target = bytes(target)
        self.kind = kind
        self.config = config if config is not None else LookupConfig()
        self.peers: set[Addr] = set()
        self._target_int = int.from_bytes(target, "big")
        self._rtt_of = rtt_of
        self._own_id = own_id
        self._candidates: list[_Candidate] = []  # sorted by key
        self._by_addr: dict[Addr, _Candidate] = {}
        self._by_id: dict[bytes, _Candidate] = {}
        # Everything ever queried, so that evicting a candidate never lets it be re-asked.
        self._queried_addrs: set[Addr] = set()
        self._queried_ids: set[bytes] = set()
        self._seq = 0
        self._rtts: list[float] = []
        self._done = False
        self._queries = self._responses = self._late = self._timeouts = self._failures = 0
        self._started = now
        self._first_peer_at: float | None = None
        self._first_peer_hops: int | None = None
        self._finished_at: float | None = None
        for node_id, addr in seeds:
            self._add(node_id, addr, depth=1)
        for node_id, addr, depth in learned:
            self._add(node_id, addr, depth=max(1, depth))

    # -- public API ---------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done

    def next(self, now: float) -> QueryNode | Wait | LookupDone:
        """The next action. Call repeatedly until it returns `Wait` or `LookupDone`.

        Every `QueryNode` returned has been recorded as sent at ``now``.
        """
        if self._done:
            return LookupDone()
        in_flight = self._expire(now)
        cfg = self.config
        succeeded = 0
        pending = False  # something closer than the k-th success may still change the result
        for cand in self._candidates:
            state = cand.state
            if state is _S.SUCCEEDED:
                succeeded += 1
                if succeeded >= cfg.k:
                    break
            elif state is _S.WAITING:
                pending = True
            elif state is _S.UNRESPONSIVE and now < cand.patience_deadline:
                pending = True  # slot freed, but a close node is not given up on yet
            elif state is _S.NOT_CONTACTED and self._queries < cfg.max_queries:
                if in_flight < cfg.alpha:
                    return self._query(cand, now)
                pending = True  # it will be asked as soon as a slot frees
        if not pending and succeeded == 0:
            # Do not give up empty-handed at once: with nothing else to go on, a slow
            # seed (a bootstrap node on a long path) is worth `empty_patience`.
            later = [
                t
                for c in self._candidates
                if c.state is _S.UNRESPONSIVE and (t := self._empty_deadline(c)) > now
            ]
            if later:
                return Wait(min(later))
        if not pending:
            self._done = True
            self._finished_at = now
            return LookupDone()
        return Wait(self._next_deadline(now))

    def on_response(
        self,
        addr: Addr,
        node_id: bytes,
        nodes: Sequence[tuple[bytes, Addr] | Contact],
        peers: Sequence[Addr],
        token: bytes | None,
        now: float,
    ) -> list[Addr]:
        """Record a reply from ``addr``; returns the peers this lookup had not seen yet.

        Replies from nodes that were not queried, duplicates, and replies after the
        hard deadline or after the lookup finished are ignored (``[]``). A reply that
        arrives after the soft deadline is used in full.
        """
        cand = self._by_addr.get(addr)
        if self._done or cand is None:
            return []
        was = cand.state
        new_state = TRANSITIONS.get((was, _Input.RESPONSE))
        if new_state is None:
            return []
        self._responses += 1
        if was is _S.UNRESPONSIVE:
            self._late += 1
        self._rtts.append(now - cand.sent_at)
        if cand.node_id != node_id and not self._reidentify(cand, node_id):
            new_state = _S.FAILED  # claims an ID that is ours or taken: not a result
            self._failures += 1
        cand.state = new_state
        if new_state is _S.SUCCEEDED:
            cand.token = token
        for contact in nodes:
            nid, naddr = contact if isinstance(contact, tuple) else (contact.node_id, contact.addr)
            self._add(nid, naddr, depth=cand.depth + 1)
        fresh = [p for p in dict.fromkeys(peers) if p not in self.peers and _valid_addr(p)]
        if fresh:
            self.peers.update(fresh)
            if self._first_peer_at is None:
                self._first_peer_at = now
                self._first_peer_hops = cand.depth
        return fresh

    def hops_of(self, addr: Addr) -> int | None:
        """The hop at which candidate ``addr`` was found (seeds are 1); None if unknown."""
        cand = self._by_addr.get(addr)
        return None if cand is None else cand.depth

    def on_failure(self, addr: Addr, now: float) -> None:
        """The query to ``addr`` got an error reply or could not be sent."""
        cand = self._by_addr.get(addr)
        if cand is not None and not self._done:
            self._fire(cand, _Input.FAILURE)

    def closest_responded(self) -> list[tuple[bytes, Addr, bytes | None]]:
        """Up to k nodes that answered, closest first, with their tokens (for announce)."""
        out: list[tuple[bytes, Addr, bytes | None]] = []
        for cand in self._candidates:
            if cand.state is _S.SUCCEEDED and cand.node_id is not None:
                out.append((cand.node_id, cand.addr, cand.token))
                if len(out) >= self.config.k:
                    break
        return out

    def candidate_states(self) -> list[tuple[bytes | None, Addr, CandidateState]]:
        """Every current candidate, closest first (for tests and debugging)."""
        return [(c.node_id, c.addr, c.state) for c in self._candidates]

    def in_flight(self, now: float) -> int:
        """Queries sent whose soft deadline has not passed at ``now``."""
        return sum(1 for c in self._candidates if c.state is _S.WAITING and now < c.soft_deadline)

    def statistics(self) -> LookupStats:
        hops = max((c.depth for c in self._top_responders()), default=0)
        return LookupStats(
            queries_sent=self._queries,
            responses=self._responses,
            late_responses=self._late,
            timeouts=self._timeouts,
            failures=self._failures,
            hops=hops,
            first_peer_hops=self._first_peer_hops,
            started=self._started,
            first_peer_at=self._first_peer_at,
            finished_at=self._finished_at,
        )

    # -- internals ----------------------------------------------------------------------

    def _top_responders(self) -> list[_Candidate]:
        top = [c for c in self._candidates if c.state is _S.SUCCEEDED and c.node_id is not None]
        return top[: self.config.k]

    def _fire(self, cand: _Candidate, event: _Input) -> bool:
        new_state = TRANSITIONS.get((cand.state, event))
        if new_state is None:
            return False
        if new_state is _S.FAILED:
            self._failures += 1
        elif new_state is _S.UNRESPONSIVE:
            self._timeouts += 1
        cand.state = new_state
        return True

    def _expire(self, now: float) -> int:
        """Apply soft/hard deadlines; returns how many queries are still in flight."""
        in_flight = 0
        for cand in self._candidates:
            if cand.state is _S.WAITING:
                if now >= cand.hard_deadline:
                    self._fire(cand, _Input.HARD_TIMEOUT)
                elif now >= cand.soft_deadline:
                    self._fire(cand, _Input.SOFT_TIMEOUT)
                else:
                    in_flight += 1
            elif cand.state is _S.UNRESPONSIVE and now >= cand.hard_deadline:
                self._fire(cand, _Input.HARD_TIMEOUT)
        return in_flight

    def _next_deadline(self, now: float) -> float | None:
        times = [
            c.soft_deadline if c.state is _S.WAITING else c.patience_deadline
            for c in self._candidates
            if c.state is _S.WAITING or (c.state is _S.UNRESPONSIVE and c.patience_deadline > now)
        ]
        return min(times, default=None)

    def _query(self, cand: _Candidate, now: float) -> QueryNode:
        self._fire(cand, _Input.QUERY)
        self._queries += 1
        cand.sent_at = now
        soft = self._soft_timeout(cand.addr)
        cand.soft_deadline = now + soft
        cand.patience_deadline = now + min(
            max(soft, self.config.patience), self.config.hard_timeout
        )
        cand.hard_deadline = now + self.config.hard_timeout
        self._queried_addrs.add(cand.addr)
        if cand.node_id is not None:
            self._queried_ids.add(cand.node_id)
        return QueryNode(cand.node_id, cand.addr)

    def _empty_deadline(self, cand: _Candidate) -> float:
        cfg = self.config
        soft = cand.soft_deadline - cand.sent_at
        return cand.sent_at + min(max(soft, cfg.empty_patience), cfg.hard_timeout)

    def _soft_timeout(self, addr: Addr) -> float:
        cfg = self.config
        if not cfg.adaptive:
            return cfg.soft_timeout
        rtt = self._rtt_of(addr) if self._rtt_of is not None else None
        if rtt is None and len(self._rtts) >= _MIN_RTT_SAMPLES:
            # Unknown node: assume it is like the nodes that already answered. The median
            # is robust to the few late replies that the soft timeout itself lets through.
            rtt = sorted(self._rtts)[len(self._rtts) // 2]
        if rtt is None:
            return cfg.soft_timeout
        return min(max(cfg.rtt_factor * rtt, cfg.min_soft_timeout), cfg.max_soft_timeout)

    def _distance(self, node_id: bytes | None) -> int:
        if node_id is None:
            return _UNKNOWN_DISTANCE
        return int.from_bytes(node_id, "big") ^ self._target_int

    def _acceptable_id(self, node_id: bytes) -> bool:
        return (
            len(node_id) == _ID_LENGTH
            and node_id != self._own_id
            and node_id not in self._by_id
            and node_id not in self._queried_ids
        )

    def _add(self, node_id: bytes | None, addr: Addr, depth: int) -> None:
        """Add a contact unless it is junk, ours, already known, or too far to keep."""
        if addr in self._by_addr or addr in self._queried_addrs or not _valid_addr(addr):
            return
        if node_id is not None:
            node_id = bytes(node_id)
            if not self._acceptable_id(node_id):
                return
        self._seq += 1
        cand = _Candidate((self._distance(node_id), self._seq), node_id, addr, depth)
        bisect.insort(self._candidates, cand, key=lambda c: c.key)
        self._by_addr[addr] = cand
        if node_id is not None:
            self._by_id[node_id] = cand
        self._evict()

    def _evict(self) -> None:
        """Drop the farthest never-queried (or failed) candidates beyond the cap."""
        excess = len(self._candidates) - self.config.candidate_cap
        i = len(self._candidates) - 1
        while excess > 0 and i >= 0:
            cand = self._candidates[i]
            if cand.state is _S.NOT_CONTACTED or cand.state is _S.FAILED:
                del self._candidates[i]
                del self._by_addr[cand.addr]
                if cand.node_id is not None:
                    del self._by_id[cand.node_id]
                excess -= 1
            i -= 1

    def _reidentify(self, cand: _Candidate, node_id: bytes) -> bool:
        """A node replied with another ID than we had (or we had none): re-sort it.

        Returns False if the new ID is unusable (ours, malformed, or another
        candidate's); the reply's contents are still used, but the node is no result.
        """
        if cand.node_id is not None:
            del self._by_id[cand.node_id]
            cand.node_id = None
        if not self._acceptable_id(bytes(node_id)):
            return False
        node_id = bytes(node_id)
        self._candidates.remove(cand)
        cand.node_id = node_id
        cand.key = (self._distance(node_id), cand.key[1])
        bisect.insort(self._candidates, cand, key=lambda c: c.key)
        self._by_id[node_id] = cand
        self._queried_ids.add(node_id)
        return True
