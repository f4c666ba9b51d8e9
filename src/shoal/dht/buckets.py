"""The entries of the routing table and the k-buckets that hold them (BEP 5).

Why a module of its own: a node's state (GOOD / QUESTIONABLE / BAD) is a function of its
timestamps and ``now``, and that rule, with the record it reads, is what the rest of the
DHT (serving, lookups, the CLI) asks about; the table in `dht.routing` decides where
entries go. BEP 5, "Routing Table": good means it answered one of our queries within 15
minutes, or has ever answered and queried us within 15 minutes; bad means it failed
``BAD_AFTER_FAILURES`` queries in a row (a questionable node, a single one).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Final, TypeAlias

from .compact import NodeInfo

__all__ = ["BAD_AFTER_FAILURES", "QUESTIONABLE_AFTER", "Addr", "Bucket", "Entry", "K", "NodeState"]

Addr: TypeAlias = tuple[str, int]

# BEP 5, "Routing Table": "Each bucket can only hold K nodes, currently eight".
K: Final = 8
# BEP 5: a node is good if it responded "within the last 15 minutes"; otherwise questionable.
QUESTIONABLE_AFTER: Final = 15 * 60.0
# BEP 5: "Nodes become bad when they fail to respond to multiple queries in a row."
# Two, because a good node that misses one reply (UDP loss) should keep its slot.
BAD_AFTER_FAILURES: Final = 2


class NodeState(enum.Enum):
    """How much we trust a node, per BEP 5 "Routing Table"."""

    #: Responded to us within the last 15 minutes.
    GOOD = "good"
    #: Silent for 15 minutes, or never answered a query of ours.
    QUESTIONABLE = "questionable"
    #: Failed to answer repeatedly; first in line for eviction, never returned by `closest`.
    BAD = "bad"


@dataclass(slots=True, eq=False)
class Entry:
    """One node in the table (or in a replacement cache)."""

    node_id: bytes
    addr: Addr
    #: Last time we heard anything (a query or a response) from the node.
    last_seen: float
    #: Last time it answered one of our queries; None if it never did.
    last_response: float | None = None
    #: Consecutive failed queries, reset by a response.
    failures: int = 0
    #: Smoothed round-trip time in seconds (EWMA), None before the first timed response.
    rtt: float | None = None
    #: The node ID matches its IP per BEP 42 (the caller decides; we only prefer such nodes).
    verified: bool = False
    #: Last time the node sent us a query (BEP 5 counts that towards "good" too).
    last_query: float | None = None
    _info: NodeInfo | None = dataclasses.field(default=None, init=False, repr=False)
    #: `node_id` as an integer, for XOR distances in `RoutingTable.closest`.
    _id_int: int = dataclasses.field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._id_int = int.from_bytes(self.node_id, "big")

    @property
    def info(self) -> NodeInfo:
        """The contact as a `NodeInfo`, made once: replies list the same entries often."""
        info = self._info
        if info is None:
            info = self._info = NodeInfo(self.node_id, self.addr)
        return info

    def state(self, now: float) -> NodeState:
        if self.failures >= BAD_AFTER_FAILURES:
            return NodeState.BAD
        responded = self.last_response
        if responded is None:
            return NodeState.BAD if self.failures else NodeState.QUESTIONABLE
        # max(responded, last_query), spelled out: this runs ~15 times per served query.
        queried = self.last_query
        recent = queried if queried and queried > responded else responded
        if now - recent < QUESTIONABLE_AFTER:
            return NodeState.GOOD
        return NodeState.BAD if self.failures else NodeState.QUESTIONABLE


@dataclass(slots=True)
class Bucket:
    """One k-bucket: the IDs in [lo, hi), its entries and its replacement cache."""

    lo: int
    hi: int  # exclusive
    last_changed: float
    entries: dict[bytes, Entry] = dataclasses.field(default_factory=dict)
    replacements: dict[bytes, Entry] = dataclasses.field(default_factory=dict)
    #: The entries by /24 (/64), when IP limits apply (`_ip_conflict` in O(1)).
    subnets: dict[str, Entry] = dataclasses.field(default_factory=dict)
    #: Before this time every entry is GOOD (set by a full scan in `_insert`). Safe to
    #: keep while entries only get fresher; reset when one is added, removed or failed.
    good_until: float = -math.inf
    #: (id as int, compact IPv4 node info) of every entry, for
    #: `RoutingTable.closest_compact`; None until asked, and again whenever an entry is
    #: added or removed.
    compact: list[tuple[int, bytes]] | None = None
