"""PeerPool: back-off, bans, busy tracking and the connect-rate bucket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.peer_pool import BASE_BACKOFF, PeerPool, PeerSource, pex_address_allowed

A = ("127.0.0.1", 1000)
B = ("127.0.0.2", 1000)


def test_add_pop_and_busy() -> None:
    pool = PeerPool()
    assert pool.add(A, PeerSource.DHT)
    assert not pool.add(A, PeerSource.PEX)  # known: only the source is merged
    assert pool.pop_candidates(0.0, 5) == [A]
    assert pool.pop_candidates(0.0, 5) == []  # busy until reported back
    assert not pool.mark_busy(A, PeerSource.INCOMING)  # one connection per address


def test_failure_backs_off_exponentially_then_forgets() -> None:
    pool = PeerPool(max_failures=3)
    pool.add(A, PeerSource.USER)
    now = 0.0
    for k in range(2):
        assert pool.pop_candidates(now, 1) == [A]
        pool.failed(A, now)
        wait = BASE_BACKOFF * 2**k
        assert pool.pop_candidates(now + wait - 1, 1) == []
        now += wait
    assert pool.pop_candidates(now, 1) == [A]
    pool.failed(A, now)
    assert pool.known() == []


def test_success_resets_failures_and_close_allows_redial() -> None:
    pool = PeerPool()
    pool.add(A, PeerSource.DHT)
    pool.pop_candidates(0.0, 1)
    pool.failed(A, 0.0)
    pool.pop_candidates(BASE_BACKOFF, 1)
    pool.connected(A)
    pool.closed(A, 100.0)
    assert pool.pop_candidates(100.0, 1) == []
    assert pool.pop_candidates(100.0 + BASE_BACKOFF, 1) == [A]


def test_retry_now_ends_back_offs_but_keeps_failure_counts() -> None:
    """A resumed torrent redials the peers its pause closed at once."""
    pool = PeerPool(max_failures=2)
    pool.add(A, PeerSource.USER)
    pool.add(B, PeerSource.DHT)
    assert sorted(pool.pop_candidates(0.0, 2)) == [A, B]
    pool.connected(A)
    pool.closed(A, 1.0)  # closed by the pause
    pool.failed(B, 1.0)
    assert pool.pop_candidates(2.0, 2) == []
    pool.retry_now(2.0)
    assert pool.pop_candidates(2.0, 2) == [A, B]  # fewest failures first
    pool.failed(B, 3.0)  # the second failure still forgets it
    assert pool.known() == [A]


def test_ban_wins_over_sources() -> None:
    pool = PeerPool()
    pool.add(A, PeerSource.DHT)
    pool.ban(A)
    assert not pool.add(A, PeerSource.USER)
    assert pool.pop_candidates(0.0, 5) == []
    assert not pool.mark_busy(A, PeerSource.INCOMING)
    pool.ban(B, whole_host=True)
    assert pool.is_banned(("127.0.0.2", 9))
    assert pool.statistics().banned == 2


def test_connect_rate_is_limited() -> None:
    pool = PeerPool(connect_rate=2.0, burst=3)
    for i in range(20):
        pool.add(("10.0.0.1", 1000 + i), PeerSource.PEX)
    assert len(pool.pop_candidates(0.0, 20)) == 3
    assert pool.pop_candidates(0.1, 20) == []
    nxt = pool.next_ready_time(0.1)
    assert nxt is not None
    assert 0.1 < nxt <= 0.6
    assert len(pool.pop_candidates(1.0, 20)) == 2


def test_max_known_caps_memory() -> None:
    pool = PeerPool(max_known=3)
    added = [pool.add(("10.0.0.1", 1 + i), PeerSource.PEX) for i in range(10)]
    assert added.count(True) == 3


def test_inbound_source_ports_are_never_dialled() -> None:
    pool = PeerPool()
    assert pool.mark_busy(("127.0.0.9", 50123), PeerSource.INCOMING)
    assert pool.known() == [], "an ephemeral port is no dial target"
    pool.closed(("127.0.0.9", 50123), 0.0)
    assert pool.pop_candidates(1000.0, 10) == []
    assert pool.statistics().known == 0
    # The BEP 10 listen port is dialable once the connection ends.
    assert pool.mark_busy(("127.0.0.9", 6881), PeerSource.LISTEN)
    pool.closed(("127.0.0.9", 6881), 0.0)
    assert pool.pop_candidates(1000.0, 10) == [("127.0.0.9", 6881)]


def test_a_handshake_then_close_storm_cannot_hide_the_dht_seeder() -> None:
    pool = PeerPool(max_known=100)
    for port in range(20_000, 23_000):  # 3000 inbound connections, each closed at once
        if pool.mark_busy(("127.0.0.66", port), PeerSource.INCOMING):
            pool.closed(("127.0.0.66", port), 0.0)
    for i in range(300):  # and a PEX flood naming as many unreachable addresses
        pool.add((f"127.0.1.{i % 250}", 1000 + i), PeerSource.PEX, named_by="127.0.0.66")
    assert pool.statistics().known <= 100, "the cap holds for every source"
    assert pool.add(("127.0.0.2", 6881), PeerSource.DHT), "a trusted address finds room"
    assert pool.pop_candidates(1.0, 1) == [("127.0.0.2", 6881)], "and is dialled first"


def test_trusted_sources_are_dialled_before_unverified_ones() -> None:
    pool = PeerPool()
    for i in range(5):
        pool.add((f"10.0.0.{i + 1}", 6881), PeerSource.PEX)
    pool.add(("10.0.1.1", 6881), PeerSource.USER)
    pool.add(("10.0.1.2", 6881), PeerSource.DHT)
    first = pool.pop_candidates(0.0, 2)
    assert set(first) == {("10.0.1.1", 6881), ("10.0.1.2", 6881)}
    # A PEX address that completed a handshake counts as verified afterwards.
    [pex] = pool.pop_candidates(0.0, 1)
    pool.connected(pex)
    pool.closed(pex, 0.0)
    pool.add(("10.0.1.3", 6881), PeerSource.PEX)
    assert pool.pop_candidates(BASE_BACKOFF, 1) == [pex]


def test_bans_spread_to_the_host_only_after_repeated_bad_ports() -> None:
    pool = PeerPool(host_ban_after=3)
    pool.ban(("127.0.0.5", 40000))
    assert pool.is_banned(("127.0.0.5", 40000))
    assert not pool.is_banned(("127.0.0.5", 40001)), "one bad client behind a NAT"
    assert pool.mark_busy(("127.0.0.5", 40001), PeerSource.INCOMING)
    pool.ban(("127.0.0.5", 40002))
    pool.ban(("127.0.0.5", 40002))  # the same port again: no new evidence
    assert not pool.is_banned(("127.0.0.5", 40003))
    pool.ban(("127.0.0.5", 40004))
    assert pool.is_banned(("127.0.0.5", 50000)), "a third bad port bans the host"
    assert not pool.mark_busy(("127.0.0.5", 50001), PeerSource.INCOMING)
    assert not pool.add(("127.0.0.5", 6881), PeerSource.DHT)
    assert not pool.is_banned(("127.0.0.6", 40000))


def test_connections_per_ip_are_capped() -> None:
    pool = PeerPool(max_per_ip=2)
    assert pool.mark_busy(("127.0.0.7", 1), PeerSource.INCOMING)
    assert pool.mark_busy(("127.0.0.7", 2), PeerSource.INCOMING)
    assert not pool.mark_busy(("127.0.0.7", 3), PeerSource.INCOMING)
    pool.add(("127.0.0.7", 6881), PeerSource.DHT)
    pool.add(("127.0.0.8", 6881), PeerSource.DHT)
    assert pool.pop_candidates(0.0, 5) == [("127.0.0.8", 6881)]
    pool.closed(("127.0.0.7", 1), 0.0)
    assert pool.pop_candidates(0.0, 5) == [("127.0.0.7", 6881)]


def test_pex_does_not_name_private_networks_to_us() -> None:
    assert pex_address_allowed("1.2.3.4", "5.6.7.8")
    for local in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.1.1", "::1", "fe80::1"):
        assert not pex_address_allowed(local, "5.6.7.8"), local
        assert pex_address_allowed(local, "192.168.0.2"), "a LAN peer may name LAN peers"
    assert not pex_address_allowed("::ffff:127.0.0.1", "5.6.7.8")
    for never in ("0.0.0.0", "224.0.0.1", "not-an-ip"):
        assert not pex_address_allowed(never, "192.168.0.2")
    pool = PeerPool()
    assert not pool.add(("192.168.1.10", 6881), PeerSource.PEX, named_by="5.6.7.8")
    assert pool.add(("192.168.1.10", 6881), PeerSource.PEX, named_by="192.168.1.2")
    assert pool.add(("1.2.3.4", 6881), PeerSource.PEX, named_by="5.6.7.8")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "pex", "in", "pop", "fail", "close", "ban"]),
            st.integers(1, 4),
            st.floats(0, 10),
        ),
        max_size=60,
    )
)
def test_invariants_under_random_operations(ops: list[tuple[str, int, float]]) -> None:
    pool = PeerPool(connect_rate=5.0, burst=4, max_known=3, max_per_ip=3)
    now = 0.0
    handed: set[tuple[str, int]] = set()
    for op, port, dt in ops:
        now += dt
        addr = ("127.0.0.1", port)
        if op == "add":
            pool.add(addr, PeerSource.DHT)
        elif op == "pex":
            pool.add(addr, PeerSource.PEX)
        elif op == "in" and addr not in handed and pool.mark_busy(addr, PeerSource.INCOMING):
            handed.add(addr)
        elif op == "pop":
            got = pool.pop_candidates(now, 10)
            assert not handed & set(got), "an address was handed out twice"
            assert len(got) <= 4
            handed |= set(got)
        elif op == "fail" and addr in handed:
            pool.failed(addr, now)
            handed.discard(addr)
        elif op == "close" and addr in handed:
            pool.closed(addr, now)
            handed.discard(addr)
        elif op == "ban":
            pool.ban(addr)
            handed.discard(addr)
            assert addr not in pool.known()
        stats = pool.statistics()
        assert stats.busy <= len(handed) <= 3, "per-IP cap (all one IP here)"
        assert len(pool._entries) <= 3, "max_known holds for every source"
    assert pool.statistics().known == len(pool.known())


def test_ready_count_counts_what_could_be_dialled_now() -> None:
    pool = PeerPool(max_per_ip=1)
    pool.add(("127.0.0.1", 1), PeerSource.DHT)
    pool.add(("127.0.0.1", 2), PeerSource.DHT)
    pool.add(("127.0.0.2", 1), PeerSource.PEX)
    assert pool.ready_count(0.0) == 3
    assert pool.mark_busy(("127.0.0.1", 9), PeerSource.INCOMING)
    assert pool.ready_count(0.0) == 1, "127.0.0.1 is at its per-IP cap"
