"""The BEP 44, 33 and 51 queries end to end between real engines (no sockets)."""

from __future__ import annotations

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.events import ItemFound, ItemStored, LookupFinished, SampleReceived, ScrapeEstimate
from shoal.dht.krpc import (
    Error,
    GetPeersQuery,
    GetQuery,
    PutQuery,
    Response,
    SampleInfohashesQuery,
)
from shoal.dht.node import DHTConfig, DHTNode

from .test_node import IH, Net, addr, exchange, nid, swarm

SEED = bytes(range(32))
SRC = ("127.0.0.99", 7000)


def result(net: Net, at: int, lookup_id: int) -> object:
    (done,) = [e for e in net.of(addr(at), LookupFinished) if e.lookup_id == lookup_id]
    return done.result


def test_immutable_put_then_get_from_another_node() -> None:
    net = swarm(12)
    value = encode([b"hello", 7])
    put = net.nodes[addr(3)].put_item(bep44.Item(value), net.now)
    net.advance(net.now + 30)
    stored = result(net, 3, put)
    assert isinstance(stored, ItemStored)
    assert stored.stored >= 5
    assert not stored.errors
    get = net.nodes[addr(9)].get_item(bep44.immutable_target(value), net.now)
    net.advance(net.now + 30)
    found = result(net, 9, get)
    assert isinstance(found, ItemFound)
    assert found.item == bep44.Item(value)
    assert found.nodes >= 5


def test_mutable_update_replaces_and_old_seq_is_refused() -> None:
    net = swarm(12)
    salt = b"topic"
    for seq, text in ((1, b"first"), (2, b"second")):
        item = bep44.make_mutable(SEED, encode(text), seq, salt)
        lookup_id = net.nodes[addr(2)].put_item(item, net.now)
        net.advance(net.now + 30)
        assert isinstance(stored := result(net, 2, lookup_id), ItemStored)
        assert stored.stored >= 5
    stale = bep44.make_mutable(SEED, encode(b"stale"), 1, salt)
    lookup_id = net.nodes[addr(4)].put_item(stale, net.now)
    net.advance(net.now + 30)
    refused = result(net, 4, lookup_id)
    assert isinstance(refused, ItemStored)
    # Every node that held seq 2 refuses; a node outside the first put's closest set
    # (each putter sees a slightly different set) may take the stale item.
    assert set(refused.errors) == {302}
    assert len(refused.errors) >= 5
    get = net.nodes[addr(7)].get_item(stale.target, net.now, salt)
    net.advance(net.now + 30)
    found = result(net, 7, get)
    assert isinstance(found, ItemFound)
    assert found.item is not None
    assert (found.item.seq, found.item.value) == (2, encode(b"second"))


def test_get_ignores_items_that_do_not_verify() -> None:
    net = swarm(6)
    good = bep44.make_mutable(SEED, encode(b"good"), 1)
    forged = bep44.Item(encode(b"forged"), good.key, b"", 9, good.sig)
    # Plant a forged item directly in one store (a lying node) and the good one in another.
    net.nodes[addr(2)].server.items.put(forged, net.now)
    net.nodes[addr(3)].server.items.put(good, net.now)
    get = net.nodes[addr(5)].get_item(good.target, net.now)
    net.advance(net.now + 30)
    found = result(net, 5, get)
    assert isinstance(found, ItemFound)
    assert found.item == good


def _token(node: DHTNode, target: bytes) -> bytes:
    (reply,) = exchange(node, GetQuery(b"g", nid(50), target), SRC)
    assert isinstance(reply, Response)
    assert reply.token is not None
    return reply.token


def test_put_errors_on_the_wire() -> None:
    node = DHTNode(nid(1), __import__("random").Random(1), 0.0)
    item = bep44.make_mutable(SEED, encode(b"v"), 5)
    token = _token(node, item.target)

    def put(**kw: object) -> int | None:
        fields = {
            "token": token,
            "value": item.value,
            "key": item.key,
            "seq": item.seq,
            "sig": item.sig,
        } | kw
        (reply,) = exchange(node, PutQuery(b"p", nid(50), **fields), SRC)  # type: ignore[arg-type]
        return reply.code if isinstance(reply, Error) else None

    assert put(token=b"bad") == 203
    assert put(sig=bytes(64)) == 206
    assert put(value=encode(b"x" * 997)) == 205
    assert put(salt=b"s" * 65) == 207
    assert put() is None
    assert put(cas=4, seq=6, sig=bep44.sign(SEED, item.value, 6)) == 301
    assert put(seq=4, sig=bep44.sign(SEED, item.value, 4)) == 302
    # get with seq: newer items only; otherwise just the seq.
    (reply,) = exchange(node, GetQuery(b"g", nid(50), item.target, seq=5), SRC)
    assert isinstance(reply, Response)
    assert reply.ext is not None
    assert (reply.ext.seq, reply.ext.value) == (5, None)


def test_scrape_counts_seeds_and_peers_across_nodes() -> None:
    net = swarm(10)
    for i in range(30):
        store = net.nodes[addr(2 + i % 3)].peer_store
        store.add(IH, (f"10.1.0.{i}", 6881), net.now, seed=i < 10)
    lookup_id = net.nodes[addr(8)].scrape(IH, net.now)
    net.advance(net.now + 30)
    est = result(net, 8, lookup_id)
    assert isinstance(est, ScrapeEstimate)
    assert round(est.seeds) == 10
    assert round(est.peers) == 20


def test_scrape_reply_carries_filters_only_for_known_swarms() -> None:
    node = DHTNode(nid(1), __import__("random").Random(1), 0.0)
    (reply,) = exchange(node, GetPeersQuery(b"s", nid(50), IH, scrape=True), SRC)
    assert isinstance(reply, Response)
    assert reply.ext is None
    node.peer_store.add(IH, ("10.0.0.1", 1), 0.0, seed=True)
    (reply,) = exchange(node, GetPeersQuery(b"s", nid(50), IH, scrape=True), SRC)
    assert isinstance(reply, Response)
    assert reply.ext is not None
    assert reply.ext.bf_seeds is not None
    assert any(reply.ext.bf_seeds)
    assert reply.ext.bf_peers == bytes(256)


def test_sample_infohashes_served_and_received() -> None:
    net = swarm(4, DHTConfig(sample_interval=60))
    hashes = [bytes([i]) * 20 for i in range(30)]
    for h in hashes:
        net.nodes[addr(2)].peer_store.add(h, ("10.0.0.1", 1), net.now)
    lookup_id = net.nodes[addr(3)].sample(addr(2), nid(0), net.now)
    net.advance(net.now + 1)
    got = result(net, 3, lookup_id)
    assert isinstance(got, SampleReceived)
    assert got.samples is not None
    assert len(got.samples) == 20
    assert set(got.samples) <= set(hashes)
    assert (got.num, got.interval) == (30, 60)
    assert got.nodes  # nodes close to the target, for the walk


def test_sample_of_a_dead_node_reports_none() -> None:
    net = swarm(3)
    lookup_id = net.nodes[addr(2)].sample(("127.0.0.77", 1), nid(0), net.now)
    net.advance(net.now + 10)
    got = result(net, 2, lookup_id)
    assert isinstance(got, SampleReceived)
    assert got.samples is None


def test_sample_cache_redraws_only_after_interval_unless_short() -> None:
    node = DHTNode(nid(1), __import__("random").Random(1), 0.0, DHTConfig(sample_interval=100))
    for i in range(3):
        node.peer_store.add(bytes([i]) * 20, ("10.0.0.1", 1), 0.0)

    def samples(now: float) -> tuple[bytes, ...]:
        (reply,) = exchange(node, SampleInfohashesQuery(b"s", nid(50), nid(0)), SRC, now)
        assert isinstance(reply, Response)
        assert reply.ext is not None
        assert reply.ext.samples is not None
        return reply.ext.samples

    assert len(samples(0.0)) == 3
    node.peer_store.add(bytes([9]) * 20, ("10.0.0.1", 1), 1.0)
    assert len(samples(1.0)) == 4  # the store grew past a short sample: redrawn
    for i in range(10, 40):
        node.peer_store.add(bytes([i]) * 20, ("10.0.0.1", 1), 2.0)
    first = samples(2.0)
    assert len(first) == 20
    assert samples(50.0) == first  # cached within the interval


def test_announce_with_seed_flag_is_stored_as_a_seed() -> None:
    net = swarm(4)
    net.nodes[addr(2)].announce(IH, 7000, net.now, seed=True)
    net.nodes[addr(3)].announce(IH, 7001, net.now)
    net.advance(net.now + 10)
    ips = net.nodes[addr(1)].peer_store.scrape_ips(IH, net.now)
    assert ips == ({"127.0.0.2"}, {"127.0.0.3"})


def test_want_picks_families_and_reads_the_sibling_table() -> None:
    import random

    from shoal.dht.krpc import FindNodeQuery

    v4 = DHTNode(nid(1), random.Random(1), 0.0)
    v6 = DHTNode(nid(2), random.Random(2), 0.0, DHTConfig(ipv6=True))
    v4.table.heard_from(nid(3), ("127.0.0.3", 3), 0.0, responded=True)
    v6.table.heard_from(nid(4), ("::1", 4), 0.0, responded=True)

    def ask(want: tuple[bytes, ...]) -> tuple[int, int]:
        query = FindNodeQuery(b"f", nid(50), nid(9), want, read_only=True)  # not tabled
        (reply,) = exchange(v4, query, SRC)
        assert isinstance(reply, Response)
        return len(reply.nodes), len(reply.nodes6)

    assert ask(()) == (1, 0)
    assert ask((b"n6",)) == (1, 0)  # no IPv6 table: our own family rather than nothing
    v4.server.sibling = v6  # BEP 32 dual stack
    assert ask((b"n6",)) == (0, 1)
    assert ask((b"n4", b"n6")) == (1, 1)


def test_scrape_filters_are_reused_for_a_minute() -> None:
    node = DHTNode(nid(1), __import__("random").Random(1), 0.0)
    node.peer_store.add(IH, ("10.0.0.1", 1), 0.0)

    def peers_filter(now: float) -> bytes | None:
        (reply,) = exchange(node, GetPeersQuery(b"s", nid(50), IH, scrape=True), SRC, now)
        assert isinstance(reply, Response)
        assert reply.ext is not None
        return reply.ext.bf_peers

    first = peers_filter(0.0)
    node.peer_store.add(IH, ("10.0.0.2", 1), 1.0)
    assert peers_filter(30.0) == first  # cached: two SHA-1 per IP are not paid per query
    assert peers_filter(61.0) != first
