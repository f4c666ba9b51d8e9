"""PeerStore: caps, LRU eviction, expiry, sampling, and memory under a flood."""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.peer_store import PeerStore, PeerStoreConfig

IH = b"h" * 20
RNG = random.Random(3)


def ih(n: int) -> bytes:
    return n.to_bytes(20, "big")


def peer(n: int) -> tuple[str, int]:
    return (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 6881)


def test_add_get_and_refresh() -> None:
    store = PeerStore()
    store.add(IH, ("1.2.3.4", 1), 0.0)
    store.add(IH, ("1.2.3.4", 1), 5.0)  # refresh, not a duplicate
    store.add(IH, ("1.2.3.4", 2), 5.0)
    assert sorted(store.get(IH, 6.0, RNG)) == [("1.2.3.4", 1), ("1.2.3.4", 2)]
    assert store.peer_count == 2
    assert store.get(b"x" * 20, 6.0, RNG) == []


def test_expiry_uses_last_announce() -> None:
    store = PeerStore(PeerStoreConfig(ttl=100.0))
    store.add(IH, peer(1), 0.0)
    store.add(IH, peer(2), 50.0)
    store.add(IH, peer(1), 60.0)  # re-announce moves it to the back
    assert sorted(store.get(IH, 149.0, RNG)) == [peer(1), peer(2)]
    assert store.get(IH, 150.0, RNG) == [peer(1)]
    store.expire(160.0)
    assert len(store) == 0
    assert store.peer_count == 0


def test_per_swarm_cap_evicts_oldest() -> None:
    store = PeerStore(PeerStoreConfig(max_peers=3))
    for i in range(5):
        store.add(IH, peer(i), float(i))
    assert sorted(store.get(IH, 5.0, RNG)) == sorted([peer(2), peer(3), peer(4)])
    assert store.statistics().evicted_peers == 2


def test_swarm_cap_evicts_least_recently_announced() -> None:
    store = PeerStore(PeerStoreConfig(max_info_hashes=2))
    store.add(ih(1), peer(1), 0.0)
    store.add(ih(2), peer(2), 1.0)
    store.add(ih(1), peer(3), 2.0)  # ih(1) is now the most recent
    store.add(ih(3), peer(4), 3.0)  # evicts ih(2)
    assert store.get(ih(2), 4.0, RNG) == []
    assert len(store.get(ih(1), 4.0, RNG)) == 2
    assert store.get(ih(3), 4.0, RNG) == [peer(4)]


def test_total_cap() -> None:
    store = PeerStore(PeerStoreConfig(max_total_peers=10, max_peers=8))
    for i in range(30):
        store.add(ih(i % 4), peer(i), float(i))
    assert store.peer_count <= 10
    assert sum(len(store.get(ih(i), 30.0, RNG, 100)) for i in range(4)) == store.peer_count
    single = PeerStore(PeerStoreConfig(max_total_peers=3))
    for i in range(6):
        single.add(IH, peer(i), float(i))
    assert sorted(single.get(IH, 6.0, RNG)) == sorted([peer(3), peer(4), peer(5)])


def test_get_samples_at_most_count() -> None:
    store = PeerStore()
    for i in range(200):
        store.add(IH, peer(i), 0.0)
    got = store.get(IH, 1.0, random.Random(1), 50)
    assert len(got) == 50
    assert len(set(got)) == 50
    assert got != store.get(IH, 1.0, random.Random(2), 50)  # a sample, not a fixed prefix


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 30), st.floats(0, 10)), max_size=200))
def test_invariants_under_random_announces(ops: list[tuple[int, int, float]]) -> None:
    cfg = PeerStoreConfig(max_info_hashes=5, max_peers=4, max_total_peers=12, ttl=20.0)
    store = PeerStore(cfg)
    now = 0.0
    for h, p, dt in ops:
        now += dt
        store.add(ih(h), peer(p), now)
        assert len(store) <= cfg.max_info_hashes
        assert store.peer_count <= cfg.max_total_peers
    store.expire(now)
    total = 0
    for h in range(21):
        got = store.get(ih(h), now, RNG, 100)
        assert len(got) <= cfg.max_peers
        total += len(got)
    assert total == store.peer_count


def test_memory_bounded_under_flood_of_distinct_info_hashes() -> None:
    # 10^5 distinct info-hashes, one announce each: only the newest 2000 survive.
    # (A 10^6 flood is measured in the report; memory is the same by construction.)
    store = PeerStore()
    tracemalloc.start()
    try:
        for i in range(100_000):
            store.add(ih(i), peer(i), float(i))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 2000
    assert store.peer_count == 2000
    assert store.get(ih(99_999), 100_000.0, RNG) == [peer(99_999)]
    assert store.get(ih(0), 100_000.0, RNG) == []
    assert peak < 8 * 1024 * 1024, peak


# ---- resisting a flush (the "2,000 new info-hashes flush every real swarm") ----


def real_swarms(store: PeerStore, now: float) -> None:
    for s in range(10):  # ten swarms, five announcing hosts each
        for h in range(5):
            store.add(ih(10_000 + s), (f"10.9.{s}.{h}", 6881), now)


def test_one_host_cannot_flush_the_store() -> None:
    store = PeerStore()
    real_swarms(store, 0.0)
    refused = [store.add(ih(i), ("127.0.0.66", 6881), 1.0) for i in range(2000)]
    assert refused.count(True) == store.config.max_swarms_per_ip
    for s in range(10):
        assert len(store.get(ih(10_000 + s), 2.0, RNG)) == 5
    assert store.statistics().refused == 2000 - store.config.max_swarms_per_ip


def test_many_single_announcer_swarms_cannot_flush_well_announced_ones() -> None:
    store = PeerStore(PeerStoreConfig(max_info_hashes=100))
    real_swarms(store, 0.0)
    for i in range(2000):  # 2000 hosts, one fresh info-hash each
        store.add(ih(i), (f"10.{i >> 8 & 255}.{i & 255}.1", 6881), 1.0 + i / 10)
    assert len(store) == 100
    for s in range(10):
        assert store.strength(ih(10_000 + s)) == 5
        assert len(store.get(ih(10_000 + s), 300.0, RNG)) == 5
    # Among the weak ones the least recently announced went first.
    assert store.get(ih(1999), 300.0, RNG) != []
    assert store.get(ih(0), 300.0, RNG) == []


def test_a_full_table_of_strong_swarms_refuses_new_single_announcer_ones() -> None:
    store = PeerStore(PeerStoreConfig(max_info_hashes=10))
    real_swarms(store, 0.0)
    assert not store.add(ih(1), ("10.1.1.1", 6881), 1.0)
    assert len(store) == 10
    assert all(store.strength(ih(10_000 + s)) == 5 for s in range(10))


def test_ports_per_ip_in_one_swarm_are_capped() -> None:
    store = PeerStore(PeerStoreConfig(max_ports_per_ip=3))
    got = [store.add(IH, ("127.0.0.5", 1000 + p), 0.0) for p in range(10)]
    assert got == [True] * 3 + [False] * 7
    assert store.add(IH, ("127.0.0.5", 1000), 1.0), "a refresh is not a new port"


@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.integers(0, 5), st.integers(0, 3), st.floats(0, 10)),
        max_size=200,
    )
)
def test_bookkeeping_matches_the_stored_peers(ops: list[tuple[int, int, int, float]]) -> None:
    cfg = PeerStoreConfig(
        max_info_hashes=4,
        max_peers=3,
        max_total_peers=8,
        ttl=20.0,
        max_swarms_per_ip=3,
        max_ports_per_ip=2,
    )
    store = PeerStore(cfg)
    now = 0.0
    for h, host, port, dt in ops:
        now += dt
        store.add(ih(h), (f"10.0.0.{host}", 6881 + port), now)
        if dt > 9:
            store.expire(now)
        per_ip: dict[str, int] = {}
        for info_hash, swarm in store._swarms.items():
            ips = {p[0] for p in swarm}
            assert store.strength(info_hash) == len(ips)
            assert info_hash in store._by_strength[len(ips)]
            for ip in ips:
                per_ip[ip] = per_ip.get(ip, 0) + 1
                assert sum(1 for p in swarm if p[0] == ip) <= cfg.max_ports_per_ip
        assert per_ip == store._ip_swarms
        assert all(n <= cfg.max_swarms_per_ip for n in per_ip.values())
        assert sum(len(b) for b in store._by_strength.values()) == len(store)
        assert store.peer_count == sum(len(s) for s in store._swarms.values())
        assert store.peer_count <= cfg.max_total_peers
