"""BEP 44 compare-and-swap from the putting side: ``put_item(..., cas=N)`` between engines."""

from __future__ import annotations

import random

import pytest

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.events import ItemFound, ItemStored, LookupFinished
from shoal.dht.krpc import GetQuery, PutQuery, Response, decode_message, encode_message
from shoal.dht.node import DHTNode

from .test_node import Net, addr, nid, swarm

SEED = bytes(range(32))
SALT = b"cas"


def result(net: Net, at: int, lookup_id: int) -> object:
    (done,) = [e for e in net.of(addr(at), LookupFinished) if e.lookup_id == lookup_id]
    return done.result


def put(net: Net, at: int, seq: int, cas: int | None) -> ItemStored:
    item = bep44.make_mutable(SEED, encode(b"v%d" % seq), seq, SALT)
    lookup_id = net.nodes[addr(at)].put_item(item, net.now, cas)
    net.advance(net.now + 30)
    stored = result(net, at, lookup_id)
    assert isinstance(stored, ItemStored)
    return stored


def test_put_sends_cas_and_a_stale_cas_is_refused_with_301() -> None:
    net = swarm(12)
    first = put(net, 2, 1, None)
    assert first.stored >= 5
    assert not first.errors
    # A writer who read seq 1 replaces it.
    second = put(net, 3, 2, 1)
    assert second.stored >= 5
    # Another writer who also read seq 1 loses: every node holding seq 2 says 301.
    lost = put(net, 4, 2, 1)
    assert set(lost.errors) == {301}
    assert len(lost.errors) >= 5
    get = net.nodes[addr(7)].get_item(
        bep44.mutable_target(bep44.public_key_of(SEED), SALT), net.now, SALT
    )
    net.advance(net.now + 30)
    found = result(net, 7, get)
    assert isinstance(found, ItemFound)
    assert found.item is not None
    assert (found.item.seq, found.item.value) == (2, encode(b"v2"))


def test_cas_is_on_the_wire_only_when_given() -> None:
    for cas in (None, 0, 41):
        node = DHTNode(nid(1), random.Random(1), 0.0)
        node.table.heard_from(nid(2), addr(2), 0.0, responded=True)
        item = bep44.make_mutable(SEED, encode(b"x"), 42, SALT)
        node.put_item(item, 0.0, cas)
        # Answer the get lookup with a token, so the put follows.
        (get, dst), *_ = node.datagrams_to_send()
        query = decode_message(get)
        assert isinstance(query, GetQuery)
        reply = Response(query.t, nid(2), token=b"tok")
        node.receive_datagram(encode_message(reply), dst, 0.1)
        puts = [decode_message(d) for d, _ in node.datagrams_to_send()]
        (sent,) = [p for p in puts if isinstance(p, PutQuery)]
        assert sent.cas == cas
        assert sent.token == b"tok"
        assert (b"3:casi" in encode_message(sent)) == (cas is not None)


@pytest.mark.parametrize("cas", [-1, 2**63])
def test_cas_out_of_range_or_on_immutable_is_refused_locally(cas: int) -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    with pytest.raises(ValueError, match="cas"):
        node.put_item(bep44.make_mutable(SEED, encode(b"x"), 1), 0.0, cas)
    with pytest.raises(ValueError, match="cas"):
        node.put_item(bep44.Item(encode(b"x")), 0.0, 0)
