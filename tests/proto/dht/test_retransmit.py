"""Transaction-layer retransmission and early start of queued lookups (cold start)."""

from __future__ import annotations

import random

import pytest

from shoal.dht.events import BootstrapFinished, DHTEvent
from shoal.dht.krpc import GetPeersQuery, Response, decode_message
from shoal.dht.node import DHTConfig, DHTNode

Addr = tuple[str, int]
IH = bytes.fromhex("aa" * 20)
A: Addr = ("10.0.0.1", 6881)
B: Addr = ("10.0.0.2", 6881)


def nid(n: int) -> bytes:
    return n.to_bytes(20, "big")


def node(n: int, config: DHTConfig | None = None) -> DHTNode:
    return DHTNode(nid(n), random.Random(n), 0.0, config)


def events(n: DHTNode) -> list[DHTEvent]:
    out = []
    while (ev := n.next_event()) is not None:
        out.append(ev)
    return out


def deliver(src: DHTNode, src_addr: Addr, dst: DHTNode, dst_addr: Addr, now: float) -> int:
    """Deliver everything `src` queued for `dst_addr`; returns how many datagrams."""
    out = [d for d, to in src.datagrams_to_send() if to == dst_addr]
    for data in out:
        dst.receive_datagram(data, src_addr, now)
    return len(out)


def test_lost_bootstrap_query_is_resent_once_byte_for_byte() -> None:
    a = node(1)
    a.bootstrap([B], 0.0)
    first = a.datagrams_to_send()
    assert [to for _, to in first] == [B]
    assert a.get_timer() == 0.5  # retransmit_unknown: no RTT for a bootstrap address
    a.handle_timer(0.5)
    assert a.datagrams_to_send() == first  # same bytes, so the same ``t``
    assert a.statistics().retransmits == 1
    resent = []
    now = 0.5
    for _ in range(20):  # until the query's hard deadline and beyond: never a third copy
        timer = a.get_timer()
        assert timer is not None
        now = max(now, timer)
        if now > 6.0:
            break
        a.handle_timer(now)
        resent += [d for d, to in a.datagrams_to_send() if to == B and d == first[0][0]]
    assert resent == []  # (the bootstrap retry meanwhile is a new query with its own t)


def test_reply_to_the_resent_copy_is_accepted_without_an_rtt_sample() -> None:
    a, b = node(1), node(2)
    a.bootstrap([B], 0.0)
    a.datagrams_to_send()  # the first copy is lost
    a.handle_timer(0.5)
    assert deliver(a, A, b, B, 0.55) == 1
    assert deliver(b, B, a, A, 0.6) == 1
    entry = a.table.get(nid(2))
    assert entry is not None
    # Karn: the reply may answer either copy, so it says nothing about the RTT.
    assert a.table.rtt(B) is None


def test_answered_query_is_not_resent() -> None:
    a, b = node(1), node(2)
    a.bootstrap([B], 0.0)
    first = a.datagrams_to_send()
    for data, _ in first:
        b.receive_datagram(data, A, 0.0)
    deliver(b, B, a, A, 0.1)
    a.datagrams_to_send()  # whatever the lookup asks next
    a.handle_timer(0.5)
    assert first[0] not in a.datagrams_to_send()
    assert a.table.rtt(B) == pytest.approx(0.1)


@pytest.mark.parametrize(("rtt", "delay"), [(0.01, 0.2), (0.1, 0.3), (0.5, 1.0)])
def test_query_to_a_node_with_a_known_rtt_is_resent_after_a_clamped_multiple(
    rtt: float, delay: float
) -> None:
    a = node(1)
    a.table.heard_from(nid(2), B, 0.0, responded=True, rtt=rtt)
    a.ping(B, 0.0, nid(2))
    sent = a.datagrams_to_send()
    assert len(sent) == 1
    assert a.get_timer() == pytest.approx(delay)
    a.handle_timer(delay - 1e-6)
    assert a.datagrams_to_send() == []
    a.handle_timer(delay + 1e-6)
    assert a.datagrams_to_send() == sent


def test_lookup_queries_to_nodes_never_heard_from_are_not_resent() -> None:
    # Half the nodes learned from replies are dead: the lookup's soft timeout moves on
    # instead of doubling traffic to them.
    a = node(1)
    a.table.heard_from(nid(2), B, 0.0, responded=False)  # a querier: no RTT
    a.find_node(nid(3), 0.0)
    assert [to for _, to in a.datagrams_to_send()] == [B]
    now = 0.0
    for _ in range(50):
        timer = a.get_timer()
        if timer is None or timer > 4.9:
            break
        now = max(now, timer)
        a.handle_timer(now)
        assert [to for _, to in a.datagrams_to_send() if to == B] == []


def test_retransmission_can_be_disabled() -> None:
    a = node(1, DHTConfig(retransmit_factor=0.0))
    a.bootstrap([B], 0.0)
    a.datagrams_to_send()
    for now in (0.5, 1.0, 1.4):  # before the bootstrap lookup gives up
        a.handle_timer(now)
        assert [to for _, to in a.datagrams_to_send() if to == B] == []


def test_queued_lookup_starts_on_the_first_reply_seeded_with_the_bootstrap_nodes() -> None:
    b = node(2)
    others = [(nid(0x80 + i), (f"10.0.1.{i}", 6881)) for i in range(1, 9)]
    for other_id, other_addr in others:
        b.table.heard_from(other_id, other_addr, 0.0, responded=True, rtt=0.05)
    a = node(1)
    a.bootstrap([B], 0.0)
    a.get_peers(IH, 0.0)
    assert a.statistics().queued_lookups == 1
    deliver(a, A, b, B, 0.0)
    deliver(b, B, a, A, 0.1)  # b answers with its 8 contacts
    assert a.statistics().queued_lookups == 0
    assert not any(isinstance(e, BootstrapFinished) for e in events(a))  # still running
    sent = [(decode_message(d), to) for d, to in a.datagrams_to_send()]
    get_peers_to = {to for msg, to in sent if isinstance(msg, GetPeersQuery)}
    # Not just the one node in the table: also the contacts the bootstrap learned.
    assert get_peers_to <= {B} | {addr for _, addr in others}
    assert len(get_peers_to) >= 2
    assert all(not isinstance(msg, Response) for msg, _ in sent)
