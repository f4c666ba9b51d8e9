"""Events a `DHTNode` reports through ``next_event()``. Frozen values; do not subclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from .bep44 import Item
    from .compact import Addr, NodeInfo
    from .lookup import LookupStats

__all__ = [
    "AnnounceReceived",
    "AnnounceSent",
    "BootstrapFinished",
    "DHTEvent",
    "ExternalAddressVoted",
    "ItemFound",
    "ItemStored",
    "LookupFinished",
    "LookupResult",
    "NodeAdded",
    "OtherFamilyNodes",
    "PeersFound",
    "QueryTimedOut",
    "SampleReceived",
    "ScrapeEstimate",
]


@final
@dataclass(frozen=True, slots=True)
class PeersFound:
    """A get_peers lookup learned peers it had not reported before."""

    lookup_id: int
    info_hash: bytes
    peers: tuple[Addr, ...]
    #: Hop of the reply that carried them (the lookup's seeds are hop 1), for tools
    #: such as ``shoal dht get-peers``; None if unknown.
    hops: int | None = None


@final
@dataclass(frozen=True, slots=True)
class ItemFound:
    """Result of a BEP 44 get: the valid item with the highest seq, if any."""

    item: Item | None
    #: How many nodes returned that item (at that seq).
    nodes: int


@final
@dataclass(frozen=True, slots=True)
class ItemStored:
    """Result of a BEP 44 put: how many of the closest token holders accepted it."""

    stored: int
    #: Error codes of the nodes that refused it (e.g. 302 when they hold a higher seq).
    errors: tuple[int, ...]
    #: Nodes that never answered the put.
    timeouts: int


@final
@dataclass(frozen=True, slots=True)
class ScrapeEstimate:
    """Result of a BEP 33 scrape: the combined filters' estimates."""

    seeds: float
    peers: float
    #: Nodes whose filters (or legacy ``values``) went into the estimate.
    responders: int
    #: The combined 256-byte filters the estimates come from (legacy ``values``
    #: included), so that the scrapes of two address families can be ORed again.
    bf_seeds: bytes = b""
    bf_peers: bytes = b""


@final
@dataclass(frozen=True, slots=True)
class SampleReceived:
    """Result of one BEP 51 sample_infohashes query; `samples` is None on no answer."""

    addr: Addr
    node_id: bytes | None
    samples: tuple[bytes, ...] | None
    interval: int | None = None
    num: int | None = None
    nodes: tuple[NodeInfo, ...] = ()


LookupResult: TypeAlias = ItemFound | ItemStored | ScrapeEstimate | SampleReceived


@final
@dataclass(frozen=True, slots=True)
class LookupFinished:
    """A lookup (get_peers, find_node, announce, bootstrap, refresh, BEP 44 get/put,
    BEP 33 scrape) or a single BEP 51 sample query has ended."""

    lookup_id: int
    target: bytes
    #: The closest nodes that answered, nearest first.
    closest: tuple[tuple[bytes, Addr], ...]
    stats: LookupStats
    #: What the lookup was for, beyond `closest` (None for the BEP 5 lookups).
    result: LookupResult | None = None


@final
@dataclass(frozen=True, slots=True)
class AnnounceSent:
    """An announce lookup finished and announce_peer went to `nodes` token holders."""

    lookup_id: int
    info_hash: bytes
    nodes: int


@final
@dataclass(frozen=True, slots=True)
class AnnounceReceived:
    """Another node announced `peer` for `info_hash` with a valid token; we stored it."""

    info_hash: bytes
    peer: Addr


@final
@dataclass(frozen=True, slots=True)
class NodeAdded:
    """A node took a slot in our routing table."""

    node_id: bytes
    addr: Addr


@final
@dataclass(frozen=True, slots=True)
class QueryTimedOut:
    """A query of ours got no answer before its deadline."""

    addr: Addr
    method: bytes
    #: The id we expected at `addr` (None for bootstrap addresses and plain pings).
    node_id: bytes | None = None


@final
@dataclass(frozen=True, slots=True)
class BootstrapFinished:
    """Bootstrap reached the network; queued lookups have started."""

    nodes: int


@final
@dataclass(frozen=True, slots=True)
class ExternalAddressVoted:
    """Enough responders agree (BEP 42 ``ip``) that this is our external IP.

    `id_valid` says whether our node ID satisfies BEP 42 for it. If not, the node
    adopts a valid one itself when ``DHTConfig.regenerate_id`` is set; otherwise the
    application may call ``DHTNode.change_id(bep42.node_id_for_ip(ip, rng), now)``.
    """

    ip: str
    id_valid: bool


@final
@dataclass(frozen=True, slots=True)
class OtherFamilyNodes:
    """Contacts of the other address family from a reply (BEP 32 ``want``), for the
    sibling engine whose table is short of nodes: how a dual-stack node joins the IPv6
    DHT through IPv4 routers. The driver hands them to the sibling (ping or bootstrap).
    """

    nodes: tuple[NodeInfo, ...]


DHTEvent: TypeAlias = (
    PeersFound
    | LookupFinished
    | AnnounceSent
    | AnnounceReceived
    | NodeAdded
    | QueryTimedOut
    | BootstrapFinished
    | ExternalAddressVoted
    | OtherFamilyNodes
)
