"""BEP 33 ``noseed``: served (seeds left out of ``values``) and sent (a seed's lookups)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.events import PeersFound
from shoal.dht.krpc import GetPeersQuery, Response, decode_message
from shoal.dht.node import DHTNode
from shoal.dht.peer_store import PeerStore

from .test_node import IH, addr, exchange, nid, swarm

SRC = ("127.0.0.99", 7000)

announces = st.lists(
    st.tuples(st.integers(0, 15), st.integers(6881, 6883), st.booleans()), max_size=60
)


@given(announces)
def test_store_leaves_out_peers_whose_latest_announce_was_a_seed(
    history: list[tuple[int, int, bool]],
) -> None:
    store = PeerStore()
    latest: dict[tuple[str, int], bool] = {}
    for i, (host, port, seed) in enumerate(history):
        peer = (f"127.1.0.{host}", port)
        assert store.add(IH, peer, float(i), seed=seed)
        latest[peer] = seed
    now = float(len(history))
    rng = random.Random(0)
    assert set(store.get(IH, now, rng, 1000)) == set(latest)
    expected = {p for p, seed in latest.items() if not seed}
    assert set(store.get(IH, now, rng, 1000, noseed=True)) == expected
    assert len(store.get(IH, now, rng, 3, noseed=True)) == min(3, len(expected))


def test_served_get_peers_honours_noseed() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    seeds = {(f"127.2.0.{i}", 6881) for i in range(5)}
    leechers = {(f"127.3.0.{i}", 6881) for i in range(5)}
    for peer in seeds | leechers:
        node.peer_store.add(IH, peer, 0.0, seed=peer in seeds)
    for noseed, expected in ((False, seeds | leechers), (True, leechers)):
        query = GetPeersQuery(b"g", nid(50), IH, noseed=noseed)
        (reply,) = exchange(node, query, SRC, 1.0)
        assert isinstance(reply, Response)
        assert set(reply.values) == expected


def _sent_get_peers(node: DHTNode) -> list[GetPeersQuery]:
    msgs = [decode_message(d) for d, _ in node.datagrams_to_send()]
    return [m for m in msgs if isinstance(m, GetPeersQuery)]


def test_a_seed_sends_noseed_and_a_leecher_does_not() -> None:
    cases = [
        (lambda n: n.get_peers(IH, 0.0), False),
        (lambda n: n.get_peers(IH, 0.0, noseed=True), True),
        (lambda n: n.announce(IH, 6881, 0.0), False),
        (lambda n: n.announce(IH, 6881, 0.0, seed=True), True),
    ]
    for start, noseed in cases:
        node = DHTNode(nid(1), random.Random(1), 0.0)
        for i in range(2, 6):
            node.table.heard_from(nid(i), addr(i), 0.0, responded=True)
        start(node)
        sent = _sent_get_peers(node)
        assert sent
        assert {q.noseed for q in sent} == {noseed}


def test_a_seed_finds_only_leechers_across_a_swarm() -> None:
    net = swarm(12)
    for i in range(2, 6):  # two seeds, two leechers announce
        net.nodes[addr(i)].announce(IH, 7000 + i, net.now, seed=i < 4)
    net.advance(net.now + 30)
    lookup_id = net.nodes[addr(9)].get_peers(IH, net.now, noseed=True)
    net.advance(net.now + 30)
    found = {p for e in net.of(addr(9), PeersFound) if e.lookup_id == lookup_id for p in e.peers}
    assert {port for _, port in found} == {7004, 7005}
