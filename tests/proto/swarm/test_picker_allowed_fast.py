"""`Picker.pick_blocks_in`: requests restricted to a piece set (BEP 6 allowed-fast)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.bitfield import Bitfield
from shoal.swarm.picker import Picker

PIECE = 32 * 1024  # two 16 KiB blocks


def picker(num_pieces: int = 8, have: frozenset[int] = frozenset()) -> Picker[str]:
    return Picker(
        num_pieces,
        PIECE,
        num_pieces * PIECE,
        random.Random(1),
        have=Bitfield.from_indices(num_pieces, have),
    )


def test_only_allowed_pieces_the_peer_has_and_we_want() -> None:
    p = picker(have=frozenset({2}))
    p.peer_bitfield("a", Bitfield.from_indices(8, {1, 2, 3, 5}))
    blocks = p.pick_blocks_in("a", {2, 3, 4, 5}, 10)
    # 2: we have it; 4: the peer lacks it; 1: not allowed.
    assert sorted({b.index for b in blocks}) == [3, 5]
    assert len(blocks) == 4
    assert p.outstanding("a") == 4
    assert p.pick_blocks_in("a", {3, 5}, 10) == []  # all booked already


def test_partial_pieces_first_and_count_respected() -> None:
    p = picker()
    p.peer_bitfield("a", Bitfield.all(8))
    p.peer_bitfield("b", Bitfield.all(8))
    (first,) = p.pick_blocks_in("b", {6}, 1)  # piece 6 becomes partial
    assert first.index == 6
    (block,) = p.pick_blocks_in("a", {1, 6}, 1)
    assert block.index == 6
    assert block.begin != first.begin


def test_unknown_peer_or_zero_count_picks_nothing() -> None:
    p = picker()
    assert p.pick_blocks_in("nobody", {0}, 5) == []
    p.peer_bitfield("a", Bitfield.all(8))
    assert p.pick_blocks_in("a", {0}, 0) == []
    assert p.pick_blocks_in("a", {-1, 8, 99}, 5) == []  # out of range is ignored


@given(
    peer_has=st.sets(st.integers(0, 7)),
    allowed=st.sets(st.integers(-2, 10)),
    count=st.integers(0, 20),
)
def test_never_outside_the_allowed_set(peer_has: set[int], allowed: set[int], count: int) -> None:
    p = picker()
    p.peer_bitfield("a", Bitfield.from_indices(8, peer_has))
    blocks = p.pick_blocks_in("a", allowed, count)
    assert len(blocks) <= count
    assert {b.index for b in blocks} <= allowed & peer_has
    assert len(set(blocks)) == len(blocks)
