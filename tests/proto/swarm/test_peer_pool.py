"""PeerPool: back-off, bans, busy tracking and the connect-rate bucket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.peer_pool import BASE_BACKOFF, PeerPool, PeerSource

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


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "pop", "fail", "close", "ban"]),
            st.integers(1, 4),
            st.floats(0, 10),
        ),
        max_size=60,
    )
)
def test_invariants_under_random_operations(ops: list[tuple[str, int, float]]) -> None:
    pool = PeerPool(connect_rate=5.0, burst=4)
    now = 0.0
    handed: set[tuple[str, int]] = set()
    for op, port, dt in ops:
        now += dt
        addr = ("127.0.0.1", port)
        if op == "add":
            pool.add(addr, PeerSource.DHT)
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
    assert pool.statistics().known == len(pool.known())
