"""`DHTConfig` (a node's policy) and `DHTStats` (its `statistics()` snapshot).

Split from `dht/node.py` so the engine module holds only the engine; both names are
re-exported there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .item_store import ItemStoreConfig
from .lookup import LookupConfig
from .peer_store import PeerStoreConfig

if TYPE_CHECKING:
    from .routing import RoutingStats

__all__ = ["DHTConfig", "DHTStats"]


@dataclass(frozen=True, slots=True)
class DHTConfig:
    """Node policy. Rates are per source IP; times are seconds."""

    read_only: bool = False
    k: int = 8
    lookup: LookupConfig = field(default_factory=LookupConfig)
    #: Lookups running at once; more wait in a queue (bounds traffic and memory).
    max_lookups: int = 16
    #: Deadline for pings and announces (lookups use ``lookup.hard_timeout``).
    query_timeout: float = 5.0
    rate: float = 10.0
    burst: float = 20.0
    #: A reply may be at most this many times the size of the query (anti-amplification).
    amplification: int = 8
    peer_store: PeerStoreConfig = field(default_factory=PeerStoreConfig)
    #: BEP 44 items stored for others.
    items: ItemStoreConfig = field(default_factory=ItemStoreConfig)
    #: BEP 51: seconds a sample_infohashes requester should wait before asking again.
    sample_interval: int = 300
    #: First bootstrap retry when nobody answered: short, because a cold start whose
    #: only bootstrap datagram (and its retransmission) was lost waits this long.
    bootstrap_first_retry: float = 1.0
    bootstrap_backoff: float = 5.0
    bootstrap_backoff_max: float = 300.0
    #: How often buckets are checked for refresh and the peer store for expiry.
    maintenance_interval: float = 60.0
    #: Client version sent as ``v`` (BEP 20-style two letters and a version).
    version: bytes | None = b"SH\x00\x01"
    restrict_ips: bool = True
    #: Use IPv6 (``nodes6``, BEP 32) instead of IPv4 contacts.
    ipv6: bool = False
    #: BEP 42 enforcement: ignore tokens from nodes whose id does not match their IP.
    enforce_bep42: bool = False
    #: Distinct responders that must agree on our external IP (BEP 42 ``ip``).
    ip_votes: int = 10
    #: BEP 42: "consider restarting ... with a new node ID" once the IP is voted in.
    regenerate_id: bool = False
    #: Resend an unanswered query once (see the module docstring); 0 disables.
    retransmit_factor: float = 3.0
    retransmit_min: float = 0.2
    retransmit_max: float = 1.0
    #: Retransmission delay for a bootstrap address or pinged address with no RTT yet.
    retransmit_unknown: float = 0.5


@dataclass(frozen=True, slots=True)
class DHTStats:
    """A snapshot of counters for `DHTNode.statistics()` (trio naming)."""

    routing: RoutingStats
    lookups: int
    queued_lookups: int
    transactions: int
    bootstrapped: bool
    queries_received: int
    responses_received: int
    malformed: int
    rate_limited: int
    unsolicited: int
    errors_sent: int
    timeouts: int
    peers_stored: int
    info_hashes_stored: int
    external_ip: str | None
    #: Queries sent a second time (see "Retransmission" in the module docstring).
    retransmits: int = 0
    #: BEP 44 items we store for others.
    items_stored: int = 0
    #: Datagrams dropped unread because the IP filter blocks their source.
    filtered: int = 0
