"""SimNet mechanics with a toy echo engine: latency, loss, duplication, reordering, timers."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import DecodeError, RemoteProtocolError
from shoal.ids import random_id
from shoal.testing.simnet import Addr, NetConfig, SimNet, kademlia_contacts


class Echo:
    """Answers b"ping:N" with b"pong:N"; can send pings and keep one timer."""

    def __init__(self) -> None:
        self.out: list[tuple[bytes, Addr]] = []
        self.received: list[tuple[float, bytes, Addr]] = []
        self.timer: float | None = None
        self.fired: list[float] = []
        self.raise_on: bytes | None = None

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.received.append((now, data, addr))
        if data == self.raise_on:
            raise RemoteProtocolError("toy engine refuses this datagram")
        if data == b"boom":
            raise RuntimeError("a bug")
        if data.startswith(b"ping:"):
            self.out.append((b"pong:" + data[5:], addr))

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return self.timer

    def handle_timer(self, now: float) -> None:
        if self.timer is not None and now >= self.timer:
            self.fired.append(now)
            self.timer = None


A: Addr = ("10.0.0.1", 1)
B: Addr = ("10.0.0.2", 2)


def pair(config: NetConfig, seed: int = 1) -> tuple[SimNet, Echo, Echo]:
    net = SimNet(random.Random(seed), config)
    a, b = Echo(), Echo()
    net.add(A, a)
    net.add(B, b)
    return net, a, b


def test_round_trip_takes_exactly_the_link_rtt() -> None:
    net, a, b = pair(NetConfig())
    rtt = net.rtt(A, B)
    assert rtt == net.rtt(B, A) > 0
    a.out.append((b"ping:1", B))
    net.poke(A)
    net.run()
    assert [(d, src) for _, d, src in b.received] == [(b"ping:1", A)]
    assert [(d, src) for _, d, src in a.received] == [(b"pong:1", B)]
    assert b.received[0][0] == pytest.approx(rtt / 2)
    assert a.received[0][0] == pytest.approx(rtt)
    stats = net.statistics()
    assert (stats.sent, stats.delivered, stats.lost) == (2, 2, 0)


def test_link_rtts_are_log_normal_around_the_median_and_seed_determined() -> None:
    net = SimNet(random.Random(7), NetConfig(median_rtt=0.1, rtt_sigma=0.6))
    rtts = [net.rtt(("10.1.0.1", 1), ("10.2.0.1", i)) for i in range(1, 3001)]
    assert statistics.median(rtts) == pytest.approx(0.1, rel=0.1)
    # log-normal: the log has standard deviation sigma
    assert statistics.stdev(map(math.log, rtts)) == pytest.approx(0.6, rel=0.1)
    again = SimNet(random.Random(7), NetConfig(median_rtt=0.1, rtt_sigma=0.6))
    assert again.rtt(("10.1.0.1", 1), ("10.2.0.1", 5)) == rtts[4]
    other = SimNet(random.Random(8), NetConfig(median_rtt=0.1, rtt_sigma=0.6))
    assert other.rtt(("10.1.0.1", 1), ("10.2.0.1", 5)) != rtts[4]


def test_loss_and_duplication_rates() -> None:
    net, _a, b = pair(NetConfig(loss=0.3, duplicate=0.2))
    for i in range(3000):
        net.send(A, b"x%d" % i, B)
    net.run()
    stats = net.statistics()
    assert stats.lost / 3000 == pytest.approx(0.3, abs=0.04)
    assert stats.duplicated / (3000 - stats.lost) == pytest.approx(0.2, abs=0.04)
    assert len(b.received) == stats.delivered == 3000 - stats.lost + stats.duplicated


@pytest.mark.parametrize("reorder", [0.0, 0.5])
def test_reordering_only_when_asked(reorder: float) -> None:
    net, a, b = pair(NetConfig(reorder=reorder))
    for i in range(100):
        net.send(A, i.to_bytes(2, "big"), B)
    net.run()
    got = [int.from_bytes(d, "big") for _, d, _ in b.received]
    assert sorted(got) == list(range(100))
    assert (got == sorted(got)) == (reorder == 0.0)
    assert a.received == []


def test_datagrams_to_addresses_without_engine_vanish() -> None:
    net, a, _b = pair(NetConfig())
    a.out.append((b"ping:1", ("10.9.9.9", 9)))
    net.poke(A)
    net.run()
    assert net.statistics().unreachable == 1
    assert a.received == []
    net.remove(B)
    net.send(A, b"ping:2", B)
    net.run()
    assert net.statistics().unreachable == 2


def test_timers_fire_once_at_their_time_and_can_be_superseded() -> None:
    net, a, _b = pair(NetConfig())
    a.timer = 5.0
    net.poke(A)
    a.timer = 3.0  # moved earlier: the 5.0 entry is stale
    net.poke(A)
    net.run(until=4.0)
    assert a.fired == [3.0]
    assert net.now == 4.0
    a.timer = 4.5
    net.poke(A)
    net.run()
    assert a.fired == [3.0, 4.5]
    assert net.now == 4.5


def test_run_stops_on_predicate_and_event_budget() -> None:
    net, a, _b = pair(NetConfig())
    for i in range(10):
        net.send(A, b"ping:%d" % i, B)
    assert net.run(stop=lambda: len(a.received) >= 3)
    assert len(a.received) == 3
    assert not net.run(max_events=1)
    assert net.statistics().events == 3 + 10 + 1


def test_engine_protocol_errors_are_contained_but_bugs_escape() -> None:
    net, _a, b = pair(NetConfig())
    b.raise_on = b"bad"
    net.send(A, b"bad", B)
    net.run()
    assert net.statistics().engine_errors == 1
    net.send(A, b"boom", B)
    with pytest.raises(RuntimeError):
        net.run()


def test_same_seed_same_trace_with_all_impairments() -> None:
    def trace(seed: int) -> list[tuple[float, bytes, Addr]]:
        cfg = NetConfig(loss=0.2, duplicate=0.2, reorder=0.3)
        net, a, b = pair(cfg, seed)
        for i in range(200):
            a.out.append((b"ping:%d" % i, B))
        net.poke(A)
        net.run()
        return a.received + b.received

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        NetConfig(loss=1.5)
    with pytest.raises(ValueError):
        NetConfig(median_rtt=0)
    net = SimNet(random.Random(1))
    net.add(A, Echo())
    with pytest.raises(ValueError):
        net.add(A, Echo())


def shared_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 160 - x.bit_length()


@given(n=st.integers(1, 300), k=st.integers(1, 8), seed=st.integers(0, 2**32))
@settings(max_examples=25)
def test_kademlia_contacts_fill_each_bucket_with_up_to_k(n: int, k: int, seed: int) -> None:
    rng = random.Random(seed)
    ids = list({random_id(rng) for _ in range(n)})
    tables = kademlia_contacts(ids, k, rng)
    for i, contacts in enumerate(tables):
        assert i not in contacts
        assert len(set(contacts)) == len(contacts)
        got = Counter(shared_prefix(ids[i], ids[j]) for j in contacts)
        members = Counter(shared_prefix(ids[i], ids[j]) for j in range(len(ids)) if j != i)
        assert got == Counter({b: min(k, m) for b, m in members.items()})
    # A foreign owner (e.g. a probe joining the swarm) gets the same kind of table.
    owner = random_id(rng)
    (contacts,) = kademlia_contacts(ids, k, rng, owners=[owner])
    got = Counter(shared_prefix(owner, ids[j]) for j in contacts)
    members = Counter(shared_prefix(owner, x) for x in ids if x != owner)
    assert got == Counter({b: min(k, m) for b, m in members.items()})


def test_engine_errors_include_decode_errors() -> None:
    class Strict(Echo):
        def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
            raise DecodeError("not bencode")

    net = SimNet(random.Random(1))
    net.add(B, Strict())
    net.send(A, b"x", B)
    net.run()
    assert net.statistics().engine_errors == 1
