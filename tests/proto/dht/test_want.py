"""BEP 32 ``want``: which address families a find_node/get_peers reply carries.

A dual-stack node is two `DHTNode` engines (one per family) linked with `set_sibling`;
a query's ``want`` picks ``nodes`` (n4) and/or ``nodes6`` (n6), each taken from the
table of its family, and a query without ``want`` gets its own family.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.krpc import (
    FindNodeQuery,
    GetPeersQuery,
    Response,
    decode_message,
    encode_message,
)
from shoal.dht.node import CLOSEST, DHTConfig, DHTNode

from .strategies import ids20, wants

if TYPE_CHECKING:
    from shoal.dht.compact import Addr

V4_SRC: Addr = ("127.0.0.9", 7000)
V6_SRC: Addr = ("::9", 7000)


def _pair(n4: int, n6: int, seed: int = 1) -> tuple[DHTNode, DHTNode]:
    """Linked v4 and v6 engines with `n4` / `n6` loopback contacts in their tables."""
    rng = random.Random(seed)
    node_id = rng.randbytes(20)
    v4 = DHTNode(node_id, random.Random(seed), 0.0, DHTConfig(rate=1e9, burst=1e9))
    v6 = DHTNode(node_id, random.Random(seed + 1), 0.0, DHTConfig(ipv6=True, rate=1e9, burst=1e9))
    v4.set_sibling(v6)
    v6.set_sibling(v4)
    for i in range(n4):
        v4.table.heard_from(rng.randbytes(20), (f"127.0.1.{i + 1}", 6000 + i), 0.0, responded=True)
    for i in range(n6):
        # Distinct private /64s: the table's subnet limit exempts private addresses.
        addr6 = (f"fd00:{i + 1:x}::1", 6000 + i)
        v6.table.heard_from(rng.randbytes(20), addr6, 0.0, responded=True)
    return v4, v6


def _ask(node: DHTNode, query: FindNodeQuery | GetPeersQuery, src: Addr) -> Response:
    node.receive_datagram(encode_message(query), src, 1.0)
    ((data, dst),) = node.datagrams_to_send()
    assert dst == src
    reply = decode_message(data)
    assert isinstance(reply, Response)
    return reply


def _expected(node: DHTNode, target: bytes) -> set[bytes]:
    return {e.node_id for e in node.table.closest(target, CLOSEST, now=1.0)}


@pytest.mark.parametrize("v6_socket", [False, True])
def test_no_want_gets_the_family_of_the_socket(v6_socket: bool) -> None:
    v4, v6 = _pair(5, 5)
    node, src = (v6, V6_SRC) if v6_socket else (v4, V4_SRC)
    reply = _ask(node, FindNodeQuery(b"t1", b"\x01" * 20, b"\x02" * 20), src)
    assert (len(reply.nodes6) > 0) == v6_socket
    assert (len(reply.nodes) > 0) == (not v6_socket)


@pytest.mark.parametrize("v6_socket", [False, True])
def test_want_both_gets_both_tables(v6_socket: bool) -> None:
    v4, v6 = _pair(12, 12)
    node, src = (v6, V6_SRC) if v6_socket else (v4, V4_SRC)
    target = b"\x07" * 20
    reply = _ask(node, GetPeersQuery(b"t1", b"\x01" * 20, target, (b"n4", b"n6")), src)
    assert {n.node_id for n in reply.nodes} == _expected(v4, target)
    assert {n.node_id for n in reply.nodes6} == _expected(v6, target)
    assert len(reply.nodes) == len(reply.nodes6) == CLOSEST
    assert reply.token is not None


def test_want_only_the_other_family() -> None:
    v4, v6 = _pair(3, 3)
    reply = _ask(v4, FindNodeQuery(b"t1", b"\x01" * 20, b"\x02" * 20, (b"n6",)), V4_SRC)
    assert reply.nodes == ()
    assert {n.node_id for n in reply.nodes6} == _expected(v6, b"\x02" * 20)


def test_want_of_an_unserved_family_falls_back_to_our_own() -> None:
    """A single-stack engine asked only for the other family still answers with its own."""
    alone = DHTNode(b"\x05" * 20, random.Random(3), 0.0)
    alone.table.heard_from(b"\x06" * 20, ("127.0.2.1", 6001), 0.0, responded=True)
    reply = _ask(alone, FindNodeQuery(b"t1", b"\x01" * 20, b"\x02" * 20, (b"n6",)), V4_SRC)
    assert ("127.0.2.1", 6001) in {n.addr for n in reply.nodes}
    assert reply.nodes6 == ()


def test_sibling_must_be_the_other_family() -> None:
    a = DHTNode(b"\x05" * 20, random.Random(3), 0.0)
    b = DHTNode(b"\x06" * 20, random.Random(4), 0.0)
    with pytest.raises(ValueError, match="other address family"):
        a.set_sibling(b)
    a.set_sibling(None)
    assert a.sibling is None


@given(
    want=wants | st.lists(st.sampled_from([b"n4", b"n6", b"x", b""]), max_size=4).map(tuple),
    target=ids20,
    n4=st.integers(0, 20),
    n6=st.integers(0, 20),
    v6_socket=st.booleans(),
    get_peers=st.booleans(),
)
def test_reply_families_follow_want(
    want: tuple[bytes, ...], target: bytes, n4: int, n6: int, v6_socket: bool, get_peers: bool
) -> None:
    v4, v6 = _pair(n4, n6)
    node, src = (v6, V6_SRC) if v6_socket else (v4, V4_SRC)
    cls = GetPeersQuery if get_peers else FindNodeQuery
    reply = _ask(node, cls(b"tt", b"\x01" * 20, target, want), src)
    asked4, asked6 = b"n4" in want, b"n6" in want
    if not (asked4 or asked6):
        asked4, asked6 = not v6_socket, v6_socket
    # Every contact is of the family of its key, and each list is that table's closest.
    assert all(":" not in n.addr[0] for n in reply.nodes)
    assert all(":" in n.addr[0] for n in reply.nodes6)
    assert {n.node_id for n in reply.nodes} == (_expected(v4, target) if asked4 else set())
    assert {n.node_id for n in reply.nodes6} == (_expected(v6, target) if asked6 else set())
