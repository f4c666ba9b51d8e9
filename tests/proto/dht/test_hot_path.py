"""The serving fast path (`fast_serving.HotPath`) answers exactly as the general path.

Two twin nodes (same id, same seeded rng) get the same datagrams at the same times;
one serves through `HotPath`, the other has it switched off and decodes everything
with `krpc.decode_message`. Every datagram they send, every event and every counter
must be equal, byte for byte. The load makes the fast path's special cases happen:
many sources (full buckets of GOOD nodes, since the test answers the nodes' pings),
announces with the tokens the replies carried (so get_peers lists stored peers, and
small queries hit the amplification cap), bad tokens, rate-limited sources, IPv6
sources, and queries outside the canonical shape.
"""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.dht.compact import encode_nodes
from shoal.dht.krpc_fast import parse_hot_query
from shoal.dht.node import DHTConfig, DHTNode
from shoal.dht.routing import RoutingTable

_TOKEN = re.compile(rb"5:token(\d{1,2}):")
_QUERY_T = re.compile(rb"1:t(\d{1,2}):")
_SWARMS = [bytes([i]) * 20 for i in range(1, 9)]


def _twins(
    seed: int, amplification: int, version: bytes | None = b"SH\x00\x01"
) -> tuple[DHTNode, DHTNode]:
    node_id = random.Random(seed).randbytes(20)
    config = DHTConfig(amplification=amplification, version=version)
    fast = DHTNode(node_id, random.Random(seed), 0.0, config)
    slow = DHTNode(node_id, random.Random(seed), 0.0, config)
    slow._hot = None  # the general path only
    assert fast._hot is not None
    return fast, slow


def _query(method: bytes, args: bytes, t: bytes, tail: bytes = b"") -> bytes:
    return b"d1:ad" + args + b"e1:q%d:%s1:t%d:%s%s1:y1:qe" % (len(method), method, len(t), t, tail)


class _Load:
    """Builds queries from a pool of sources, remembering the tokens they were given."""

    def __init__(self, rng: random.Random, sources: int) -> None:
        self.rng = rng
        self.ids = [rng.randbytes(20) for _ in range(sources)]
        self.addrs = [(f"127.0.{i // 200}.{i % 200 + 1}", 1000 + i) for i in range(sources)]
        self.tokens: dict[int, tuple[bytes, bytes]] = {}
        self.by_addr = {a: i for i, a in enumerate(self.addrs)}

    def datagram(self, kind: int, src: int, n: int) -> bytes:
        rng = self.rng
        ident = b"2:id20:" + self.ids[src]
        t = b"%d" % n if n % 3 else b"tx%04d" % n
        tail = b"1:v4:LT\x01\x02" if n % 2 else b""
        swarm = _SWARMS[n % len(_SWARMS)]
        if kind == 0:
            return _query(b"ping", ident, t, tail)
        if kind == 1:
            return _query(b"find_node", ident + b"6:target20:" + rng.randbytes(20), t, tail)
        if kind == 2:
            return _query(b"get_peers", ident + b"9:info_hash20:" + swarm, t, tail)
        if kind == 3:
            ih, token = self.tokens.get(src, (swarm, b"bad-token"))
            if n % 7 == 0:
                token = b"x" + token[1:]
            port = b"12:implied_porti1e" if n % 5 == 0 else b""
            args = ident + port + b"9:info_hash20:" + ih + b"4:porti%de" % (2000 + n % 50)
            return _query(b"announce_peer", args + b"5:token%d:%s" % (len(token), token), t, tail)
        if kind == 4:
            args = ident + b"9:info_hash20:" + swarm + b"6:scrapei1e"
            return _query(b"get_peers", args, t, tail)
        if kind == 5:
            return _query(b"get", ident + b"6:target20:" + rng.randbytes(20), t, tail)
        if kind == 6:
            target = b"6:target20:" + rng.randbytes(20)
            return _query(b"sample_infohashes", ident + target, t, tail)
        if kind == 7:  # BEP 32 "want": the general path's business
            return _query(b"find_node", ident + b"6:target20:" + bytes(20) + b"4:wantl2:n4e", t)
        return b"d1:ad2:id20:" + self.ids[src] + b"e1:q4:ping1:t"  # truncated

    def learn(self, src: int, kind: int, n: int, reply: bytes) -> None:
        """Keep the token of a get_peers reply for the source's next announce."""
        m = _TOKEN.search(reply)
        if kind == 2 and m is not None:
            token = reply[m.end() : m.end() + int(m.group(1))]
            self.tokens[src] = (_SWARMS[n % len(_SWARMS)], token)


def _drain_equal(fast: DHTNode, slow: DHTNode) -> list[tuple[bytes, tuple[str, int]]]:
    out = fast.datagrams_to_send()
    assert out == slow.datagrams_to_send()
    while (event := fast.next_event()) is not None:
        assert event == slow.next_event()
    assert slow.next_event() is None
    return out


def _run(
    seed: int,
    plan: list[tuple[int, int]],
    sources: int,
    step: float,
    amplification: int = 8,
    version: bytes | None = b"SH\x00\x01",
) -> int:
    """Feed `plan` ((kind, source) pairs) to twin nodes; returns how many went fast."""
    fast, slow = _twins(seed, amplification, version)
    load = _Load(random.Random(seed), sources)
    now, hot = 0.0, 0
    for n, (kind, src) in enumerate(plan):
        now += step
        data = load.datagram(kind, src, n)
        addr = load.addrs[src] if kind != 8 or n % 2 else ("::1", 6881)
        hot += parse_hot_query(data) is not None
        fast.receive_datagram(data, addr, now)
        slow.receive_datagram(data, addr, now)
        for reply, dest in _drain_equal(fast, slow):
            if dest == addr:
                load.learn(src, kind, n, reply)
            m = _QUERY_T.search(reply)
            if b"1:y1:q" in reply and m is not None and dest in load.by_addr:
                # The node pings a querier (full bucket): answer as a live node would.
                t = reply[m.end() : m.end() + int(m.group(1))]
                node_id = load.ids[load.by_addr[dest]]
                pong = b"d1:rd2:id20:%se1:t%d:%s1:y1:re" % (node_id, len(t), t)
                fast.receive_datagram(pong, dest, now)
                slow.receive_datagram(pong, dest, now)
                _drain_equal(fast, slow)
        assert fast.statistics(now) == slow.statistics(now)
    return hot


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**16),
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 63)), min_size=1, max_size=150),
    st.sampled_from([0.001, 0.05, 1.0]),
)
def test_hot_path_answers_as_the_general_path(
    seed: int, plan: list[tuple[int, int]], step: float
) -> None:
    _run(seed, plan, 64, step)


def test_hot_path_under_a_long_mixed_load() -> None:
    """Thousands of queries: buckets fill with GOOD nodes, swarms fill with peers."""
    rng = random.Random(7)
    weights = [2, 25, 40, 15, 4, 4, 5, 1, 1]
    plan = [(rng.choices(range(9), weights)[0], rng.randrange(300)) for _ in range(4000)]
    hot = _run(3, plan, 300, 0.01, amplification=5)  # the cap cuts big swarms' values
    assert hot > 0.9 * len(plan)  # the load did go through the fast path


def test_hot_path_without_a_client_version() -> None:
    """Anonymous mode sends no ``v``: the replies end without it on both paths."""
    rng = random.Random(5)
    plan = [(rng.randrange(9), rng.randrange(100)) for _ in range(1500)]
    _run(5, plan, 100, 0.01, version=None)


def test_rate_limited_queries_are_counted_and_dropped_alike() -> None:
    plan = [(2, 0)] * 60  # one source, far over 10 queries/s
    _run(1, plan, 1, 0.001)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32), st.integers(20, 400), st.floats(0.0, 2000.0))
def test_closest_compact_is_the_encoded_closest(seed: int, nodes: int, later: float) -> None:
    rng = random.Random(seed)
    table = RoutingTable(rng.randbytes(20), now=0.0, rng=rng)
    for i in range(nodes):
        addr = (f"127.1.{i // 200}.{i % 200 + 1}", 7000)
        table.heard_from(rng.randbytes(20), addr, rng.uniform(0, 10), responded=True)
    now = 10.0 + later
    hits = 0
    for _ in range(30):
        target = rng.randbytes(20)
        compact = table.closest_compact(target, 8, now)
        if compact is not None:
            hits += 1
            assert compact == encode_nodes([e.info for e in table.closest(target, 8, now=now)])
    if nodes >= 40 and later < 100:
        assert hits  # full buckets of GOOD nodes: the cache answers


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8), st.data())
def test_hot_path_on_mutated_queries(kind: int, data: st.DataObject) -> None:
    """One byte changed or the tail cut: both paths still agree (and neither raises)."""
    load = _Load(random.Random(1), 4)
    raw = load.datagram(kind, 0, 1)
    i = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        mutated = raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1 :]
    else:
        mutated = raw[:i]
    fast, slow = _twins(1, 8)
    fast.receive_datagram(mutated, load.addrs[0], 1.0)
    slow.receive_datagram(mutated, load.addrs[0], 1.0)
    _drain_equal(fast, slow)
    assert fast.statistics(1.0) == slow.statistics(1.0)
