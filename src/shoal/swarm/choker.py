"""`Choker`: which peers we upload to (tit-for-tat, optimistic unchoke, anti-snubbing).

Theory of operation
-------------------
BEP 3, "Choking": a client unchokes a fixed number of peers, re-decided every ten
seconds "so that peers have adequate time to get full capacity"; "one additional peer
which is unchoked regardless of its upload rate" is rotated every thirty seconds
(the *optimistic unchoke*); and a peer we have received nothing from for a minute is
*snubbed* and loses its regular slot, keeping only a chance at the optimistic one.

`Choker.rechoke(now, peers)` is called every `RECHOKE_INTERVAL` seconds (`get_timer`
says when) with a `PeerStats` snapshot per connected peer and returns a full partition
of them into ``unchoke`` and ``choke``; the caller sends only the changes.

* Only interested, non-seed peers are unchoked (an uninterested peer would not
  request; a seed never needs data).
* Regular slots (``max_unchoked``) go to non-snubbed peers by rate, tit-for-tat:
  while leeching, the rate *they* send to us; while seeding (nobody can pay us back),
  the rate *we* send to them, libtorrent's "fastest upload" choice, so the peers that
  can take the data fastest spread it fastest. Ties go to the peer we have given fewer
  bytes (a round-robin flavour that stops one peer soaking up a fast seed when rates
  are all zero), then to peers already unchoked (less churn), then to the rng.
* Optimistic slots (``optimistic_slots``) are held for `OPTIMISTIC_INTERVAL` (three
  rounds) and then re-drawn from the interested peers without a regular slot,
  snubbed ones included. Peers connected for less than `NEW_PEER_AGE` get three
  times the weight: as in BitTorrent mainline, a newcomer has no pieces to trade,
  and the optimistic slot is how it gets its first ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

if TYPE_CHECKING:
    import random

__all__ = [
    "NEW_PEER_AGE",
    "OPTIMISTIC_INTERVAL",
    "RECHOKE_INTERVAL",
    "SNUB_TIMEOUT",
    "ChokeDecision",
    "Choker",
    "PeerStats",
]

# BEP 3, "Choking": "...reciprocation and number of uploads capping is managed by
# unchoking the four peers which have the best upload rate and are interested"
# (max_unchoked default), "every ten seconds", and the optimistic unchoke
# "rotates every 30 seconds".
RECHOKE_INTERVAL: Final = 10.0
OPTIMISTIC_INTERVAL: Final = 30.0
# BEP 3 era mainline: no block for 60 s while interested => snubbed (computed by the
# caller into `PeerStats.snubbed`; the constant lives here so both sides agree).
SNUB_TIMEOUT: Final = 60.0
# "New" for the 3x optimistic weight: younger than one optimistic period, i.e. a peer
# that has not yet been through a full optimistic draw.
NEW_PEER_AGE: Final = OPTIMISTIC_INTERVAL
NEW_PEER_WEIGHT: Final = 3

P = TypeVar("P", bound=Hashable)


@final
@dataclass(frozen=True, slots=True)
class PeerStats(Generic[P]):
    """One peer's state for a rechoke round (rates in bytes/s over the last round or so)."""

    peer: P
    download_rate: float = 0.0  #: from them to us
    upload_rate: float = 0.0  #: from us to them
    interested: bool = False  #: they are interested in our pieces
    snubbed: bool = False  #: nothing from them for SNUB_TIMEOUT while we were interested
    is_seed: bool = False  #: they have every piece
    uploaded: int = 0  #: total bytes we have sent them


@final
@dataclass(frozen=True, slots=True)
class ChokeDecision(Generic[P]):
    """The outcome of a round: every peer passed in is in exactly one of the two sets."""

    unchoke: frozenset[P]
    choke: frozenset[P]
    #: The optimistic unchoke (the most recently drawn one if there are several slots).
    optimistic: P | None
    #: Every peer holding an optimistic slot (a subset of `unchoke`).
    optimistic_peers: frozenset[P]


@final
class Choker(Generic[P]):
    """Unchoke policy; see the module docstring. Pure: time and randomness are injected."""

    def __init__(
        self, max_unchoked: int = 4, optimistic_slots: int = 1, *, rng: random.Random
    ) -> None:
        if max_unchoked < 0 or optimistic_slots < 0:
            raise ValueError("slot counts must not be negative")
        self.max_unchoked = max_unchoked
        self.optimistic_slots = optimistic_slots
        self._rng = rng
        self._first_seen: dict[P, float] = {}
        self._unchoked: frozenset[P] = frozenset()
        self._optimistic: list[P] = []  # oldest first
        self._optimistic_at = float("-inf")  # when the current optimistic draw was made
        self._last_rechoke: float | None = None

    def get_timer(self) -> float | None:
        """When the next `rechoke` is due (None before the first one: call it right away)."""
        return None if self._last_rechoke is None else self._last_rechoke + RECHOKE_INTERVAL

    def rechoke(
        self, now: float, peers: Sequence[PeerStats[P]], *, seeding: bool = False
    ) -> ChokeDecision[P]:
        """Decide who is unchoked for the next round.

        Args:
            now: the current time (seconds, any fixed epoch).
            peers: one entry per connected peer; a peer missing here is forgotten.
            seeding: we have every wanted piece (rank by upload rate instead).
        """
        self._last_rechoke = now
        self._remember(now, peers)
        eligible = [s for s in peers if s.interested and not s.is_seed]
        regular = self._regular(eligible, seeding)
        optimistic = self._pick_optimistic(now, eligible, regular)
        unchoke = frozenset(regular) | frozenset(optimistic)
        self._unchoked = unchoke
        return ChokeDecision(
            unchoke=unchoke,
            choke=frozenset(s.peer for s in peers) - unchoke,
            optimistic=optimistic[-1] if optimistic else None,
            optimistic_peers=frozenset(optimistic),
        )

    def _remember(self, now: float, peers: Sequence[PeerStats[P]]) -> None:
        present = {s.peer for s in peers}
        self._first_seen = {p: t for p, t in self._first_seen.items() if p in present}
        for p in present:
            self._first_seen.setdefault(p, now)

    def _regular(self, eligible: Sequence[PeerStats[P]], seeding: bool) -> list[P]:
        # One draw per peer, in input order, so a seeded rng gives the same ranking.
        ranked = [(s, self._rng.random()) for s in eligible if not s.snubbed]
        ranked.sort(
            key=lambda item: (
                -(item[0].upload_rate if seeding else item[0].download_rate),
                item[0].uploaded,
                item[0].peer not in self._unchoked,
                item[1],
            )
        )
        return [s.peer for s, _ in ranked[: self.max_unchoked]]

    def _pick_optimistic(
        self, now: float, eligible: Sequence[PeerStats[P]], regular: list[P]
    ) -> list[P]:
        taken = set(regular)
        pool = [s.peer for s in eligible if s.peer not in taken]
        in_pool = set(pool)
        rotate = now - self._optimistic_at >= OPTIMISTIC_INTERVAL
        # A holder keeps its slot until the period ends, unless it left, lost interest
        # or earned a regular slot (then the slot is free for someone else at once).
        kept = [] if rotate else [p for p in self._optimistic if p in in_pool]
        if rotate:
            self._optimistic_at = now
        chosen = list(kept)
        # On rotation the previous holders are drawn only if nobody else is left.
        previous = set(self._optimistic)
        fresh = [p for p in pool if p not in kept and p not in previous]
        again = [p for p in pool if p not in kept and p in previous]
        for candidates in (fresh, again):
            self._draw(now, candidates, chosen)
        self._optimistic = chosen
        return chosen

    def _draw(self, now: float, candidates: list[P], chosen: list[P]) -> None:
        """Fill free optimistic slots from `candidates`, newcomers weighted x3."""
        while len(chosen) < self.optimistic_slots and candidates:
            weights = [
                NEW_PEER_WEIGHT if now - self._first_seen[p] < NEW_PEER_AGE else 1
                for p in candidates
            ]
            pick = self._rng.choices(range(len(candidates)), weights)[0]
            chosen.append(candidates.pop(pick))
