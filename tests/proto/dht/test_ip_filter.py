"""The IP filter inside the pure DHT node (issue 14): blocked addresses never enter the
routing table or a replacement cache, are never queried, get no answer, and their
peers (``values``) never reach us."""

from __future__ import annotations

import random

from shoal.dht.compact import NodeInfo
from shoal.dht.events import PeersFound
from shoal.dht.krpc import (
    FindNodeQuery,
    GetPeersQuery,
    PingQuery,
    Query,
    Response,
    decode_message,
    encode_message,
)
from shoal.dht.node import DHTConfig, DHTNode
from shoal.ipfilter import parse_ip_filter

from .test_node import IH, addr, nid, swarm

# Blocks 127.0.0.4 and 127.0.0.5 (and the documentation peer below), nothing else.
FILTER, _ = parse_ip_filter(b"x:127.0.0.4-127.0.0.5\ny:192.0.2.66-192.0.2.66\n")
BLOCKED = [addr(4), addr(5)]


def _queries_to(node: DHTNode) -> list[tuple[Query, tuple[str, int]]]:
    out = []
    for data, dst in node.datagrams_to_send():
        msg = decode_message(data)
        if isinstance(msg, Query):
            out.append((msg, dst))
    return out


def test_blocked_querier_gets_no_answer_and_no_table_entry() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    node.set_ip_filter(FILTER.blocks)
    for query in (PingQuery(b"p", nid(9)), FindNodeQuery(b"f", nid(9), nid(3))):
        node.receive_datagram(encode_message(query), addr(4), 0.0)
    assert node.datagrams_to_send() == []
    assert node.table.get(nid(9)) is None
    stats = node.statistics()
    assert stats.filtered == 2
    assert stats.queries_received == 0  # dropped before it was even decoded
    node.receive_datagram(encode_message(PingQuery(b"p", nid(9))), addr(6), 0.0)
    assert len(node.datagrams_to_send()) == 1  # an address the filter allows is served
    assert node.table.get(nid(9)) is not None


def test_blocked_nodes_in_replies_are_never_queried_and_their_values_dropped() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(restrict_ips=False))
    node.set_ip_filter(FILTER.blocks)
    node.ping(addr(2), 0.0)  # the table's one node
    [(ping, _)] = _queries_to(node)
    node.receive_datagram(encode_message(Response(ping.t, nid(2))), addr(2), 0.0)
    lookup_id = node.get_peers(IH, 0.0)
    sent = _queries_to(node)
    assert [dst for _, dst in sent] == [addr(2)]
    get_peers = sent[0][0]
    assert isinstance(get_peers, GetPeersQuery)
    contacts = tuple(NodeInfo(nid(0xAA << 150 | i), addr(i)) for i in (3, 4, 5, 6))
    peers = (("192.0.2.66", 80), ("192.0.2.67", 80))
    reply = Response(get_peers.t, nid(2), nodes=contacts, values=peers, token=b"tk")
    node.receive_datagram(encode_message(reply), addr(2), 0.1)
    asked = {dst for _, dst in _queries_to(node)}
    assert asked == {addr(3), addr(6)}
    found = [e for e in iter(node.next_event, None) if isinstance(e, PeersFound)]
    assert [p for e in found if e.lookup_id == lookup_id for p in e.peers] == [peers[1]]


def test_blocked_bootstrap_address_and_pings_are_never_sent() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    node.set_ip_filter(FILTER.blocks)
    node.bootstrap([addr(4), addr(6)], 0.0)
    node.ping(addr(5), 0.0)
    node.add_node(addr(4), 0.0)
    assert {dst for _, dst in node.datagrams_to_send()} == {addr(6)}


def test_setting_a_filter_evicts_blocked_nodes() -> None:
    net = swarm(8, DHTConfig(restrict_ips=False))
    node = net.nodes[addr(1)]
    known = {e.addr for e in node.table.entries()}
    assert known >= set(BLOCKED)  # the scenario needs them present first
    node.set_ip_filter(FILTER.blocks)
    assert {e.addr for e in node.table.entries()} == known - set(BLOCKED)
    # and they stay out while the swarm keeps talking (refreshes, their own queries)
    for other in BLOCKED:
        net.nodes[other].find_node(nid(1), net.now)
    net.advance(net.now + 120)
    assert not {e.addr for e in node.table.entries()} & set(BLOCKED)
    assert node.statistics().filtered > 0


def test_setting_a_filter_empties_blocked_replacements() -> None:
    node = DHTNode(nid(0), random.Random(1), 0.0, DHTConfig(restrict_ips=False, k=2))
    for i in (6, 7, 4):  # one far bucket of k=2: the third waits as a replacement
        node.table.heard_from(nid(1 << 159 | i), addr(i), 0.0, responded=True)
    [waiting] = [e.addr for b in node.table.replacement_entries() for e in b]
    assert waiting == addr(4)
    node.set_ip_filter(FILTER.blocks)
    assert [e for b in node.table.replacement_entries() for e in b] == []
    assert {e.addr for e in node.table.entries()} == {addr(6), addr(7)}


def test_filter_off_again_lets_them_back() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    node.set_ip_filter(FILTER.blocks)
    node.set_ip_filter(None)
    node.receive_datagram(encode_message(PingQuery(b"p", nid(9))), addr(4), 0.0)
    assert len(node.datagrams_to_send()) == 1
