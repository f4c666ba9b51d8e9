"""`PeerSearch`: a DHT get_peers lookup as an async iterator (what `DHT.get_peers` returns).

It registers one lookup per address family with its `DHTService` and yields each peer
once, as the engines find them, parking on the services' waiters in between. Kept
apart from ``dht_client.py`` (which re-exports it) so that module stays about opening
and running the node; it is the counterpart of `net/item_keeper.py`'s `ItemKeeper`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

from .dht_service import DHTService

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..dht.compact import Addr
    from ..dht.lookup import LookupStats
    from .dht_service import _Waiter

__all__ = ["PeerSearch"]


@final
class PeerSearch:
    """``async for peer in dht.get_peers(info_hash)``: peers as the lookup finds them.

    A class rather than an async generator so that breaking out of the loop early
    leaves nothing to finalise; the lookup simply runs to its end inside the engine.
    A dual-stack node runs one lookup per address family and merges their peers.
    `statistics` holds the first family's `LookupStats` once iteration has finished
    (`all_statistics` every family's, in bind order), and `hops` the hop at which each
    peer yielded so far was found (the lookup's seeds are hop 1), for debugging tools.
    """

    def __init__(
        self,
        services: DHTService | Sequence[DHTService],
        info_hash: bytes,
        *,
        noseed: bool = False,
    ) -> None:
        self._services = (services,) if isinstance(services, DHTService) else tuple(services)
        self._info_hash = bytes(info_hash)
        self._noseed = noseed
        self._waiters: list[_Waiter] | None = None
        self._pending: list[Addr] = []
        self._seen: set[Addr] = set()
        self.statistics: LookupStats | None = None
        self.all_statistics: tuple[LookupStats | None, ...] = ()
        self.hops: dict[Addr, int | None] = {}

    def __aiter__(self) -> PeerSearch:
        return self

    async def __anext__(self) -> Addr:
        if self._waiters is None:
            now = trio.current_time()
            self._waiters = [
                service.register(service.node.get_peers(self._info_hash, now, noseed=self._noseed))
                for service in self._services
            ]
        waiters = self._waiters
        while not self._pending:
            if any(w.events for w in waiters):
                for waiter in waiters:
                    self._take(waiter)
            elif all(w.done for w in waiters):
                self.all_statistics = tuple(
                    w.finished.stats if w.finished else None for w in waiters
                )
                self.statistics = self.all_statistics[0]
                raise StopAsyncIteration
            else:
                await _park_any(waiters)
        await trio.lowlevel.checkpoint()
        return self._pending.pop(0)

    def _take(self, waiter: _Waiter) -> None:
        for event in waiter.events:
            fresh = [p for p in event.peers if p not in self._seen]
            self._seen.update(fresh)
            self._pending.extend(fresh)
            self.hops.update(dict.fromkeys(fresh, event.hops))
        waiter.events.clear()


async def _park_any(waiters: Sequence[_Waiter]) -> None:
    """Sleep until any of `waiters` has news (events or done)."""
    pending = [w for w in waiters if not w.done]
    if len(pending) == 1:
        await pending[0].lot.park()
        return
    async with trio.open_nursery() as nursery:

        async def park(waiter: _Waiter) -> None:
            await waiter.lot.park()
            nursery.cancel_scope.cancel()

        for waiter in pending:
            nursery.start_soon(park, waiter)
