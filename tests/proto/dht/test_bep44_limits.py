"""BEP 44 serving limits: get replies fit one datagram, and puts need a live token (203)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.krpc import Error, GetQuery, PutQuery, Response, decode_message, encode_message
from shoal.dht.node import DHTNode
from shoal.dht.serving import MAX_GET_REPLY
from shoal.dht.tokens import ROTATE_INTERVAL

from .test_node import exchange, nid
from .test_want import V4_SRC, V6_SRC, _pair

SEED = bytes(range(32))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 995) | st.integers(850, 995),  # near the limit is where cuts happen
    st.binary(max_size=64),
    st.integers(0, 8) | st.just(8),
    st.integers(0, 8) | st.just(8),
    st.booleans(),
    st.sampled_from([(), (b"n4",), (b"n6",), (b"n4", b"n6")]),
    st.booleans(),
)
def test_get_reply_fits_one_datagram_and_keeps_the_item(
    size: int,
    salt: bytes,
    n4: int,
    n6: int,
    mutable: bool,
    want: tuple[bytes, ...],
    from_v6: bool,
) -> None:
    v4, v6 = _pair(n4, n6)
    node, src = (v6, V6_SRC) if from_v6 else (v4, V4_SRC)
    value = encode(b"x" * size)
    item = bep44.make_mutable(SEED, value, 7, salt) if mutable else bep44.Item(value)
    assert bep44.check_item(item) is None
    assert node.server.items.put(item, 0.0) is None
    query = GetQuery(b"gg", nid(50), item.target, want=want, version=b"LT\x02\x01")
    node.receive_datagram(encode_message(query), src, 1.0)
    ((data, dst),) = node.datagrams_to_send()
    assert dst == src
    assert len(data) <= MAX_GET_REPLY
    reply = decode_message(data)
    assert isinstance(reply, Response)
    assert reply.ext is not None
    assert reply.ext.value == value  # the item is never cut
    assert reply.token is not None
    # Whatever nodes are left are the closest of what the uncut reply would carry.
    full_nodes, full_nodes6 = node.server.closest_nodes(item.target, want, 1.0)
    assert reply.nodes == full_nodes[: len(reply.nodes)]
    assert reply.nodes6 == full_nodes6[: len(reply.nodes6)]
    uncut = Response(
        reply.t,
        reply.node_id,
        full_nodes,
        full_nodes6,
        (),
        reply.token,
        reply.ip,
        reply.version,
        reply.ext,
    )
    if len(encode_message(uncut)) <= MAX_GET_REPLY:
        assert (reply.nodes, reply.nodes6) == (full_nodes, full_nodes6)
    else:
        assert len(reply.nodes) + len(reply.nodes6) < len(full_nodes) + len(full_nodes6)


def test_a_big_item_with_both_families_cuts_the_other_family_first() -> None:
    v4, _ = _pair(8, 8)
    item = bep44.make_mutable(SEED, encode(b"y" * 995), 1)
    v4.server.items.put(item, 0.0)
    query = GetQuery(b"gg", nid(50), item.target, want=(b"n4", b"n6"))
    v4.receive_datagram(encode_message(query), V4_SRC, 1.0)
    ((data, _),) = v4.datagrams_to_send()
    reply = decode_message(data)
    assert isinstance(reply, Response)
    assert len(data) <= MAX_GET_REPLY
    assert len(reply.nodes) == 8  # our own family kept whole
    assert len(reply.nodes6) < 8


def _token(node: DHTNode, target: bytes, src: tuple[str, int], now: float) -> bytes:
    (reply,) = exchange(node, GetQuery(b"g", nid(50), target), src, now)
    assert isinstance(reply, Response)
    assert reply.token is not None
    return reply.token


def test_put_token_must_be_live_and_for_this_ip_and_target() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    item = bep44.make_mutable(SEED, encode(b"v"), 1)
    other = bep44.make_mutable(SEED, encode(b"w"), 1, b"other salt")
    src, elsewhere = ("127.0.0.99", 7000), ("127.0.0.98", 7000)

    def put(token: bytes, now: float, at: tuple[str, int] = src) -> int | None:
        msg = PutQuery(b"p", nid(50), token, item.value, item.key, b"", item.seq, item.sig)
        (reply,) = exchange(node, msg, at, now)
        return reply.code if isinstance(reply, Error) else None

    token = _token(node, item.target, src, 0.0)
    assert put(b"", 1.0) == 203
    assert put(token[:-1] + bytes([token[-1] ^ 1]), 1.0) == 203
    assert put(_token(node, other.target, src, 1.0), 1.0) == 203  # another target's
    assert put(token, 1.0, elsewhere) == 203  # issued to another IP
    # Too old: tokens live one or two rotation intervals (BEP 5's "ten minutes").
    assert put(token, 2 * ROTATE_INTERVAL + 1) == 203
    (reply,) = exchange(
        node,
        PutQuery(b"p", nid(50), b"", item.value, item.key, b"", item.seq, item.sig),
        src,
        2 * ROTATE_INTERVAL + 2,
    )
    assert isinstance(reply, Error)
    assert "token" in reply.message
    assert len(node.server.items) == 0
    fresh = _token(node, item.target, src, 2 * ROTATE_INTERVAL + 3)
    assert put(fresh, 2 * ROTATE_INTERVAL + 4) is None
    assert len(node.server.items) == 1
