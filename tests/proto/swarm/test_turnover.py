"""TurnoverPolicy: keep-alive-only idlers give their slots to waiting peers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.turnover import PeerActivity, TurnoverPolicy


def idler(key: str, since: float = 0.0) -> PeerActivity[str]:
    return PeerActivity(key, since, None, am_interested=False, peer_interested=False)


def trader(key: str) -> PeerActivity[str]:
    return PeerActivity(key, 0.0, 500.0, am_interested=True, peer_interested=False)


def test_idlers_that_fill_the_slots_make_way_for_waiting_peers() -> None:
    policy = TurnoverPolicy(idle_after=120.0, fraction=0.1)
    peers = [idler(f"idle{i}", since=float(i)) for i in range(48)] + [trader("t1"), trader("t2")]
    picked = policy.pick(peers, now=600.0, max_peers=50, waiting=10)
    assert picked == ["idle0", "idle1", "idle2", "idle3", "idle4"], "oldest first, 10%"
    assert policy.pick(peers, now=600.0, max_peers=50, waiting=2) == ["idle0", "idle1"]


def test_no_turnover_without_need_or_before_idle_after() -> None:
    policy = TurnoverPolicy(idle_after=120.0)
    peers = [idler(f"i{i}") for i in range(50)]
    assert policy.pick(peers, now=600.0, max_peers=50, waiting=0) == [], "nobody waiting"
    assert policy.pick(peers[:10], now=600.0, max_peers=50, waiting=5) == [], "slots free"
    assert policy.pick(peers, now=119.0, max_peers=50, waiting=5) == [], "not idle long"
    assert policy.pick(peers, now=120.0, max_peers=50, waiting=5) == ["i0", "i1"]


def test_payload_or_interest_makes_a_peer_useful() -> None:
    policy = TurnoverPolicy(idle_after=100.0, fraction=1.0)
    peers = [
        PeerActivity("recent", 0.0, 450.0, am_interested=False, peer_interested=False),
        PeerActivity("wants", 0.0, None, am_interested=False, peer_interested=True),
        idler("idle"),
    ]
    assert policy.pick(peers, now=500.0, max_peers=3, waiting=3) == ["idle"]


@given(
    st.lists(
        st.tuples(st.floats(0, 1000), st.none() | st.floats(0, 1000), st.booleans(), st.booleans()),
        max_size=40,
    ),
    st.integers(1, 40),
    st.integers(0, 10),
)
def test_picks_only_useless_peers_and_within_budget(
    raw: list[tuple[float, float | None, bool, bool]], max_peers: int, waiting: int
) -> None:
    policy = TurnoverPolicy()
    peers = [PeerActivity(i, *fields) for i, fields in enumerate(raw)]
    picked = policy.pick(peers, now=1000.0, max_peers=max_peers, waiting=waiting)
    assert len(picked) <= waiting
    assert len(set(picked)) == len(picked)
    for key in picked:
        p = peers[key]
        assert not p.am_interested
        assert not p.peer_interested
        since = p.useless_since()
        assert since is not None
        assert 1000.0 - since >= policy.idle_after
