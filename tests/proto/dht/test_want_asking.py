"""BEP 32 ``want`` on our side: what our lookups ask for, and what the other family's
contacts in replies become (`OtherFamilyNodes`, for the sibling engine)."""

from __future__ import annotations

import random

import pytest

from shoal.dht.compact import NodeInfo
from shoal.dht.events import OtherFamilyNodes
from shoal.dht.krpc import FindNodeQuery, Response, decode_message, encode_message
from shoal.dht.node import DHTConfig, DHTNode

V4_PEER = ("127.0.3.1", 6881)


def _engines(sibling_nodes: int | None) -> tuple[DHTNode, DHTNode | None]:
    """An IPv4 engine knowing one node, and its IPv6 sibling with `sibling_nodes` nodes."""
    v4 = DHTNode(b"\x01" * 20, random.Random(1), 0.0)
    v4.table.heard_from(b"\x02" * 20, V4_PEER, 0.0, responded=True)
    if sibling_nodes is None:
        return v4, None
    v6 = DHTNode(b"\x01" * 20, random.Random(2), 0.0, DHTConfig(ipv6=True))
    for i in range(sibling_nodes):
        v6.table.heard_from(
            bytes([0x80 + i]) * 20, (f"fd00:{i + 1:x}::1", 6881), 0.0, responded=True
        )
    v4.set_sibling(v6)
    v6.set_sibling(v4)
    return v4, v6


def _query_want(node: DHTNode) -> tuple[bytes, ...]:
    node.find_node(b"\x33" * 20, 0.0)
    ((data, _),) = node.datagrams_to_send()
    query = decode_message(data)
    assert isinstance(query, FindNodeQuery)
    return query.want


@pytest.mark.parametrize(
    ("sibling_nodes", "want"), [(None, ()), (0, (b"n4", b"n6")), (7, (b"n4", b"n6")), (8, ())]
)
def test_ipv4_lookups_ask_for_ipv6_only_while_the_sibling_is_short(
    sibling_nodes: int | None, want: tuple[bytes, ...]
) -> None:
    v4, _ = _engines(sibling_nodes)
    assert _query_want(v4) == want


def test_ipv6_lookups_ask_for_their_own_family() -> None:
    v6 = DHTNode(b"\x01" * 20, random.Random(1), 0.0, DHTConfig(ipv6=True))
    v6.table.heard_from(b"\x02" * 20, ("fd00::9", 6881), 0.0, responded=True)
    assert _query_want(v6) == (b"n6",)


@pytest.mark.parametrize(("sibling_nodes", "reported"), [(None, False), (0, True), (8, False)])
def test_ipv6_contacts_in_a_reply_are_reported_for_a_short_sibling(
    sibling_nodes: int | None, reported: bool
) -> None:
    v4, _ = _engines(sibling_nodes)
    v4.find_node(b"\x33" * 20, 0.0)
    ((data, dst),) = v4.datagrams_to_send()
    six = tuple(NodeInfo(bytes([i]) * 20, (f"fd01:{i:x}::1", 7000 + i)) for i in range(1, 11))
    four = (NodeInfo(b"\x44" * 20, ("127.0.3.2", 6881)),)
    reply = Response(decode_message(data).t, b"\x02" * 20, four, six)
    v4.receive_datagram(encode_message(reply), dst, 0.1)
    events = []
    while (event := v4.next_event()) is not None:
        events.append(event)
    other = [e for e in events if isinstance(e, OtherFamilyNodes)]
    if reported:
        assert other == [OtherFamilyNodes(six[:8])]
    else:
        assert other == []
    # The IPv6 contacts never enter the IPv4 engine's lookup or table.
    assert all(":" not in e.addr[0] for e in v4.table.entries())
