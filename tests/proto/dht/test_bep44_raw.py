"""BEP 44 values are the bytes as sent: kept verbatim from the datagram, never re-encoded.

A lenient bencode reader accepts dicts with unsorted keys, and the signature (and an
immutable item's target) covers the encoding *as sent*. Re-encoding sorts the keys and
so changes the bytes: such an item would fail verification. These tests build values
with shuffled dict keys and check that `bencoding.raw_value` finds their exact span, that
a put of one is stored and served unchanged, and that a get lookup verifies one.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.bencoding import Bencoded, decode, encode, raw_value
from shoal.dht import bep44
from shoal.dht.jobs import ItemSearch
from shoal.dht.krpc import GetQuery, PutQuery, Response, decode_message, encode_message
from shoal.dht.krpc_ext import raw_dict
from shoal.dht.node import DHTNode
from shoal.errors import DecodeError

from .test_node import exchange, nid

SEED = bytes(range(32))
SRC = ("127.0.0.99", 7000)

values: st.SearchStrategy[Bencoded] = st.recursive(
    st.integers(-(2**40), 2**40) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner, max_size=5)
    ),
    max_leaves=12,
)


def shuffled(value: Bencoded, rng: random.Random) -> bytes:
    """Bencode `value` with every dict's keys in a random order (valid, not canonical)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        inner = b"".join(encode(k) + shuffled(value[k], rng) for k in keys)
        return b"d" + inner + b"e"
    if isinstance(value, list):
        return b"l" + b"".join(shuffled(v, rng) for v in value) + b"e"
    return encode(value)


def _unsorted(value: bytes) -> bytes:
    """A value whose encoding is valid but not canonical (keys b, a)."""
    return b"d1:b" + value + b"1:ai1ee"


@given(values, st.randoms(use_true_random=False), st.binary(min_size=1, max_size=4))
def test_raw_value_is_the_exact_span_of_a_nested_member(
    value: Bencoded, rng: random.Random, key: bytes
) -> None:
    raw = shuffled(value, rng)
    data = b"d1:ad" + encode(key) + raw + b"e1:t2:xx1:y1:qe"
    assert raw_value(data, (b"a", key)) == raw
    assert decode(raw_value(data, (b"a",)) or b"", strict=False) == {key: value}
    assert raw_value(data, (b"r", key)) is None
    assert raw_value(data, (b"t", key)) is None  # not a dict: the path ends


@given(st.binary(max_size=80), st.lists(st.binary(max_size=3), min_size=1, max_size=3))
def test_raw_value_is_total(data: bytes, path: list[bytes]) -> None:
    try:
        out = raw_value(data, tuple(path))
    except DecodeError:
        return
    assert out is None or out in data


def test_raw_value_refuses_oversized_input() -> None:
    try:
        raw_value(b"d1:a0:e", (b"a",), max_size=5)
    except DecodeError:
        return
    raise AssertionError("no DecodeError")


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=6), values, min_size=2, max_size=5),
    st.randoms(use_true_random=False),
    st.integers(0, 2**40),
    st.binary(max_size=10),
)
def test_non_canonical_mutable_put_is_stored_and_served_verbatim(
    value: dict[bytes, Bencoded], rng: random.Random, seq: int, salt: bytes
) -> None:
    raw = shuffled(value, rng)
    item = bep44.make_mutable(SEED, raw, seq, salt)
    node = DHTNode(nid(1), random.Random(1), 0.0)
    (reply,) = exchange(node, GetQuery(b"g", nid(50), item.target), SRC)
    assert isinstance(reply, Response)
    assert reply.token is not None
    put = PutQuery(b"p", nid(50), reply.token, raw, item.key, salt, seq, item.sig)
    datagram = encode_message(put)
    assert raw in datagram  # our encoder embeds the value as is
    decoded = decode_message(datagram)
    assert isinstance(decoded, PutQuery)
    assert decoded.value == raw
    (ack,) = exchange(node, put, SRC)
    assert isinstance(ack, Response), ack
    stored = node.server.items.get(item.target, 0.0)
    assert stored is not None
    assert stored.value == raw
    # Served unchanged, and a requester's get lookup verifies it.
    node.receive_datagram(encode_message(GetQuery(b"h", nid(50), item.target)), SRC, 1.0)
    ((served, _),) = node.datagrams_to_send()
    assert raw in served
    got = decode_message(served)
    assert isinstance(got, Response)
    search = ItemSearch(item.target, salt)
    search.on_reply(got.ext)
    assert search.best == item


def test_non_canonical_immutable_value_hashes_as_sent() -> None:
    raw = _unsorted(b"5:hello")
    assert encode(decode(raw, strict=False)) != raw
    target = bep44.immutable_target(raw)
    reply = raw_dict({b"id": encode(nid(2)), b"v": raw})
    datagram = b"d1:r" + reply + b"1:t1:x1:y1:re"
    msg = decode_message(datagram)
    assert isinstance(msg, Response)
    assert msg.ext is not None
    assert msg.ext.value == raw
    search = ItemSearch(target)
    search.on_reply(msg.ext)
    assert search.best == bep44.Item(raw)
