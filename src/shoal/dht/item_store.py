"""BEP 44 items stored on our node: capped, expiring, never downgraded.

Theory of operation
-------------------
Items live under their target (`Item.target`) in one insertion-ordered dict kept in
"last stored" order, like the peer store: the oldest entry is at the front, so both
expiry and eviction pop from the front. BEP 44 says items "MAY expire in 2 hours"
without re-announcement and should be re-put hourly, hence `ttl` = 2 h.

A ``put`` is validated (`bep44.check_item`) by the caller before it reaches `put`;
here only the rules that depend on what is stored are applied:

* a mutable item never goes back: a lower ``seq`` is refused with 302, an equal
  ``seq`` only refreshes the timer when the value is the same (a different value
  at the same ``seq`` is refused with 302 too: BEP 44 says "lower than or equal
  ... MUST reject");
* ``cas`` must equal the stored ``seq``, else 301; with nothing stored it is ignored.

Anyone can put, so `max_items` bounds memory (about 1.2 kB per item at most).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bep44 import ItemError

if TYPE_CHECKING:
    from .bep44 import Item

__all__ = ["ItemStore", "ItemStoreConfig", "ItemStoreStats"]


@dataclass(frozen=True, slots=True)
class ItemStoreConfig:
    max_items: int = 2000
    ttl: float = 2 * 60 * 60.0


@dataclass(frozen=True, slots=True)
class ItemStoreStats:
    items: int
    mutable: int
    evicted: int


class ItemStore:
    """BEP 44 storage; all time comes in as `now`."""

    def __init__(self, config: ItemStoreConfig | None = None) -> None:
        self.config = config if config is not None else ItemStoreConfig()
        # target -> (item, stored at); in last-stored order.
        self._items: dict[bytes, tuple[Item, float]] = {}
        self._evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item, now: float, cas: int | None = None) -> ItemError | None:
        """Store a validated item; returns the BEP 44 error code when refused."""
        target = item.target
        self._expire(now)
        old = self._items.get(target)
        if old is not None and item.key is not None:
            stored = old[0]
            if cas is not None and cas != stored.seq:
                return ItemError.CAS_MISMATCH
            if item.seq < stored.seq or (item.seq == stored.seq and item.value != stored.value):
                return ItemError.SEQ_TOO_LOW
        self._items.pop(target, None)
        if len(self._items) >= self.config.max_items:
            del self._items[next(iter(self._items))]
            self._evicted += 1
        self._items[target] = (item, now)
        return None

    def get(self, target: bytes, now: float) -> Item | None:
        """The live item stored under `target`, if any."""
        entry = self._items.get(target)
        if entry is None:
            return None
        if entry[1] <= now - self.config.ttl:
            self._expire(now)
            return None
        return entry[0]

    def expire(self, now: float) -> None:
        """Drop items not stored again within the ttl (call periodically)."""
        self._expire(now)

    def statistics(self) -> ItemStoreStats:
        mutable = sum(1 for item, _ in self._items.values() if item.key is not None)
        return ItemStoreStats(len(self._items), mutable, self._evicted)

    def _expire(self, now: float) -> None:
        cutoff = now - self.config.ttl
        while self._items:
            target, (_, at) = next(iter(self._items.items()))
            if at > cutoff:
                break
            del self._items[target]
