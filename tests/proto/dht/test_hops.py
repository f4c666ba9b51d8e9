"""`PeersFound.hops`: the hop of the reply that carried the peers (seeds are hop 1)."""

from __future__ import annotations

from shoal.dht.events import PeersFound

from .test_node import IH, Net, addr, nid


def chain(length: int) -> Net:
    """Node i knows only node i + 1 (it heard node i + 1 answer); the last stores a peer."""
    net = Net()
    nodes = [net.add(addr(i), nid(i)) for i in range(1, length + 1)]
    for i, node in enumerate(nodes[:-1], start=1):
        node.table.heard_from(nid(i + 1), addr(i + 1), 0.0, responded=True, rtt=0.01)
    nodes[-1].peer_store.add(IH, ("10.9.9.9", 7000), 0.0)
    return net


def found(net: Net, lookup_id: int) -> list[PeersFound]:
    return [e for e in net.of(addr(1), PeersFound) if e.lookup_id == lookup_id]


def test_a_peer_held_by_a_seed_is_found_at_hop_1() -> None:
    net = chain(2)
    lookup_id = net.nodes[addr(1)].get_peers(IH, 0.0)
    net.advance(10.0)
    assert [(e.peers, e.hops) for e in found(net, lookup_id)] == [((("10.9.9.9", 7000),), 1)]


def test_each_hop_along_a_chain_counts() -> None:
    net = chain(4)  # 1 asks 2 (hop 1), learns 3 (hop 2), learns 4 (hop 3), which has it
    lookup_id = net.nodes[addr(1)].get_peers(IH, 0.0)
    net.advance(10.0)
    (event,) = found(net, lookup_id)
    assert event.hops == 3


def test_events_built_without_hops_say_unknown() -> None:
    assert PeersFound(1, IH, ()).hops is None


def test_a_lookup_started_during_bootstrap_counts_the_bootstrap_hop() -> None:
    # 1 bootstraps through 2, which knows 3, which holds the peer. The get_peers queued
    # at t = 0 starts on 2's first reply, seeded with 3 as the bootstrap learned it: hop 2.
    net = chain(3)
    seeker = net.nodes[addr(1)]
    seeker.table.remove(nid(2))  # start empty: 2 is only a bootstrap address
    seeker.bootstrap([addr(2)], 0.0)
    lookup_id = seeker.get_peers(IH, 0.0)
    net.advance(10.0)
    (event,) = found(net, lookup_id)
    assert event.hops == 2
