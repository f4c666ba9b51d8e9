"""`open_dht_node`: a running DHT node as an async context manager (the library API).

    async with open_dht_node(bind=("127.0.0.1", 0), bootstrap=[("127.0.0.1", 6881)]) as dht:
        async for peer in dht.get_peers(info_hash):
            ...
        await dht.announce(info_hash, port=6881)

The node runs in a nursery owned by the context manager: leaving the block cancels it,
which saves the state file (if any) and closes the socket.
"""

from __future__ import annotations

import logging
import random
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import trio

from .dht.events import ItemFound, ItemStored, SampleReceived, ScrapeEstimate
from .dht.node import DHTConfig, DHTNode
from .ids import random_id
from .net.dht_service import DHTService, DHTServiceStats, load_state

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .dht.bep44 import Item
    from .dht.compact import Addr
    from .dht.events import LookupResult
    from .dht.lookup import LookupStats
    from .dht.node import DHTStats as NodeStats
    from .net.dht_service import _Waiter

__all__ = ["DEFAULT_BOOTSTRAP", "DHT", "DHTClientStats", "PeerSearch", "open_dht_node", "resolve"]

log = logging.getLogger(__name__)

#: Well-known public routers, for the command line when the user names none. The library
#: never uses them implicitly: `open_dht_node` bootstraps only from what it is given.
DEFAULT_BOOTSTRAP: Final = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
)


@dataclass(frozen=True, slots=True)
class DHTClientStats:
    """Everything `DHT.statistics()` reports: socket counters plus the engine's own."""

    service: DHTServiceStats
    node: NodeStats


@final
class PeerSearch:
    """``async for peer in dht.get_peers(info_hash)``: peers as the lookup finds them.

    A class rather than an async generator so that breaking out of the loop early
    leaves nothing to finalise; the lookup simply runs to its end inside the engine.
    `statistics` holds the lookup's `LookupStats` once iteration has finished, and
    `hops` the hop at which each peer yielded so far was found (the lookup's seeds are
    hop 1), for debugging tools.
    """

    def __init__(self, service: DHTService, info_hash: bytes) -> None:
        self._service = service
        self._info_hash = bytes(info_hash)
        self._waiter: _Waiter | None = None
        self._pending: list[Addr] = []
        self._seen: set[Addr] = set()
        self.statistics: LookupStats | None = None
        self.hops: dict[Addr, int | None] = {}

    def __aiter__(self) -> PeerSearch:
        return self

    async def __anext__(self) -> Addr:
        if self._waiter is None:
            lookup_id = self._service.node.get_peers(self._info_hash, trio.current_time())
            self._waiter = self._service.register(lookup_id)
        waiter = self._waiter
        while not self._pending:
            if waiter.events:
                for event in waiter.events:
                    fresh = [p for p in event.peers if p not in self._seen]
                    self._seen.update(fresh)
                    self._pending.extend(fresh)
                    self.hops.update(dict.fromkeys(fresh, event.hops))
                waiter.events.clear()
            elif waiter.done:
                self.statistics = waiter.finished.stats if waiter.finished else None
                raise StopAsyncIteration
            else:
                await waiter.lot.park()
        await trio.lowlevel.checkpoint()
        return self._pending.pop(0)


@final
class DHT:
    """A running DHT node (obtained from `open_dht_node`)."""

    def __init__(self, service: DHTService) -> None:
        self._service = service

    @property
    def address(self) -> Addr:
        address = self._service.address
        assert address is not None, "the service is started before DHT objects exist"
        return address

    @property
    def node_id(self) -> bytes:
        return self._service.node.node_id

    @property
    def service(self) -> DHTService:
        return self._service

    def get_peers(self, info_hash: bytes) -> PeerSearch:
        """Look up peers for `info_hash`; iterate the result to receive them as they arrive."""
        return PeerSearch(self._service, info_hash)

    async def announce(
        self, info_hash: bytes, port: int, *, implied_port: bool = False, seed: bool = False
    ) -> LookupStats | None:
        """Announce that we have peers for `info_hash` on TCP `port` to the closest nodes.

        Returns when the announce is done (the get_peers lookup plus the announce_peer
        queries), with the lookup's statistics. `seed`: we have the whole torrent (BEP 33).
        """
        lookup_id = self._service.node.announce(
            info_hash, port, trio.current_time(), implied_port=implied_port, seed=seed
        )
        waiter = self._service.register(lookup_id, announce=True)
        await waiter.wait_done()
        return waiter.finished.stats if waiter.finished else None

    async def get_item(self, target: bytes, *, salt: bytes = b"") -> ItemFound:
        """BEP 44 get: the valid item with the highest seq among the closest nodes.

        `salt` is needed for a mutable item: replies are verified against it.
        """
        result = await self._run(self._service.node.get_item(target, trio.current_time(), salt))
        assert isinstance(result, ItemFound)
        return result

    async def put_item(self, item: Item) -> ItemStored:
        """BEP 44 put to the closest nodes; returns when each has answered or timed out."""
        result = await self._run(self._service.node.put_item(item, trio.current_time()))
        assert isinstance(result, ItemStored)
        return result

    async def scrape(self, info_hash: bytes) -> ScrapeEstimate:
        """BEP 33 scrape: estimated seeds and peers from the closest nodes' filters."""
        result = await self._run(self._service.node.scrape(info_hash, trio.current_time()))
        assert isinstance(result, ScrapeEstimate)
        return result

    async def sample(
        self, addr: Addr, target: bytes, node_id: bytes | None = None
    ) -> SampleReceived:
        """One BEP 51 sample_infohashes query (``samples`` is None without an answer)."""
        lookup_id = self._service.node.sample(addr, target, trio.current_time(), node_id)
        result = await self._run(lookup_id)
        assert isinstance(result, SampleReceived)
        return result

    async def _run(self, lookup_id: int) -> LookupResult | None:
        waiter = self._service.register(lookup_id)
        await waiter.wait_done()
        return waiter.finished.result if waiter.finished else None

    async def wait_bootstrapped(self) -> None:
        """Wait until joining the network succeeded (lookups queue until then anyway)."""
        await self._service.wait_bootstrapped()

    def add_nodes(self, addrs: Sequence[Addr]) -> None:
        """Bootstrap from more nodes (IP addresses, already resolved)."""
        self._service.add_nodes(addrs)

    async def save_state(self) -> None:
        await self._service.save_state()

    def statistics(self) -> DHTClientStats:
        return DHTClientStats(
            self._service.statistics(), self._service.node.statistics(trio.current_time())
        )


async def resolve(hosts: Sequence[tuple[str, int]]) -> list[Addr]:
    """Resolve (host, port) pairs to IPv4 addresses; names that do not resolve are skipped."""
    out: list[Addr] = []
    for host, port in hosts:
        try:
            infos = await trio.socket.getaddrinfo(
                host, port, family=trio.socket.AF_INET, type=trio.socket.SOCK_DGRAM
            )
        except OSError as exc:
            log.warning("cannot resolve DHT bootstrap node %s:%d: %s", host, port, exc)
            continue
        out.extend((str(info[4][0]), int(info[4][1])) for info in infos[:1])
    return out


@asynccontextmanager
async def open_dht_node(
    bind: tuple[str, int] = ("127.0.0.1", 0),
    bootstrap: Sequence[tuple[str, int]] = (),
    state_file: Path | str | None = None,
    read_only: bool = False,
    *,
    node_id: bytes | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[DHT]:
    """Run a DHT node on a UDP socket for the duration of the ``async with`` block.

    Args:
        bind: local address; port 0 picks a free port (read it from ``dht.address``).
        bootstrap: (host, port) nodes to join through. Nothing is used by default.
        state_file: JSON file with our node ID and good nodes: read at start (a warm
            start skips the bootstrap routers), written periodically and on exit.
        read_only: BEP 43 read-only node (we query, we do not answer).
        node_id, rng: override the ID and the randomness (tests).

    Raises:
        DecodeError: the state file exists but is corrupt.
        OSError: the address cannot be bound.
    """
    rng = rng if rng is not None else random.SystemRandom()
    path = Path(state_file) if state_file is not None else None
    state = await trio.to_thread.run_sync(load_state, path) if path is not None else None
    if node_id is None:
        node_id = state[0] if state is not None else random_id(rng)
    # The rng also draws token secrets and transaction ids, so outside tests it must be
    # a CSPRNG (SystemRandom), or off-path attackers could forge tokens and replies.
    node = DHTNode(node_id, rng, trio.current_time(), DHTConfig(read_only=read_only))
    service = DHTService(node, bind=bind, state_file=path)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        warm = [addr for _, addr in state[1]] if state is not None else []
        seeds = warm + await resolve(bootstrap)
        if seeds:
            service.add_nodes(seeds)
        try:
            yield DHT(service)
        finally:
            nursery.cancel_scope.cancel()
