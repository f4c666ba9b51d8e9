"""`open_dht_node`: a running DHT node as an async context manager (the library API).

    async with open_dht_node(bind=("127.0.0.1", 0), bootstrap=[("127.0.0.1", 6881)]) as dht:
        async for peer in dht.get_peers(info_hash):
            ...
        await dht.announce(info_hash, port=6881)

The node runs in a nursery owned by the context manager: leaving the block cancels it,
which saves the state file (if any) and closes the socket.

Dual stack (BEP 32): ``bind`` may list one address per family, e.g.
``[("127.0.0.1", 0), ("::1", 0)]``. Each gets its own `DHTService` and `DHTNode`
(separate routing tables, as the IPv4 and IPv6 DHTs are separate networks), with the
same node ID and, when the port is 0, the same port number if it is free (BEP 5's
``port`` message can name only one). The engines are linked as siblings so each
answers ``want`` for both families; lookups and announces run on every family and
their peers are merged; one state file holds the nodes of both tables.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import random
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import trio

from .dht.bep44 import REPUT_INTERVAL
from .dht.events import ItemFound, ItemStored, SampleReceived, ScrapeEstimate
from .dht.jobs import combine_found, combine_stored
from .dht.node import DHTConfig, DHTNode
from .dht.scrape import combine_estimates
from .ids import random_id
from .net.dht_service import DHTService, DHTServiceStats, socket_family
from .net.dht_state import load_family_ids, load_state
from .net.item_keeper import ItemKeeper
from .net.peer_search import PeerSearch
from .net.socks_udp import ProxyRelay, ProxyRelayStats, RelayedSocket, RelayState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .dht.bep44 import Item
    from .dht.compact import Addr
    from .dht.events import LookupResult
    from .dht.lookup import LookupStats
    from .dht.node import DHTStats as NodeStats
    from .ipfilter import IPFilter
    from .socks5 import ProxyURL

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DHT",
    "REPUT_INTERVAL",
    "DHTClientStats",
    "ItemKeeper",
    "PeerSearch",
    "open_dht_node",
    "resolve",
]

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
    #: The other address families of a dual-stack node (`service`/`node` are the first).
    others: tuple[DHTClientStats, ...] = ()
    #: The SOCKS5 UDP association when the node runs through a proxy (its state says
    #: "waiting for proxy" while the proxy is away), else None.
    proxy: ProxyRelayStats | None = None

    @property
    def families(self) -> tuple[DHTClientStats, ...]:
        """The statistics of every address family, in bind order (this one first)."""
        return (self, *self.others)

    @property
    def nodes(self) -> int:
        """Nodes in the routing tables of every address family (what "DHT nodes" shows)."""
        return sum(f.node.routing.nodes for f in self.families)


@final
class DHT:
    """A running DHT node (obtained from `open_dht_node`): one service per address family."""

    def __init__(
        self, service: DHTService | Sequence[DHTService], relay: ProxyRelay | None = None
    ) -> None:
        self._services = (service,) if isinstance(service, DHTService) else tuple(service)
        if not self._services:
            raise ValueError("a DHT needs at least one service")
        #: The SOCKS5 UDP association every datagram goes through (`open_dht_node`'s
        #: ``proxy``), or None when the node talks to the network directly.
        self.relay = relay

    @property
    def address(self) -> Addr:
        """The first bound address (the one to advertise when only one fits)."""
        address = self._services[0].address
        assert address is not None, "the service is started before DHT objects exist"
        return address

    @property
    def addresses(self) -> tuple[Addr, ...]:
        """Every bound address, one per address family, in bind order."""
        return tuple(s.address for s in self._services if s.address is not None)

    @property
    def node_id(self) -> bytes:
        return self._services[0].node.node_id

    @property
    def service(self) -> DHTService:
        """The first family's service."""
        return self._services[0]

    @property
    def services(self) -> tuple[DHTService, ...]:
        """One service per address family; each owns one UDP socket (see `service_for`)."""
        return self._services

    def service_for(self, ip: str) -> DHTService | None:
        """The service whose socket can reach `ip` (same address family), if any.

        This is also how another protocol finds the socket to share: uTP registers a
        datagram handler on it and sends with `DHTService.send_datagram`.
        """
        family = socket_family(ip)
        return next((s for s in self._services if s.family == family), None)

    def get_peers(self, info_hash: bytes, *, noseed: bool = False) -> PeerSearch:
        """Look up peers for `info_hash`; iterate the result to receive them as they arrive.

        `noseed` (BEP 33): we seed, so ask nodes to leave seeds out.
        """
        return PeerSearch(self._services, info_hash, noseed=noseed)

    async def announce(
        self, info_hash: bytes, port: int, *, implied_port: bool = False, seed: bool = False
    ) -> LookupStats | None:
        """Announce that we have peers for `info_hash` on TCP `port` to the closest nodes,
        on every address family.

        Returns when the announces are done (the get_peers lookups plus the
        announce_peer queries), with the first family's lookup statistics. `seed`: we
        have the whole torrent (BEP 33).
        """
        now = trio.current_time()
        waiters = []
        for s in self._services:
            lookup_id = s.node.announce(info_hash, port, now, implied_port=implied_port, seed=seed)
            waiters.append(s.register(lookup_id, announce=True))
        for waiter in waiters:
            await waiter.wait_done()
        first = waiters[0].finished
        return first.stats if first else None

    async def get_item(self, target: bytes, *, salt: bytes = b"") -> ItemFound:
        """BEP 44 get: the valid item with the highest seq among the closest nodes of
        every address family (one lookup per family, run together).

        `salt` is needed for a mutable item: replies are verified against it.
        """
        now = trio.current_time()
        results = await self._run_all([s.node.get_item(target, now, salt) for s in self._services])
        found = [r for r in results if isinstance(r, ItemFound)]
        return found[0] if len(found) == 1 else combine_found(found)

    async def put_item(self, item: Item, *, cas: int | None = None) -> ItemStored:
        """BEP 44 put to the closest nodes of every address family; returns when each
        has answered or timed out (the counts of the families add up).

        `cas` (mutable items): the seq read before this put; nodes holding another seq
        refuse with 301 (`ItemStored.errors`): re-read and try again.
        """
        now = trio.current_time()
        results = await self._run_all([s.node.put_item(item, now, cas) for s in self._services])
        stored = [r for r in results if isinstance(r, ItemStored)]
        return stored[0] if len(stored) == 1 else combine_stored(stored)

    def keep_item(
        self, item: Item, *, interval: float = REPUT_INTERVAL, cas: int | None = None
    ) -> ItemKeeper:
        """Put `item` now and again every `interval` seconds, for as long as you iterate:
        ``async for stored in dht.keep_item(item): ...`` (see `ItemKeeper`).

        BEP 44 items expire about 2 hours after their last put, so an item meant to
        stay must be re-put; the default is the BEP's hourly. `cas` goes with the
        first put only.
        """
        return ItemKeeper(self, item, interval, cas)

    async def scrape(self, info_hash: bytes) -> ScrapeEstimate:
        """BEP 33 scrape: estimated seeds and peers from the closest nodes' filters, of
        every address family (their filters are ORed, so an IP counts once)."""
        now = trio.current_time()
        results = await self._run_all([s.node.scrape(info_hash, now) for s in self._services])
        found = [r for r in results if isinstance(r, ScrapeEstimate)]
        return found[0] if len(found) == 1 else combine_estimates(found)

    async def sample(
        self, addr: Addr, target: bytes, node_id: bytes | None = None
    ) -> SampleReceived:
        """One BEP 51 sample_infohashes query (``samples`` is None without an answer),
        sent from the socket of `addr`'s address family.

        Raises:
            ValueError: we run no socket of that family.
        """
        service = self.service_for(addr[0])
        if service is None:
            raise ValueError(f"no DHT socket of the address family of {addr[0]}")
        lookup_id = service.node.sample(addr, target, trio.current_time(), node_id)
        (result,) = await self._run_all([lookup_id], [service])
        assert isinstance(result, SampleReceived)
        return result

    async def _run_all(
        self, lookup_ids: Sequence[int], services: Sequence[DHTService] | None = None
    ) -> list[LookupResult | None]:
        """The results of lookups started on `services` (default: every family, in
        order), which run together: every waiter is registered before the first wait."""
        pairs = zip(self._services if services is None else services, lookup_ids, strict=True)
        waiters = [service.register(lookup_id) for service, lookup_id in pairs]
        for waiter in waiters:
            await waiter.wait_done()
        return [w.finished.result if w.finished else None for w in waiters]

    async def wait_bootstrapped(self) -> None:
        """Wait until joining the network succeeded on some address family (lookups
        queue until then anyway)."""
        if len(self._services) == 1:
            await self._services[0].wait_bootstrapped()
            return
        async with trio.open_nursery() as nursery:

            async def wait(service: DHTService) -> None:
                await service.wait_bootstrapped()
                nursery.cancel_scope.cancel()

            for service in self._services:
                nursery.start_soon(wait, service)

    def add_nodes(self, addrs: Sequence[Addr]) -> None:
        """Bootstrap from more nodes (IP addresses, already resolved); each goes to the
        service of its address family, and those of a family we do not run are ignored."""
        for service in self._services:
            mine = [a for a in addrs if socket_family(a[0]) == service.family]
            if mine:
                service.add_nodes(mine)

    async def save_state(self) -> None:
        await self._services[0].save_state()

    def set_ip_filter(self, ip_filter: IPFilter | None) -> None:
        """Apply (or replace, or with None remove) the IP filter in every family's node
        at once: blocked nodes leave the routing tables, get no answers and are never
        asked (`DHTNode.set_ip_filter`)."""
        for service in self._services:
            service.node.set_ip_filter(None if ip_filter is None else ip_filter.blocks)

    def statistics(self) -> DHTClientStats:
        now = trio.current_time()
        each = [DHTClientStats(s.statistics(), s.node.statistics(now)) for s in self._services]
        proxy = self.relay.statistics() if self.relay is not None else None
        return DHTClientStats(each[0].service, each[0].node, tuple(each[1:]), proxy)


async def resolve(
    hosts: Sequence[tuple[str, int]], family: socket.AddressFamily = socket.AF_INET
) -> list[Addr]:
    """Resolve (host, port) pairs to addresses of `family`; names that do not resolve
    are skipped, and IP literals of the other family are left out silently."""
    out: list[Addr] = []
    for host, port in hosts:
        literal = _ip_literal(host)
        if literal is not None:
            if socket_family(literal) == family:
                out.append((literal, port))
            continue
        try:
            infos = await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        except OSError as exc:
            # A name without an AAAA record is normal; only IPv4 failures are worth a warning.
            level = logging.WARNING if family == socket.AF_INET else logging.DEBUG
            log.log(level, "cannot resolve DHT bootstrap node %s:%d: %s", host, port, exc)
            continue
        out.extend((str(info[4][0]), int(info[4][1])) for info in infos[:1])
    return out


def _literals(hosts: Sequence[tuple[str, int]], family: socket.AddressFamily) -> list[Addr]:
    """The IP literals of `family` among `hosts` (`resolve` without the names)."""
    out = []
    for host, port in hosts:
        literal = _ip_literal(host)
        if literal is not None and socket_family(literal) == family:
            out.append((literal, port))
    return out


async def _bootstrap_by_name(
    relay: ProxyRelay,
    service: DHTService,
    seeds: list[Addr],
    hosts: Sequence[tuple[str, int]],
    rng: random.Random,
) -> None:
    """Bootstrap through the named routers too, resolved by the proxy (`ProxyRelay.resolve`).

    The names are probed one after the other in the background, so that a router that
    does not answer delays nothing; then the DHT bootstraps from all that answered.
    """
    found = list(seeds)
    for host, port in hosts:
        if _ip_literal(host) is None:
            addr = await relay.resolve(host, port, service.node.node_id, rng)
            if addr is not None and addr not in found:
                found.append(addr)
    if len(found) > len(seeds):
        service.add_nodes(found)


async def _rejoin_after_outages(relay: ProxyRelay, service: DHTService) -> None:
    """Bootstrap again each time the proxy comes back.

    While it was away every query timed out, so the table may hold only failed nodes
    and the engine, once bootstrapped, does not rejoin on its own.
    """
    while True:
        await relay.wait_state(RelayState.WAITING)
        await relay.wait_state(RelayState.UP)
        log.info("proxy is back: the DHT joins again")
        # The bootstrap lookup is seeded with the table's closest nodes as well.
        service.add_nodes(service.node.bootstrap_addrs)


def _ip_literal(host: str) -> str | None:
    """`host` as a normalised IP literal (``[::1]`` → ``::1``), or None for a name."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _binds(bind: Addr | Sequence[Addr]) -> list[Addr]:
    """One (host, port) or a list of them, at most one per address family."""
    binds: list[Addr] = []
    items: Sequence[object] = [bind] if isinstance(bind[0], str) else bind
    for item in items:
        match item:
            case (str() as host, int() as port):
                binds.append((host, port))
            case _:
                raise TypeError(f"a bind address is a (host, port) pair, not {item!r}")
    families = [socket_family(host) for host, _ in binds]
    if not binds or len(set(families)) != len(families):
        raise ValueError("bind takes one address per address family (IPv4, IPv6)")
    return binds


@asynccontextmanager
async def open_dht_node(
    bind: Addr | Sequence[Addr] = ("127.0.0.1", 0),
    bootstrap: Sequence[tuple[str, int]] = (),
    state_file: Path | str | None = None,
    read_only: bool = False,
    *,
    node_id: bytes | None = None,
    rng: random.Random | None = None,
    proxy: ProxyURL | None = None,
    proxy_bind_host: str = "",
    anonymous: bool = False,
    ip_filter: IPFilter | None = None,
) -> AsyncIterator[DHT]:
    """Run a DHT node on a UDP socket (one per address family) for the ``async with`` block.

    Args:
        bind: local address, or a list of one address per family for a dual-stack node
            (BEP 32); port 0 picks a free port (read it from ``dht.address``), the same
            number for every family when it is free there too.
        bootstrap: (host, port) nodes to join through, resolved for every family bound.
            Nothing is used by default.
        state_file: JSON file with our node ID and good nodes of every family: read at
            start (a warm start skips the bootstrap routers), written periodically and
            on exit.
        read_only: BEP 43 read-only node (we query, we do not answer).
        ip_filter: addresses the node never talks to (`DHT.set_ip_filter` swaps it),
            bootstrap and state-file nodes included.
        node_id, rng: override the ID and the randomness (tests). A given `node_id`
            is kept; otherwise each family's engine adopts a BEP 42 ID for its
            external address once enough replies agree on it.
        proxy: run the node through this SOCKS5 proxy's UDP relay (RFC 1928 UDP
            ASSOCIATE, `shoal.net.socks_udp`): every datagram goes to the relay, none
            goes direct even while the proxy is away (``statistics().proxy`` then says
            "waiting for proxy"), and bootstrap names are resolved by the proxy. Only
            one address of `bind` is used: the first of the proxy's family.
        proxy_bind_host: local address of the connection to the proxy ("" for any).
        anonymous: send no client version (KRPC ``v``), as anonymous mode sends no
            BEP 10 ``v``: nothing in our messages names shoal.

    Raises:
        ValueError: two bind addresses of one family.
        DecodeError: the state file exists but is corrupt.
        OSError: an address cannot be bound.
    """
    binds = _binds(bind)
    if proxy is not None:  # one socket, of the proxy's family (a name counts as IPv4)
        family = socket_family(proxy.host)
        binds = [next((b for b in binds if socket_family(b[0]) == family), binds[0])]
    rng = rng if rng is not None else random.SystemRandom()
    path = Path(state_file) if state_file is not None else None
    state = await trio.to_thread.run_sync(load_state, path) if path is not None else None
    family_ids = {} if path is None else await trio.to_thread.run_sync(load_family_ids, path)
    given_id = node_id is not None
    if node_id is None:
        node_id = state[0] if state is not None else random_id(rng)
    # The rng also draws token secrets and transaction ids, so outside tests it must be
    # a CSPRNG (SystemRandom), or off-path attackers could forge tokens and replies.
    now = trio.current_time()
    nodes = []
    for host, _ in binds:
        v6 = socket_family(host) == socket.AF_INET6
        # BEP 42: each family's engine adopts an ID derived from its own external
        # address once replies agree on it (`regenerate_id`), and the state file keeps
        # each family's ID. Exempt (private, loopback) addresses keep any ID.
        own = None if given_id else family_ids.get("ipv6" if v6 else "ipv4")
        config = DHTConfig(read_only=read_only, ipv6=v6, regenerate_id=not given_id)
        if anonymous:
            config = dataclasses.replace(config, version=None)
        nodes.append(DHTNode(own or node_id, rng, now, config))
    for node in nodes:
        node.set_ip_filter(None if ip_filter is None else ip_filter.blocks)
    if len(nodes) == 2:
        nodes[0].set_sibling(nodes[1])
        nodes[1].set_sibling(nodes[0])
    failed: OSError | None = None
    async with trio.open_nursery() as nursery:
        relay: ProxyRelay | None = None
        try:
            if proxy is not None:
                relay = ProxyRelay(RelayedSocket(socket_family(binds[0][0])), proxy)
                relay.bind_host = proxy_bind_host
                services = [DHTService(nodes[0], bind=binds[0], state_file=path, sock=relay.sock)]
                await nursery.start(services[0].serve)
                await nursery.start(relay.run)
            else:
                services = await _start_services(nursery, nodes, binds, path)
        except OSError as exc:
            # Raised from here the error would leave the nursery inside an
            # ExceptionGroup; callers (the client's port fallback) expect the OSError.
            failed = exc
            nursery.cancel_scope.cancel()
        else:
            dht = DHT(services, relay)
            warm = [addr for _, addr in state[1]] if state is not None else []
            for service in services:
                seeds = [a for a in warm if socket_family(a[0]) == service.family]
                if relay is not None:  # names go to the proxy, never to our resolver
                    seeds += _literals(bootstrap, service.family)
                    nursery.start_soon(_bootstrap_by_name, relay, service, seeds, bootstrap, rng)
                    nursery.start_soon(_rejoin_after_outages, relay, service)
                else:
                    seeds += await resolve(bootstrap, service.family)
                if seeds:
                    service.add_nodes(seeds)
            try:
                yield dht
            finally:
                nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed


async def _start_services(
    nursery: trio.Nursery, nodes: Sequence[DHTNode], binds: Sequence[Addr], path: Path | None
) -> list[DHTService]:
    services: list[DHTService] = []
    for node, bind in zip(nodes, binds, strict=True):
        if not services:  # the first saves the state file, the sibling's nodes too
            service = DHTService(node, bind=bind, state_file=path)
            await nursery.start(service.serve)
        else:
            service = await _start_same_port(nursery, node, bind, services[0])
        services.append(service)
    if len(services) == 2:  # each hands the other the contacts of its family (BEP 32)
        services[0].set_sibling(services[1])
        services[1].set_sibling(services[0])
    return services


async def _start_same_port(
    nursery: trio.Nursery, node: DHTNode, bind: Addr, first: DHTService
) -> DHTService:
    """Start a service for `node`; with port 0, on the first family's port number if free."""
    host, port = bind
    if port == 0 and first.address is not None:
        service = DHTService(node, bind=(host, first.address[1]))
        try:
            await nursery.start(service.serve)
        except OSError:
            log.info("UDP port %d is taken on %s; using another one", first.address[1], host)
        else:
            return service
    service = DHTService(node, bind=bind)
    await nursery.start(service.serve)
    return service
