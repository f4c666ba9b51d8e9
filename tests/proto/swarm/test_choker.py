"""Choker: tit-for-tat slots, optimistic rotation, anti-snubbing, determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.choker import (
    NEW_PEER_AGE,
    OPTIMISTIC_INTERVAL,
    RECHOKE_INTERVAL,
    Choker,
    PeerStats,
)


def stats(peer: str, down: float = 0.0, up: float = 0.0, **kw: bool | int) -> PeerStats[str]:
    return PeerStats(peer, down, up, **{"interested": True, **kw})  # type: ignore[arg-type]


def choker(seed: int = 0, **kw: int) -> Choker[str]:
    return Choker(rng=random.Random(seed), **kw)


def test_bep3_constants() -> None:
    assert RECHOKE_INTERVAL == 10.0
    assert OPTIMISTIC_INTERVAL == 3 * RECHOKE_INTERVAL


def test_negative_slots_are_refused() -> None:
    with pytest.raises(ValueError):
        choker(max_unchoked=-1)


def test_timer_follows_rechokes() -> None:
    c = choker()
    assert c.get_timer() is None
    c.rechoke(5.0, [])
    assert c.get_timer() == 15.0


def test_leeching_unchokes_fastest_downloaders() -> None:
    c = choker(max_unchoked=2, optimistic_slots=0)
    peers = [stats("slow", 10), stats("fast", 300), stats("mid", 200), stats("up", 1, up=999)]
    d = c.rechoke(0.0, peers)
    assert d.unchoke == {"fast", "mid"}
    assert d.choke == {"slow", "up"}
    assert d.optimistic is None


def test_seeding_unchokes_fastest_uploads_then_fewest_bytes_given() -> None:
    c = choker(max_unchoked=2, optimistic_slots=0)
    peers = [
        stats("a", 999, up=10),
        stats("b", 0, up=500),
        stats("c", 0, up=0, uploaded=5_000),
        stats("d", 0, up=0, uploaded=100),
    ]
    assert c.rechoke(0.0, peers, seeding=True).unchoke == {"b", "a"}
    c = choker(max_unchoked=1, optimistic_slots=0)
    assert c.rechoke(0.0, peers[2:], seeding=True).unchoke == {"d"}


def test_only_interested_non_seeds_are_unchoked() -> None:
    c = choker(max_unchoked=4, optimistic_slots=1)
    peers = [
        stats("bored", 900, interested=False),
        stats("seed", 900, is_seed=True),
        stats("ok", 1),
    ]
    d = c.rechoke(0.0, peers)
    assert d.unchoke == {"ok"}
    assert d.choke == {"bored", "seed"}


def test_snubbed_peers_get_only_the_optimistic_slot() -> None:
    c = choker(max_unchoked=1, optimistic_slots=1)
    peers = [stats("snub", 1000, snubbed=True), stats("a", 5), stats("b", 1)]
    d = c.rechoke(0.0, peers)
    assert "a" in d.unchoke
    assert "a" not in d.optimistic_peers
    for t in range(1, 200):
        d = c.rechoke(t * RECHOKE_INTERVAL, peers)
        if "snub" in d.unchoke:
            assert d.optimistic == "snub"
            break
    else:
        pytest.fail("a snubbed peer never got the optimistic slot")


def test_optimistic_slot_is_held_for_three_rounds_then_rotates() -> None:
    c = choker(seed=3, max_unchoked=1, optimistic_slots=1)
    peers = [stats("top", 100)] + [stats(f"p{k}") for k in range(6)]
    holders = []
    for t in range(12):
        d = c.rechoke(t * RECHOKE_INTERVAL, peers)
        assert d.optimistic is not None
        assert d.optimistic != "top"
        assert d.unchoke == {"top", d.optimistic}
        holders.append(d.optimistic)
    for start in range(0, 12, 3):
        assert len(set(holders[start : start + 3])) == 1  # kept for 30 s
    assert all(holders[k] != holders[k + 3] for k in range(0, 9, 3))  # then someone else


def test_optimistic_slot_is_refilled_when_its_holder_goes() -> None:
    c = choker(max_unchoked=0, optimistic_slots=1)
    d = c.rechoke(0.0, [stats("a"), stats("b")])
    holder = d.optimistic
    assert holder is not None
    other = "b" if holder == "a" else "a"
    d = c.rechoke(10.0, [stats(other)])  # holder disconnected mid-period
    assert d.optimistic == other
    d = c.rechoke(20.0, [stats(other, interested=False), stats("c")])
    assert d.optimistic == "c"


def test_optimistic_holder_promoted_to_regular_frees_the_slot() -> None:
    c = choker(max_unchoked=1, optimistic_slots=1)
    d = c.rechoke(0.0, [stats("a", 10), stats("b")])
    assert d.optimistic == "b"
    d = c.rechoke(10.0, [stats("a", 10), stats("b", 50), stats("c")])
    assert d.optimistic in {"a", "c"}  # drawn again at once, not after 30 s
    assert d.unchoke == {"b", d.optimistic}


def test_new_peers_are_three_times_as_likely_to_be_drawn() -> None:
    wins: Counter[str] = Counter()
    for seed in range(800):
        c = choker(seed=seed, max_unchoked=0, optimistic_slots=1)
        c.rechoke(0.0, [stats("old")])
        t = NEW_PEER_AGE + OPTIMISTIC_INTERVAL
        c.rechoke(t, [stats("old", interested=False)])  # slot empties on rotation
        d = c.rechoke(t + 1, [stats("old"), stats("new")])
        assert d.optimistic is not None
        wins[d.optimistic] += 1
    assert 2.3 < wins["new"] / wins["old"] < 4.0  # 3:1 expected


def test_ties_keep_currently_unchoked_peers() -> None:
    c = choker(max_unchoked=2, optimistic_slots=0)
    peers = [stats(f"p{k}") for k in range(8)]
    first = c.rechoke(0.0, peers).unchoke
    for t in range(1, 10):
        assert c.rechoke(t * RECHOKE_INTERVAL, peers).unchoke == first


# ---- properties ------------------------------------------------------------------------


@st.composite
def rounds(draw: st.DrawFn) -> list[list[PeerStats[str]]]:
    names = [f"p{k}" for k in range(draw(st.integers(0, 12)))]
    out = []
    for _ in range(draw(st.integers(1, 8))):
        present = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
        out.append(
            [
                PeerStats(
                    name,
                    draw(st.floats(0, 1e6)),
                    draw(st.floats(0, 1e6)),
                    draw(st.booleans()),
                    draw(st.booleans()),
                    draw(st.booleans()),
                    draw(st.integers(0, 10**9)),
                )
                for name in present
            ]
        )
    return out


@given(
    rs=rounds(),
    max_unchoked=st.integers(0, 5),
    optimistic_slots=st.integers(0, 2),
    seeding=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_choke_invariants_and_determinism(
    rs: list[list[PeerStats[str]]],
    max_unchoked: int,
    optimistic_slots: int,
    seeding: bool,
    seed: int,
) -> None:
    def run() -> list[object]:
        c = Choker[str](max_unchoked, optimistic_slots, rng=random.Random(seed))
        decisions: list[object] = []
        for k, peers in enumerate(rs):
            d = c.rechoke(k * RECHOKE_INTERVAL, peers, seeding=seeding)
            by_name = {s.peer: s for s in peers}
            assert d.unchoke | d.choke == set(by_name)
            assert not d.unchoke & d.choke
            assert len(d.unchoke) <= max_unchoked + optimistic_slots
            assert len(d.optimistic_peers) <= optimistic_slots
            assert d.optimistic_peers <= d.unchoke
            assert (d.optimistic is None) == (not d.optimistic_peers)
            for peer in d.unchoke:
                s = by_name[peer]
                assert s.interested
                assert not s.is_seed
                if s.snubbed:
                    assert peer in d.optimistic_peers
            regular = d.unchoke - d.optimistic_peers
            assert len(regular) <= max_unchoked
            # Tit-for-tat: no eligible choked peer is strictly faster than a regular one.

            def rate(s: PeerStats[str]) -> float:
                return s.upload_rate if seeding else s.download_rate

            if regular:
                slowest = min(rate(by_name[p]) for p in regular)
                for s in peers:
                    if s.interested and not (s.is_seed or s.snubbed or s.peer in d.unchoke):
                        assert rate(s) <= slowest
            decisions.append(d)
        return decisions

    assert run() == run()


@given(
    n=st.integers(2, 6),
    regular=st.integers(0, 3),
    seed=st.integers(0, 2**32),
    snubbed=st.sets(st.integers(0, 5)),
)
def test_optimistic_rotation_is_periodic_and_reaches_every_eligible_peer(
    n: int, regular: int, seed: int, snubbed: set[int]
) -> None:
    """Over many periods the one optimistic slot changes hands only every 30 s, never
    goes to a regular (tit-for-tat) holder, and every choked eligible peer (snubbed ones
    included) gets it: nobody is starved, which is the point of the rotation."""
    c = choker(seed=seed, max_unchoked=regular, optimistic_slots=1)
    fast = [stats(f"fast{k}", 1000.0 + k) for k in range(regular)]
    slow = [stats(f"p{k}", snubbed=k in snubbed) for k in range(n)]
    periods = 120  # (5/6)**120 < 1e-9: a fair draw misses nobody
    per_period = round(OPTIMISTIC_INTERVAL / RECHOKE_INTERVAL)
    holders: list[str] = []
    for k in range(periods * per_period):
        d = c.rechoke(k * RECHOKE_INTERVAL, fast + slow)
        assert d.optimistic is not None
        assert d.unchoke == {s.peer for s in fast} | {d.optimistic}
        holders.append(d.optimistic)
    for start in range(0, len(holders), per_period):
        assert len(set(holders[start : start + per_period])) == 1  # held for a whole period
    assert set(holders) == {s.peer for s in slow}
