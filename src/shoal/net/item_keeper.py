"""`ItemKeeper`: a BEP 44 item put again every hour, for as long as the caller iterates.

BEP 44 "Expiration": items "MAY expire in 2 hours"; to keep them alive "they SHOULD be
re-announced once an hour". `DHT.keep_item` returns one of these; the put itself is
`DHT.put_item` (every address family), so this is only the schedule, driven by
``trio.sleep_until`` and hence by whatever clock the run uses (tests use an
autojumping `MockClock`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, final

import trio

if TYPE_CHECKING:
    from ..dht.bep44 import Item
    from ..dht.events import ItemStored

__all__ = ["ItemKeeper", "Putter"]


class Putter(Protocol):
    """What the keeper puts through: `shoal.dht_client.DHT` (a protocol, so that this
    module does not import the client module that imports it)."""

    async def put_item(self, item: Item, *, cas: int | None = None) -> ItemStored: ...


@final
class ItemKeeper:
    """``async for stored in dht.keep_item(item)``: put now, then every `interval` seconds.

    Each iteration waits for the next due time (none before the first), puts the item
    and yields its `ItemStored`, until the caller stops iterating (break, or a cancel
    scope such as Ctrl-C). Due times are counted from the first put, so they do not
    drift by the length of each put. Only the first put sends `cas`: the re-puts
    refresh our own, unchanged item (equal seq and value), which BEP 44 nodes accept;
    once another writer stored a higher seq they are refused with 302, which shows in
    `ItemStored.errors`. A class, not an async generator, for the reason `PeerSearch` is.
    """

    def __init__(self, dht: Putter, item: Item, interval: float, cas: int | None) -> None:
        if not interval > 0:
            raise ValueError("the re-put interval must be positive")
        self._dht = dht
        self.item = item
        self.interval = interval
        self._cas = cas
        self._due: float | None = None
        #: Puts made so far.
        self.puts = 0

    def __aiter__(self) -> ItemKeeper:
        return self

    async def __anext__(self) -> ItemStored:
        if self._due is None:
            self._due = trio.current_time()
        else:
            await trio.sleep_until(self._due)
        self._due += self.interval
        stored = await self._dht.put_item(self.item, cas=self._cas if not self.puts else None)
        self.puts += 1
        return stored
