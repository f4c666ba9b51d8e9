"""DHTNode engines wired together in memory, with a scripted clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht import bep42
from shoal.dht.events import (
    AnnounceReceived,
    AnnounceSent,
    BootstrapFinished,
    DHTEvent,
    ExternalAddressVoted,
    LookupFinished,
    NodeAdded,
    PeersFound,
    QueryTimedOut,
)
from shoal.dht.krpc import (
    AnnouncePeerQuery,
    Error,
    ErrorCode,
    FindNodeQuery,
    GetPeersQuery,
    Message,
    PingQuery,
    Response,
    decode_message,
    encode_message,
)
from shoal.dht.lookup import LookupConfig
from shoal.dht.node import DHTConfig, DHTNode

from .strategies import messages

Addr = tuple[str, int]
IH = bytes.fromhex("aa" * 20)


def nid(n: int) -> bytes:
    return n.to_bytes(20, "big")


class Net:
    """Delivers datagrams between engines by hand; addresses not in `nodes` are dead."""

    def __init__(self) -> None:
        self.nodes: dict[Addr, DHTNode] = {}
        self.events: dict[Addr, list[DHTEvent]] = {}
        self.now = 0.0
        self.sent = 0

    def add(self, addr: Addr, node_id: bytes, config: DHTConfig | None = None) -> DHTNode:
        node = DHTNode(node_id, random.Random(int.from_bytes(node_id[:4], "big")), self.now, config)
        self.nodes[addr] = node
        self.events[addr] = []
        return node

    def pump(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            moved = False
            for src, node in list(self.nodes.items()):
                for data, dst in node.datagrams_to_send():
                    moved = True
                    self.sent += 1
                    if dst in self.nodes:
                        self.nodes[dst].receive_datagram(data, src, self.now)
            self._collect()
            if not moved:
                return
        raise AssertionError("network did not settle")

    def advance(self, until: float) -> None:
        """Run timers (delivering instantly) until virtual time `until`."""
        for _ in range(10_000):
            self.pump()
            due = [t for n in self.nodes.values() if (t := n.get_timer()) is not None]
            nxt = min(due, default=until)
            if nxt > until:
                break
            self.now = max(self.now, nxt)
            for node in self.nodes.values():
                timer = node.get_timer()
                if timer is not None and timer <= self.now:
                    node.handle_timer(self.now)
        self.now = until
        self.pump()

    def _collect(self) -> None:
        for addr, node in self.nodes.items():
            while (ev := node.next_event()) is not None:
                self.events[addr].append(ev)

    def of(self, addr: Addr, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events[addr] if isinstance(e, kind)]


def addr(n: int) -> Addr:
    return (f"127.0.0.{n}", 6000 + n)


def swarm(count: int, config: DHTConfig | None = None) -> Net:
    """`count` nodes that all bootstrapped through node 1."""
    net = Net()
    rng = random.Random(99)
    for i in range(1, count + 1):
        net.add(addr(i), rng.randbytes(20), config)
    for i in range(2, count + 1):
        net.nodes[addr(i)].bootstrap([addr(1)], net.now)
        net.pump()
    net.advance(net.now + 10)
    return net


def exchange(node: DHTNode, msg: Message, src: Addr, now: float = 0.0) -> list[Message]:
    node.receive_datagram(encode_message(msg), src, now)
    return [decode_message(d) for d, dst in node.datagrams_to_send() if dst == src]


def test_ping_adds_both_sides() -> None:
    net = Net()
    a = net.add(addr(1), nid(1))
    b = net.add(addr(2), nid(2))
    a.ping(addr(2), 0.0)
    net.pump()
    entry_b = a.table.get(nid(2))
    assert entry_b is not None
    assert entry_b.last_response == 0.0
    assert b.table.get(nid(1)) is not None  # the query taught b about a
    assert NodeAdded(nid(2), addr(2)) in net.events[addr(1)]
    assert a.statistics().transactions == 0


def test_ping_reply_carries_ip_and_version() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    (reply,) = exchange(node, PingQuery(b"t1", nid(5)), ("127.0.0.9", 4444))
    assert isinstance(reply, Response)
    assert reply.t == b"t1"
    assert reply.node_id == nid(1)
    assert reply.ip == ("127.0.0.9", 4444)
    assert reply.version == DHTConfig().version


def test_find_node_through_a_chain() -> None:
    net = Net()
    a = net.add(addr(1), nid(1))
    net.add(addr(2), nid(2))
    c = net.add(addr(3), nid(0xC0 << 152))
    c.ping(addr(2), 0.0)  # b learns c
    a.ping(addr(2), 0.0)  # a learns b
    net.pump()
    lookup_id = a.find_node(nid(0xC0 << 152), net.now)
    net.advance(5.0)
    (done,) = net.of(addr(1), LookupFinished)
    assert done.lookup_id == lookup_id
    assert (nid(0xC0 << 152), addr(3)) in done.closest
    assert a.table.get(nid(0xC0 << 152)) is not None


def test_find_node_reply_lists_closest_nodes() -> None:
    node = DHTNode(nid(0), random.Random(1), 0.0)
    for i in range(1, 12):
        exchange(node, PingQuery(b"p", nid(i << 100)), addr(i))
    (reply,) = exchange(node, FindNodeQuery(b"f", nid(77), nid(3 << 100)), addr(50))
    assert isinstance(reply, Response)
    assert 0 < len(reply.nodes) <= 8
    assert reply.nodes[0].node_id == nid(3 << 100)


def test_get_peers_announce_get_peers_across_a_swarm() -> None:
    net = swarm(8)
    announcer, seeker = net.nodes[addr(3)], net.nodes[addr(7)]
    ann_id = announcer.announce(IH, 7000, net.now)
    net.advance(net.now + 10)
    (sent,) = [e for e in net.of(addr(3), AnnounceSent) if e.lookup_id == ann_id]
    assert sent.nodes >= 1
    stored = [e for a in net.nodes for e in net.of(a, AnnounceReceived)]
    assert AnnounceReceived(IH, (addr(3)[0], 7000)) in stored
    look_id = seeker.get_peers(IH, net.now)
    net.advance(net.now + 10)
    found = {p for e in net.of(addr(7), PeersFound) if e.lookup_id == look_id for p in e.peers}
    assert (addr(3)[0], 7000) in found
    assert any(e.lookup_id == look_id for e in net.of(addr(7), LookupFinished))


def test_implied_port_uses_udp_source_port() -> None:
    net = swarm(4)
    net.nodes[addr(2)].announce(IH, 0, net.now, implied_port=True)
    net.advance(net.now + 10)
    stored = [e.peer for a in net.nodes for e in net.of(a, AnnounceReceived)]
    assert stored
    assert set(stored) == {addr(2)}


def test_token_rules() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    me, other = ("127.0.0.5", 5000), ("127.0.0.6", 5000)
    (resp,) = exchange(node, GetPeersQuery(b"g", nid(9), IH), me)
    assert isinstance(resp, Response)
    assert resp.token is not None
    token = resp.token

    def announce(src: Addr, tok: bytes, info_hash: bytes = IH) -> Message:
        (reply,) = exchange(node, AnnouncePeerQuery(b"a", nid(9), info_hash, 7, tok), src, 1.0)
        return reply

    bad = announce(me, b"forged!!")
    assert isinstance(bad, Error)
    assert bad.code == ErrorCode.PROTOCOL
    assert isinstance(announce(other, token), Error)  # token was issued to another IP
    assert isinstance(announce(me, token, b"x" * 20), Error)  # and for another info-hash
    assert node.peer_store.peer_count == 0
    assert isinstance(announce(me, token), Response)
    assert node.peer_store.get(IH, 2.0, random.Random(0)) == [("127.0.0.5", 7)]
    # Now the get_peers reply carries the value.
    (resp2,) = exchange(node, GetPeersQuery(b"g", nid(9), IH), other, 2.0)
    assert isinstance(resp2, Response)
    assert resp2.values == (("127.0.0.5", 7),)
    # Ten minutes later the token is dead (two rotations).
    late = exchange(node, AnnouncePeerQuery(b"a", nid(9), IH, 7, token), me, 601.0)
    assert isinstance(late[0], Error)


def test_values_capped_against_amplification() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(amplification=4))
    for i in range(300):
        node.peer_store.add(IH, (f"10.0.{i // 250}.{i % 250}", 1000 + i), 0.0)
    query = encode_message(GetPeersQuery(b"g", nid(9), IH))
    node.receive_datagram(query, addr(9), 1.0)
    ((data, _),) = node.datagrams_to_send()
    reply = decode_message(data)
    assert isinstance(reply, Response)
    assert len(data) <= 4 * len(query)
    assert 0 < len(reply.values) <= 50
    full = DHTNode(nid(1), random.Random(1), 0.0)
    for i in range(300):
        full.peer_store.add(IH, (f"10.0.{i // 250}.{i % 250}", 1000 + i), 0.0)
    (reply8,) = exchange(full, GetPeersQuery(b"g", nid(9), IH), addr(9), 1.0)
    assert isinstance(reply8, Response)
    assert len(reply8.values) == 50


def test_malformed_datagrams_dropped_or_answered_with_203_204() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    for junk in [b"", b"garbage", b"d1:y1:qe", b"d1:t2:aa1:y1:re", b"i5e"]:
        node.receive_datagram(junk, addr(2), 0.0)
        assert node.datagrams_to_send() == []
    node.receive_datagram(b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe", addr(2), 0.0)
    ((data, dst),) = node.datagrams_to_send()
    err = decode_message(data)
    assert dst == addr(2)
    assert isinstance(err, Error)
    assert (err.t, err.code) == (b"xy", ErrorCode.PROTOCOL)
    node.receive_datagram(b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:zz1:y1:qe", addr(2), 0)
    ((data, _),) = node.datagrams_to_send()
    err = decode_message(data)
    assert isinstance(err, Error)
    assert (err.t, err.code) == (b"zz", ErrorCode.METHOD_UNKNOWN)
    assert node.statistics().malformed == 7


def test_unsolicited_and_spoofed_responses_ignored() -> None:
    net = Net()
    a = net.add(addr(1), nid(1))
    a.ping(addr(2), 0.0)
    ((data, _),) = a.datagrams_to_send()
    sent = decode_message(data)
    # Right tid, wrong source address: not accepted.
    a.receive_datagram(encode_message(Response(sent.t, nid(2))), addr(3), 0.1)
    a.receive_datagram(encode_message(Response(b"??", nid(2))), addr(2), 0.1)
    assert len(a.table) == 0
    assert a.statistics().unsolicited == 2
    a.receive_datagram(encode_message(Response(sent.t, nid(2))), addr(2), 0.2)
    assert a.table.get(nid(2)) is not None


def test_read_only_node() -> None:
    net = Net()
    ro = net.add(addr(1), nid(1), DHTConfig(read_only=True))
    normal = net.add(addr(2), nid(2))
    ro.ping(addr(2), 0.0)
    ((data, _),) = ro.datagrams_to_send()
    query = decode_message(data)
    assert isinstance(query, PingQuery)
    assert query.read_only
    normal.receive_datagram(data, addr(1), 0.0)
    replies = normal.datagrams_to_send()
    assert len(replies) == 1  # ro queries are answered...
    assert len(normal.table) == 0  # ...but ro nodes never enter the table
    ro.receive_datagram(replies[0][0], addr(2), 0.1)
    assert ro.table.get(nid(2)) is not None  # ro nodes still use the DHT
    assert exchange(ro, PingQuery(b"p", nid(2)), addr(2), 0.2) == []  # and answer nothing
    assert exchange(ro, GetPeersQuery(b"g", nid(2), IH), addr(2), 0.2) == []


def test_rate_limiting_per_ip() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(rate=1.0, burst=5))
    answered = sum(len(exchange(node, PingQuery(b"p", nid(2)), addr(2), 0.0)) for _ in range(20))
    assert answered == 5
    assert len(exchange(node, PingQuery(b"p", nid(3)), addr(3), 0.0)) == 1  # other IP unaffected
    assert node.statistics().rate_limited == 15
    assert len(exchange(node, PingQuery(b"p", nid(2)), addr(2), 2.0)) == 1  # refilled


def test_query_timeout_marks_failure_and_reports() -> None:
    net = Net()
    a = net.add(addr(1), nid(1), DHTConfig(query_timeout=3.0))
    a.ping(addr(9), 0.0)  # nobody lives there
    net.pump()
    assert a.get_timer() == 0.5  # the one retransmission of a query to an unknown id
    net.advance(0.5)
    assert a.get_timer() == 3.0
    net.advance(3.0)
    assert net.of(addr(1), QueryTimedOut) == [QueryTimedOut(addr(9), b"ping", None)]
    assert a.statistics().transactions == 0
    assert a.statistics().timeouts == 1


def test_full_bucket_pings_questionable_node_and_replaces_it_on_timeout() -> None:
    node = DHTNode(nid(0), random.Random(1), 0.0, DHTConfig(k=1, query_timeout=2.0))
    far1, far2 = nid(0xFF << 152), nid(0xFE << 152)
    exchange(node, PingQuery(b"p", far1), addr(2), 0.0)
    node.receive_datagram(encode_message(PingQuery(b"p", far2)), addr(3), 1.0)
    pings = [(d, dst) for d, dst in node.datagrams_to_send() if dst != addr(3)]
    assert [dst for _, dst in pings] == [addr(2)]  # bucket full: ping the questionable far1
    assert isinstance(decode_message(pings[0][0]), PingQuery)
    node.handle_timer(3.5)  # far1 never answers
    assert node.table.get(far1) is None
    assert node.table.get(far2) is not None


def test_bootstrap_queues_lookups_and_retries_soon_then_with_backoff() -> None:
    cfg = DHTConfig(
        lookup=LookupConfig(soft_timeout=0.5, hard_timeout=2.0),
        bootstrap_first_retry=1.0,
        bootstrap_backoff=5.0,
        query_timeout=2.0,
    )
    net = Net()
    a = net.add(addr(1), nid(1), cfg)
    a.bootstrap([addr(2)], 0.0)  # addr(2) is dead for now
    lookup_id = a.get_peers(IH, 0.0)
    assert a.statistics().queued_lookups == 1

    def bootstrap_ends() -> list[float]:
        done = [e for e in net.of(addr(1), LookupFinished) if e.target == nid(1)]
        return [e.stats.finished_at for e in done if e.stats.finished_at is not None]

    net.advance(1.5)
    assert not net.of(addr(1), BootstrapFinished)
    (first,) = bootstrap_ends()
    assert a.get_timer() == first + 1.0  # a lost datagram should not cost seconds
    net.advance(first + 1.0 + 2.0)
    second = bootstrap_ends()[1]
    assert a.get_timer() == second + 5.0  # then the backoff, doubling
    net.advance(second + 5.0 + 2.0)
    third = bootstrap_ends()[2]
    assert a.get_timer() == third + 10.0
    assert a.statistics().queued_lookups == 1  # still waiting for the network
    net.add(addr(2), nid(2))  # the bootstrap node comes up
    net.advance(third + 11.0)
    assert net.of(addr(1), BootstrapFinished)
    assert a.statistics().bootstrapped
    assert any(e.lookup_id == lookup_id for e in net.of(addr(1), LookupFinished))


def test_refresh_lookups_run_for_stale_buckets() -> None:
    net = swarm(3, DHTConfig(maintenance_interval=60.0))
    before = len(net.of(addr(2), LookupFinished))
    net.advance(net.now + 14 * 60)
    assert len(net.of(addr(2), LookupFinished)) == before  # nothing is stale yet
    net.advance(net.now + 2 * 60)  # BEP 5: buckets unchanged for 15 minutes are refreshed
    assert len(net.of(addr(2), LookupFinished)) > before


def test_external_ip_voting() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(ip_votes=2))
    for i in (2, 3):
        node.ping(addr(i), 0.0)
    for data, dst in node.datagrams_to_send():
        t = decode_message(data).t
        node.receive_datagram(
            encode_message(Response(t, nid(dst[1]), ip=("203.0.113.9", 6000))), dst, 0.1
        )
    events = []
    while (ev := node.next_event()) is not None:
        events.append(ev)
    assert ExternalAddressVoted("203.0.113.9", False) in events
    assert node.statistics().external_ip == "203.0.113.9"


def test_lookup_ids_and_bad_commands() -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    first, second = node.find_node(nid(5), 0.0), node.get_peers(IH, 0.0)
    assert second == first + 1
    with pytest.raises(ValueError):
        node.announce(IH, 0, 0.0)  # port 0 needs implied_port


def _feed(node: DHTNode, data: bytes, src: Addr, now: float) -> None:
    node.receive_datagram(data, src, now)
    for out, _ in node.datagrams_to_send():
        decode_message(out)  # everything we send must itself be valid KRPC
    while node.next_event() is not None:
        pass


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_random_datagrams_never_raise(datagrams: list[bytes]) -> None:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    node.get_peers(IH, 0.0)
    for i, data in enumerate(datagrams):
        _feed(node, data, addr(2 + i % 3), float(i))
    node.handle_timer(100.0)


@given(st.lists(messages(), max_size=15), st.integers(0, 3))
def test_valid_but_unexpected_messages_never_raise(msgs: list[Message], seed: int) -> None:
    node = DHTNode(nid(1), random.Random(seed), 0.0)
    node.ping(addr(2), 0.0)
    node.find_node(nid(7), 0.0)
    tids = [decode_message(d).t for d, _ in node.datagrams_to_send()]
    for i, msg in enumerate(msgs):
        if tids and isinstance(msg, (Response, Error)) and i % 2:
            msg = type(msg)(tids[i % len(tids)], *[getattr(msg, f) for f in msg.__slots__[1:]])
        _feed(node, encode_message(msg), addr(2), float(i) / 4)
    node.handle_timer(1000.0)


def test_error_reply_fails_the_lookup_candidate_at_once() -> None:
    a = DHTNode(nid(1), random.Random(1), 0.0)
    a.add_node(addr(2), 0.0)
    ((ping, _),) = a.datagrams_to_send()
    a.receive_datagram(encode_message(Response(decode_message(ping).t, nid(2))), addr(2), 0.0)
    lookup_id = a.find_node(nid(3), 0.0)
    ((query, dst),) = a.datagrams_to_send()
    assert dst == addr(2)
    a.receive_datagram(encode_message(Error(decode_message(query).t, 202, "busy")), addr(2), 0.1)
    events = []
    while (ev := a.next_event()) is not None:
        events.append(ev)
    (done,) = [e for e in events if isinstance(e, LookupFinished)]
    assert done.lookup_id == lookup_id
    assert done.stats.failures == 1
    assert done.closest == ()


def test_ipv6_swarm_uses_nodes6() -> None:
    cfg = DHTConfig(ipv6=True)
    net = Net()
    rng = random.Random(5)
    addrs6 = [("::1", 7000 + i) for i in range(6)]
    for a6 in addrs6:
        net.add(a6, rng.randbytes(20), cfg)
    for a6 in addrs6[1:]:
        net.nodes[a6].bootstrap([addrs6[0]], net.now)
        net.pump()
    net.advance(10.0)
    assert all(len(n.table) >= 2 for n in net.nodes.values())
    net.nodes[addrs6[2]].announce(IH, 9000, net.now)
    net.advance(20.0)
    look = net.nodes[addrs6[4]].get_peers(IH, net.now)
    net.advance(30.0)
    found = {p for e in net.of(addrs6[4], PeersFound) if e.lookup_id == look for p in e.peers}
    assert ("::1", 9000) in found


def _announce_via(enforce: bool) -> AnnounceSent:
    a = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(enforce_bep42=enforce))
    public = ("203.0.113.1", 6881)  # not exempt, and nid(2) does not match it under BEP 42
    a.table.heard_from(nid(2), public, 0.0, responded=True)
    a.announce(IH, 7000, 0.0)
    ((query, dst),) = a.datagrams_to_send()
    assert dst == public
    reply = Response(decode_message(query).t, nid(2), token=b"tok")
    a.receive_datagram(encode_message(reply), public, 0.1)
    announces = [decode_message(d) for d, _ in a.datagrams_to_send()]
    events = []
    while (ev := a.next_event()) is not None:
        events.append(ev)
    (sent,) = [e for e in events if isinstance(e, AnnounceSent)]
    assert sent.nodes == len(announces)
    assert all(isinstance(m, AnnouncePeerQuery) and m.token == b"tok" for m in announces)
    return sent


def test_bep42_enforcement_skips_tokens_of_noncompliant_nodes() -> None:
    assert _announce_via(enforce=False).nodes == 1
    assert _announce_via(enforce=True).nodes == 0


def test_announce_and_find_over_a_terrible_network() -> None:
    # 30 engines on a seeded lossy, duplicating, reordering network (testing.simnet).
    from shoal.testing.simnet import NetConfig, SimNet

    rng = random.Random(2024)
    net = SimNet(rng, NetConfig(loss=0.15, duplicate=0.05, reorder=0.1))
    nodes: dict[Addr, DHTNode] = {}
    for i in range(1, 31):
        a = (f"127.0.{i // 250}.{i % 250 + 1}", 6881)
        nodes[a] = DHTNode(rng.randbytes(20), random.Random(i), net.now)
        net.add(a, nodes[a])
    addrs = list(nodes)
    for a in addrs[1:]:
        nodes[a].bootstrap([addrs[0]], net.now)
        net.poke(a)
    net.run(until=net.now + 60)
    assert all(n.statistics().bootstrapped for n in list(nodes.values())[1:])
    announcer, seeker = addrs[5], addrs[25]
    nodes[announcer].announce(IH, 4242, net.now)
    net.poke(announcer)
    net.run(until=net.now + 30)
    lookup_id = nodes[seeker].get_peers(IH, net.now)
    net.poke(seeker)
    net.run(until=net.now + 30)
    found: set[Addr] = set()
    while (ev := nodes[seeker].next_event()) is not None:
        if isinstance(ev, PeersFound) and ev.lookup_id == lookup_id:
            found.update(ev.peers)
    assert (announcer[0], 4242) in found
    stats = net.statistics()
    assert stats.engine_errors == 0
    assert stats.lost > 0
    assert stats.duplicated > 0


def test_timeouts_fail_by_address_not_by_claimed_id() -> None:
    # Lookup candidates' ids come from other nodes' replies: a liar may pair a real id
    # with a dead address. The timeout there must not count against the real entry.
    a = DHTNode(nid(0), random.Random(1), 0.0)
    victim = nid(0xAB << 152)
    a.table.heard_from(victim, addr(2), 0.0, responded=True)
    a.ping(addr(9), 0.0, node_id=victim)
    a.datagrams_to_send()
    a.handle_timer(100.0)
    entry = a.table.get(victim)
    assert entry is not None
    assert entry.failures == 0
    assert a.next_event() == QueryTimedOut(addr(9), b"ping", victim)


def test_new_id_at_known_address_replaces_the_old_entry() -> None:
    a = DHTNode(nid(0), random.Random(1), 0.0)
    old, new = nid(5 << 150), nid(6 << 150)
    a.table.heard_from(old, addr(2), 0.0, responded=True)
    for now in (1.0, 2.0):  # a good node is only dropped after repeated evidence
        a.ping(addr(2), now)
        ((data, _),) = a.datagrams_to_send()
        reply = Response(decode_message(data).t, new)
        a.receive_datagram(encode_message(reply), addr(2), now + 0.1)
    assert a.table.get(old) is None
    entry = a.table.get_by_addr(addr(2))
    assert entry is not None
    assert entry.node_id == new


def _busy_node() -> DHTNode:
    node = DHTNode(nid(1), random.Random(1), 0.0)
    node.table.heard_from(nid(2), addr(2), 0.0, responded=True)
    node.get_peers(IH, 0.0)
    node.ping(addr(2), 0.0)
    node.datagrams_to_send()
    return node


@given(st.binary(max_size=600))
def test_receive_datagram_is_total(data: bytes) -> None:
    # One-argument form for tools/fuzz.py; the node has open transactions at addr(2).
    node = _busy_node()
    _feed(node, data, addr(2), 0.5)
    _feed(node, data, addr(3), 0.6)
    node.handle_timer(60.0)


def test_concurrent_lookups_are_capped_and_the_queue_drains() -> None:
    cfg = DHTConfig(max_lookups=2)
    net = Net()
    a = net.add(addr(1), nid(1), cfg)
    a.table.heard_from(nid(9), addr(9), 0.0, responded=False)  # dead, questionable
    ids = [a.get_peers(bytes([i]) * 20, 0.0) for i in range(5)]
    stats = a.statistics()
    assert (stats.lookups, stats.queued_lookups) == (2, 3)
    net.advance(60.0)
    done = {e.lookup_id for e in net.of(addr(1), LookupFinished)}
    assert set(ids) <= done
    assert a.statistics().lookups == 0


def test_thousands_of_queued_lookups_finish_without_recursion() -> None:
    # Once the only contact is BAD, queued lookups have no one to ask and finish
    # inside their own launch; that must loop, not recurse.
    a = DHTNode(nid(1), random.Random(1), 0.0, DHTConfig(max_lookups=1))
    a.table.heard_from(nid(9), addr(9), 0.0, responded=False)
    ids = [a.find_node(nid(i), 0.0) for i in range(2, 3002)]
    assert a.statistics().queued_lookups == len(ids) - 1
    now = 0.0
    for _ in range(100):
        a.datagrams_to_send()
        timer = a.get_timer()
        if a.statistics().queued_lookups == 0 or timer is None:
            break
        now = max(now, timer)
        a.handle_timer(now)
    finished = set()
    while (ev := a.next_event()) is not None:
        if isinstance(ev, LookupFinished):
            finished.add(ev.lookup_id)
    assert finished == set(ids)


def _voted_node(regenerate: bool) -> DHTNode:
    cfg = DHTConfig(ip_votes=2, regenerate_id=regenerate)
    node = DHTNode(nid(1), random.Random(1), 0.0, cfg)
    for i in (2, 3):
        node.ping(addr(i), 0.0)
    for data, dst in node.datagrams_to_send():
        reply = Response(decode_message(data).t, nid(dst[1]), ip=("203.0.113.9", 6000))
        node.receive_datagram(encode_message(reply), dst, 0.1)
    return node


def test_regenerate_id_after_vote() -> None:
    assert _voted_node(regenerate=False).node_id == nid(1)
    node = _voted_node(regenerate=True)
    assert node.node_id != nid(1)
    assert bep42.is_valid_node_id("203.0.113.9", node.node_id)
    assert node.table.own_id == node.node_id
    # Everyone we knew is pinged to rebuild the table around the new id.
    pinged = {
        dst for data, dst in node.datagrams_to_send() if isinstance(decode_message(data), PingQuery)
    }
    assert pinged == {addr(2), addr(3)}
