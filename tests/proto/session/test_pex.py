"""BEP 11 PEX deltas: caps of 50/50, no overlap, never the peer itself, convergence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.session.pex import PEX_MAX_ADDED, PEX_MAX_DROPPED, PexTracker

addrs = st.builds(lambda i: ("127.0.0.1", 1000 + i), st.integers(0, 200))
live_sets = st.sets(addrs, max_size=150)


@given(rounds=st.lists(live_sets, min_size=1, max_size=6), own=st.none() | addrs)
def test_deltas_are_capped_disjoint_and_track_what_was_told(
    rounds: list[set[tuple[str, int]]], own: tuple[str, int] | None
) -> None:
    tracker: PexTracker[str] = PexTracker()
    told: set[tuple[str, int]] = set()
    for live in rounds:
        added, dropped = tracker.delta("peer", live, own)
        assert len(added) <= PEX_MAX_ADDED
        assert len(dropped) <= PEX_MAX_DROPPED
        assert not set(added) & set(dropped)
        assert own not in added
        assert set(added) <= live
        assert not set(added) & told
        assert set(dropped) <= told
        told = (told | set(added)) - set(dropped)
        assert tracker.told("peer") == told


@given(live=live_sets)
def test_repeated_rounds_converge_to_the_live_set(live: set[tuple[str, int]]) -> None:
    tracker: PexTracker[str] = PexTracker()
    tracker.delta("p", {("127.0.0.9", n) for n in range(120)}, None)
    for _ in range(4):  # at most 150 changes each way: 3 rounds of 50 suffice
        tracker.delta("p", live, None)
    assert tracker.told("p") == live
    assert tracker.delta("p", live, None) == ([], [])


def test_forget_and_retain() -> None:
    tracker: PexTracker[str] = PexTracker()
    tracker.delta("a", {("127.0.0.1", 1)}, None)
    tracker.delta("b", {("127.0.0.1", 1)}, None)
    tracker.retain({"a"})
    assert tracker.told("b") == frozenset()
    tracker.forget("a")
    assert tracker.delta("a", {("127.0.0.1", 1)}, None) == ([("127.0.0.1", 1)], [])
