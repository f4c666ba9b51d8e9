"""Mainline DHT swarms on `SimNet`: real `DHTNode` engines, warm tables, dead addresses.

Used by ``tests/sim`` and ``tools/bench/dht_lookup.py``. A `Swarm` is a population of
node IDs and addresses of which a share is *dead* (no engine: datagrams vanish). Every
live node gets a warm routing table of k contacts per bucket drawn from the whole
population, dead ones included, just as real tables hold stale entries.

Lookups are run from a *probe*: an extra read-only node (BEP 43, so that it never
enters anyone's table and the swarm does not drift between samples) with either a warm
table or a single bootstrap address. `Swarm.run_get_peers` returns what the probe saw.
Pure like `simnet`: all randomness comes from the injected generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..dht.events import LookupFinished, PeersFound
from ..dht.node import DHTConfig, DHTNode
from ..ids import distance, random_id
from .simnet import Addr, NetConfig, SimNet, kademlia_contacts

if TYPE_CHECKING:
    from ..dht.lookup import LookupConfig, LookupStats

__all__ = ["ProbeResult", "Swarm"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe lookup. Times are seconds after the command was issued."""

    #: Seconds from ``get_peers`` (or ``find_node``) to the first PeersFound, if any.
    first_peer: float | None
    #: Seconds until LookupFinished, or None if it did not finish within the timeout.
    finished: float | None
    stats: LookupStats | None
    closest: tuple[bytes, ...]
    peers: frozenset[Addr]
    #: Datagrams the whole network carried meanwhile (queries, replies, bootstrap).
    datagrams: int


def _addr(i: int) -> Addr:
    # 10.0.0.0/8 is private: the routing table's per-/24 limits do not apply to it.
    return (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 6881)


class Swarm:
    """A simulated DHT (see the module docstring).

    Args:
        n: population size, dead nodes included.
        rng: the one source of randomness (IDs, liveness, tables, network, engines).
        dead: share of addresses that never answer.
        net_config: link behaviour.
        dht_config: configuration of every live node (default: no per-IP table limits).
        k: contacts per bucket in the warm tables (BEP 5: 8).
    """

    def __init__(
        self,
        n: int,
        rng: random.Random,
        *,
        dead: float = 0.0,
        net_config: NetConfig | None = None,
        dht_config: DHTConfig | None = None,
        k: int = 8,
    ) -> None:
        self.rng = rng
        self.k = k
        self.net = SimNet(random.Random(rng.getrandbits(64)), net_config)
        self.ids = list(dict.fromkeys(random_id(rng) for _ in range(n)))
        self.addrs = [_addr(i + 1) for i in range(len(self.ids))]
        n_dead = round(dead * len(self.ids))
        self.dead = set(rng.sample(range(len(self.ids)), n_dead))
        self.nodes: dict[Addr, DHTNode] = {}
        self._probe_seq = 0
        # The per-IP limits of the routing table cost more than everything else at build
        # time and never apply to the private addresses used here, so they are off.
        cfg = dht_config if dht_config is not None else DHTConfig(restrict_ips=False)
        tables = kademlia_contacts(self.ids, k, rng)
        for i, node_id in enumerate(self.ids):
            if i in self.dead:
                continue
            node = DHTNode(node_id, random.Random(rng.getrandbits(64)), self.net.now, cfg)
            self._warm(node, self.addrs[i], tables[i])
            self.nodes[self.addrs[i]] = node
            self.net.add(self.addrs[i], node)

    # -- queries about the population -----------------------------------------------------

    def live_indices(self) -> list[int]:
        return [i for i in range(len(self.ids)) if i not in self.dead]

    def true_closest(self, target: bytes, count: int | None = None) -> list[bytes]:
        """The `count` (default k) live node IDs closest to `target`."""
        live = sorted(self.live_indices(), key=lambda i: distance(self.ids[i], target))
        return [self.ids[i] for i in live[: count if count is not None else self.k]]

    def store_peers(self, info_hash: bytes, peers: list[Addr], count: int | None = None) -> None:
        """Put `peers` into the stores of the `count` live nodes closest to `info_hash`,
        as if the peers had announced (BEP 5 announce_peer)."""
        by_id = {self.ids[i]: self.addrs[i] for i in self.live_indices()}
        for node_id in self.true_closest(info_hash, count):
            node = self.nodes[by_id[node_id]]
            for peer in peers:
                node.peer_store.add(info_hash, peer, self.net.now)

    # -- probes ---------------------------------------------------------------------------

    def run_get_peers(
        self,
        info_hash: bytes,
        lookup: LookupConfig,
        *,
        bootstrap: Addr | None = None,
        timeout: float = 120.0,
        kind: str = "get_peers",
    ) -> ProbeResult:
        """Run one lookup from a fresh read-only probe node, then detach the probe.

        With `bootstrap`, the probe starts with an empty table and joins through that one
        address (cold start); otherwise it gets a warm table like every other node.
        """
        self._probe_seq += 1
        hi, lo = divmod(self._probe_seq % 65536, 256)
        addr = (f"192.168.{hi}.{lo}", 6881)
        probe_id = random_id(self.rng)
        cfg = DHTConfig(read_only=True, lookup=lookup, restrict_ips=False)
        probe = DHTNode(probe_id, random.Random(self.rng.getrandbits(64)), self.net.now, cfg)
        if bootstrap is None:
            self._warm(
                probe, addr, kademlia_contacts(self.ids, self.k, self.rng, owners=[probe_id])[0]
            )
        self.net.add(addr, probe)
        start = self.net.now
        if bootstrap is not None:
            probe.bootstrap([bootstrap], start)
        if kind == "get_peers":
            lookup_id = probe.get_peers(info_hash, start)
        else:
            lookup_id = probe.find_node(info_hash, start)
        sent_before = self.net.statistics().sent
        self.net.poke(addr)
        first_peer: float | None = None
        finished: LookupFinished | None = None
        finished_at: float | None = None
        peers: set[Addr] = set()

        def drain() -> bool:
            nonlocal first_peer, finished, finished_at
            while (event := probe.next_event()) is not None:
                if isinstance(event, PeersFound) and event.lookup_id == lookup_id:
                    peers.update(event.peers)
                    if first_peer is None:
                        first_peer = self.net.now - start
                elif isinstance(event, LookupFinished) and event.lookup_id == lookup_id:
                    finished, finished_at = event, self.net.now - start
            return finished is not None

        self.net.run(until=start + timeout, stop=drain)
        self.net.remove(addr)
        return ProbeResult(
            first_peer=first_peer,
            finished=finished_at,
            stats=finished.stats if finished is not None else None,
            closest=tuple(n for n, _ in finished.closest) if finished is not None else (),
            peers=frozenset(peers),
            datagrams=self.net.statistics().sent - sent_before,
        )

    def _warm(self, node: DHTNode, addr: Addr, contacts: list[int]) -> None:
        now = self.net.now
        for j in contacts:
            rtt = self.net.rtt(addr, self.addrs[j])
            node.table.heard_from(self.ids[j], self.addrs[j], now, responded=True, rtt=rtt)
