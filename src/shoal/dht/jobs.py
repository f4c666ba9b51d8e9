"""The node engine's bookkeeping records: transactions, lookup jobs, and the per-job
accumulators of the BEP 44 get/put and BEP 33 scrape lookups.

Theory of operation
-------------------
`DHTNode` runs every lookup as a *job*: a kind, a target and, once started, a
`Lookup`. The BEP 5 kinds only need the lookup's closest nodes and tokens; the
extension kinds also fold each reply into an accumulator kept here:

* `ItemSearch` (BEP 44 get): keeps the valid item with the highest ``seq``. An
  immutable value must hash to the target; a mutable one must carry a key that
  hashes (with the salt) to the target and a valid signature. Anything else is
  ignored, as the BEP says ("the response SHOULD be considered invalid").
* `PutProgress` (BEP 44 put): after the get lookup, the item is put to the k
  closest token holders; the job finishes when each has answered or timed out.
* `scrape.ScrapeTally` (BEP 33): filters ORed over every node that answered.

Single queries (BEP 51 ``sample_infohashes``) are not lookups: they are a
transaction whose reply becomes the job's result directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .bep44 import Item, immutable_target, mutable_target, verify
from .events import ItemFound, ItemStored

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .compact import Addr
    from .krpc_ext import ResponseExt
    from .lookup import Lookup
    from .scrape import ScrapeTally

__all__ = [
    "ItemSearch",
    "JobKind",
    "LookupJob",
    "Purpose",
    "PutProgress",
    "Txn",
    "combine_found",
    "combine_stored",
]


class Purpose(enum.Enum):
    """Why a transaction was sent: decides what its reply, error or timeout means."""

    PING = "ping"
    LOOKUP = "lookup"
    ANNOUNCE = "announce"
    PUT = "put"
    SAMPLE = "sample"


@dataclass(slots=True)
class Txn:
    method: bytes
    purpose: Purpose
    sent_at: float
    node_id: bytes | None = None
    lookup_id: int | None = None
    #: Sent a second time (then the reply gives no RTT sample).
    resent: bool = False


class JobKind(enum.Enum):
    FIND_NODE = "find_node"
    GET_PEERS = "get_peers"
    ANNOUNCE = "announce"
    BOOTSTRAP = "bootstrap"
    REFRESH = "refresh"
    GET_ITEM = "get_item"  # BEP 44
    PUT_ITEM = "put_item"  # BEP 44: a get lookup for tokens, then put
    SCRAPE = "scrape"  # BEP 33


#: Kinds whose lookup sends get_peers (and so collects tokens and values).
GET_PEERS_KINDS = frozenset((JobKind.GET_PEERS, JobKind.ANNOUNCE, JobKind.SCRAPE))
#: Kinds whose lookup sends BEP 44 get.
ITEM_KINDS = frozenset((JobKind.GET_ITEM, JobKind.PUT_ITEM))


@dataclass(slots=True)
class LookupJob:
    job: JobKind
    target: bytes
    lookup: Lookup | None = None  # None while queued (bootstrap or max_lookups)
    wake: float | None = None
    port: int = 0
    implied_port: bool = False
    seed: bool = False  # BEP 33 announce flag
    noseed: bool = False  # BEP 33: our get_peers ask for non-seeds only
    search: ItemSearch | None = None
    item: Item | None = None  # what a PUT_ITEM job stores
    cas: int | None = None  # BEP 44 ``cas`` of a PUT_ITEM job's puts
    tally: ScrapeTally | None = None


class ItemSearch:
    """The best valid item among a BEP 44 get lookup's replies (see the module doc)."""

    def __init__(self, target: bytes, salt: bytes = b"") -> None:
        self.target = target
        self.salt = salt
        self.best: Item | None = None
        self.count = 0

    def on_reply(self, ext: ResponseExt | None) -> None:
        if ext is None or ext.value is None:
            return
        item = self._valid(ext, ext.value)
        if item is None:
            return
        best = self.best
        if best is None or item.seq > best.seq:
            self.best, self.count = item, 1
        elif item.seq == best.seq and item.value == best.value:
            self.count += 1

    def _valid(self, ext: ResponseExt, value: bytes) -> Item | None:
        if ext.key is None:
            return Item(value) if immutable_target(value) == self.target else None
        if ext.seq is None or ext.sig is None:
            return None
        if mutable_target(ext.key, self.salt) != self.target:
            return None
        if not verify(ext.key, ext.sig, value, ext.seq, self.salt):
            return None
        return Item(value, ext.key, self.salt, ext.seq, ext.sig)

    def result(self) -> ItemFound:
        return ItemFound(self.best, self.count)


@dataclass(slots=True)
class PutProgress:
    """The put queries of one BEP 44 put job, until each is answered or timed out."""

    target: bytes
    closest: tuple[tuple[bytes, Addr], ...]
    pending: set[Addr]
    stored: int = 0
    errors: list[int] = field(default_factory=list)
    timeouts: int = 0

    def on_outcome(self, addr: Addr, error: int | None = None, timed_out: bool = False) -> None:
        if addr not in self.pending:
            return
        self.pending.discard(addr)
        if timed_out:
            self.timeouts += 1
        elif error is not None:
            self.errors.append(error)
        else:
            self.stored += 1

    def result(self) -> ItemStored:
        return ItemStored(self.stored, tuple(self.errors), self.timeouts)


def combine_found(results: Sequence[ItemFound]) -> ItemFound:
    """One get result from the lookups of several address families (BEP 32).

    Each result holds an item that already verified, so the rule is `ItemSearch`'s:
    the highest seq wins, and nodes that returned that same item add up.
    """
    best: Item | None = None
    nodes = 0
    for found in results:
        item = found.item
        if item is None:
            continue
        if best is None or item.seq > best.seq:
            best, nodes = item, found.nodes
        elif item.seq == best.seq and item.value == best.value:
            nodes += found.nodes
    return ItemFound(best, nodes)


def combine_stored(results: Sequence[ItemStored]) -> ItemStored:
    """One put result from the puts of several address families: the counts add up."""
    errors = tuple(code for r in results for code in r.errors)
    return ItemStored(sum(r.stored for r in results), errors, sum(r.timeouts for r in results))
