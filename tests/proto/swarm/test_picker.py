"""Picker: tie-break chain, priorities, endgame, request outcomes, and a simulated download."""

from __future__ import annotations

import random

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from shoal.errors import RemoteProtocolError
from shoal.swarm.bitfield import Bitfield
from shoal.swarm.blocks import BLOCK_SIZE, Block
from shoal.swarm.picker import Picker, PickerStatistics
from shoal.swarm.priorities import DEFAULT_PRIORITY, file_piece_priorities

PL = 2 * BLOCK_SIZE  # two blocks per piece keeps the examples readable


def make(num_pieces: int, *, seed: int = 0, total: int | None = None, **kw: object) -> Picker[str]:
    total = num_pieces * PL if total is None else total
    return Picker(num_pieces, PL, total, random.Random(seed), **kw)  # type: ignore[arg-type]


def bf(n: int, *indices: int) -> Bitfield:
    return Bitfield.from_indices(n, indices)


def check_availability(p: Picker[str], model: dict[str, set[int]]) -> None:
    """Public availability and the private bucket bitsets both agree with a set model."""
    for i in range(p.num_pieces):
        assert p.availability(i) == sum(i in s for s in model.values())
    for a, bucket in enumerate(p._buckets):
        want = sum(p._bit(i) for i in range(p.num_pieces) if p._avail[i] == a)
        assert bucket == want
        assert p._fresh_in[a] == (bucket & p._fresh).bit_count()


# ---- construction and geometry -------------------------------------------------------


def test_geometry_must_add_up() -> None:
    with pytest.raises(ValueError):
        Picker(3, PL, 3 * PL + 1, random.Random(0))
    with pytest.raises(ValueError):
        Picker(1, 0, 0, random.Random(0))
    with pytest.raises(ValueError):
        make(2, priorities=[1])
    with pytest.raises(ValueError):
        make(2, priorities=[1, 8])
    with pytest.raises(ValueError):
        make(2, have=Bitfield(3))


def test_last_piece_and_block_are_short() -> None:
    p = make(3, total=2 * PL + 100)
    assert p.piece_size(2) == 100
    assert p.wanted_left() == 2 * PL + 100
    p.peer_have_all("s")
    blocks = p.pick_blocks("s", 10)
    assert Block(2, 0, 100) in blocks
    assert len(blocks) == 5


def test_empty_torrent_is_complete() -> None:
    p: Picker[str] = Picker(0, PL, 0, random.Random(0))
    p.peer_have_all("s")
    assert p.is_complete()
    assert p.pick_blocks("s", 4) == []


def test_have_at_start_counts_as_verified() -> None:
    p = make(4, have=bf(4, 0, 3))
    assert p.wanted_left() == 2 * PL
    p.peer_have_all("s")
    assert {b.index for b in p.pick_blocks("s", 100)} == {1, 2}


# ---- the tie-break chain -------------------------------------------------------------


def test_rarest_first() -> None:
    p = make(4)
    p.peer_bitfield("a", bf(4, 0, 1, 2, 3))
    p.peer_bitfield("b", bf(4, 0, 1, 3))
    p.peer_bitfield("c", bf(4, 0, 3))
    # availability: 0→3, 1→2, 2→1, 3→3
    assert [b.index for b in p.pick_blocks("a", 4)] == [2, 2, 1, 1]


def test_seeds_count_for_availability_but_change_no_order() -> None:
    p = make(3)
    p.peer_bitfield("a", bf(3, 0, 1, 2))
    p.peer_bitfield("b", bf(3, 0, 2))
    p.peer_have_all("s1")
    p.peer_bitfield("s2", Bitfield.all(3))  # a full bitfield is a seed too
    assert [p.availability(i) for i in range(3)] == [4, 3, 4]
    assert p.pick_blocks("s1", 1)[0].index == 1


def test_partial_pieces_before_rarer_fresh_ones() -> None:
    p = make(3)
    p.peer_bitfield("a", bf(3, 0))
    p.peer_bitfield("b", bf(3, 0, 1))
    p.peer_have_all("s")
    assert p.pick_blocks("a", 1) == [Block(0, 0, BLOCK_SIZE)]
    # Piece 2 (only the seed) is rarer than piece 1, but piece 0 is partial.
    assert p.pick_blocks("s", 2) == [Block(0, BLOCK_SIZE, BLOCK_SIZE), Block(2, 0, BLOCK_SIZE)]


def test_priority_beats_partial_and_rarity() -> None:
    p = make(3, priorities=[DEFAULT_PRIORITY, 1, 7])
    p.peer_bitfield("a", bf(3, 1))
    p.peer_have_all("s")
    p.peer_have_all("t")
    assert [b.index for b in p.pick_blocks("a", 1)] == [1]
    # 2 is the most common piece but has the top priority; 1 is partial but lowest.
    assert [b.index for b in p.pick_blocks("s", 5)] == [2, 2, 0, 0, 1]


def test_priority_zero_is_never_picked_and_not_wanted() -> None:
    p = make(3, priorities=[0, 4, 0])
    p.peer_have_all("s")
    assert {b.index for b in p.pick_blocks("s", 100)} == {1}
    assert p.wanted_left() == PL
    assert not p.interesting("nobody")
    p.peer_bitfield("z", bf(3, 0, 2))
    assert not p.interesting("z")
    assert p.pick_blocks("z", 10) == []
    p.set_piece_priority(2, 1)
    assert p.interesting("z")
    assert p.wanted_left() == 2 * PL
    assert [b.index for b in p.pick_blocks("z", 10)] == [2, 2]


def test_set_priorities_mid_download() -> None:
    p = make(4)
    p.peer_have_all("s")
    first = p.pick_blocks("s", 1)
    p.set_priorities([0, 0, 0, 1])
    check_availability(p, {"s": set(range(4))})
    rest = p.pick_blocks("s", 10)
    assert {b.index for b in rest} == {3}
    # The request already out for a now-skipped piece can still be received or released.
    assert p.block_received("s", first[0]) == []
    assert p.wanted_left() == PL
    p.set_piece_priority(1, 7)
    check_availability(p, {"s": set(range(4))})
    assert p.wanted_left() == 2 * PL
    assert p.pick_blocks("s", 10)[0].index == 1


def test_random_tie_break_is_seeded() -> None:
    def picks(seed: int) -> list[int]:
        p = make(200, seed=seed)
        p.peer_have_all("s")
        return [b.index for b in p.pick_blocks("s", 40)][::2]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)
    assert picks(1) != sorted(picks(1))


def test_sequential_mode_picks_in_index_order() -> None:
    p = make(6, sequential=True)
    p.peer_bitfield("a", bf(6, 1, 4))
    p.peer_have_all("s")
    assert [b.index for b in p.pick_blocks("a", 1)] == [1]
    assert [b.index for b in p.pick_blocks("s", 5)] == [0, 0, 1, 2, 2]


# ---- peers' piece sets -----------------------------------------------------------------


def test_peer_without_pieces_gets_nothing() -> None:
    p = make(3)
    assert p.pick_blocks("unknown", 5) == []
    p.peer_have_none("n")
    assert p.pick_blocks("n", 5) == []
    assert p.peer_has("n", 1)
    assert p.peer_has("n", 1)  # still wanted
    assert {b.index for b in p.pick_blocks("n", 5)} == {1}
    assert p.pick_blocks("n", 0) == []


def test_have_and_bitfield_out_of_range() -> None:
    p = make(3)
    with pytest.raises(RemoteProtocolError):
        p.peer_has("a", 3)
    with pytest.raises(RemoteProtocolError):
        p.peer_has("a", -1)
    with pytest.raises(ValueError):
        p.peer_bitfield("a", Bitfield(4))


def test_peer_left_and_replaced_bitfields_update_availability() -> None:
    p = make(10)
    model: dict[str, set[int]] = {"a": {1, 2, 3}, "b": {3, 4}, "s": set(range(10))}
    p.peer_bitfield("a", bf(10, 1, 2, 3))
    p.peer_bitfield("b", bf(10, 3, 4))
    p.peer_have_all("s")
    p.peer_has("b", 9)
    p.peer_has("b", 9)  # repeated have is harmless
    p.peer_has("s", 9)
    model["b"].add(9)
    check_availability(p, model)
    p.peer_bitfield("a", bf(10, 0))  # replaces, not adds
    model["a"] = {0}
    check_availability(p, model)
    p.peer_left("s")
    del model["s"]
    check_availability(p, model)
    p.peer_left("b")
    del model["b"]
    check_availability(p, model)
    assert p.peer_left("b") == []


@given(
    n=st.integers(1, 70),
    ops=st.lists(
        st.tuples(st.sampled_from(["have", "bitfield", "all", "left"]), st.integers(0, 3)),
        max_size=30,
    ),
    data=st.data(),
)
def test_availability_matches_model(
    n: int, ops: list[tuple[str, int]], data: st.DataObject
) -> None:
    p = make(n)
    model: dict[str, set[int]] = {}
    for op, who in ops:
        peer = f"p{who}"
        if op == "have":
            i = data.draw(st.integers(0, n - 1))
            p.peer_has(peer, i)
            model.setdefault(peer, set()).add(i)
        elif op == "bitfield":
            s = data.draw(st.sets(st.integers(0, n - 1)))
            p.peer_bitfield(peer, Bitfield.from_indices(n, s))
            model[peer] = s
        elif op == "all":
            p.peer_have_all(peer)
            model[peer] = set(range(n))
        else:
            p.peer_left(peer)
            model.pop(peer, None)
    check_availability(p, model)


# ---- request outcomes --------------------------------------------------------------------


def test_no_block_is_given_twice_before_endgame() -> None:
    p = make(4)
    for peer in "abc":
        p.peer_have_all(peer)
    got = [b for peer in "abc" for b in p.pick_blocks(peer, 2)]
    assert len(set(got)) == 6
    assert not p.in_endgame()
    last = p.pick_blocks("a", 5)
    assert len(last) == 5  # the two free blocks, then endgame duplicates of b's and c's
    assert set(last[:2]).isdisjoint(got)
    assert set(last[2:]) <= set(got[2:])
    assert p.in_endgame()


def test_choke_reject_and_timeout_return_blocks_to_the_pool() -> None:
    p = make(4, sequential=True)  # pieces 2 and 3 stay fresh: no endgame in this test
    p.peer_have_all("a")
    p.peer_bitfield("b", bf(4, 0, 1))
    blocks = p.pick_blocks("a", 4)
    assert [b.index for b in blocks] == [0, 0, 1, 1]
    assert p.outstanding("a") == 4
    assert p.pick_blocks("b", 4) == []
    assert p.block_rejected("a", blocks[0])
    assert not p.block_rejected("a", blocks[0])  # no longer outstanding
    assert not p.block_rejected("b", blocks[1])  # never b's
    assert p.pick_blocks("b", 4) == [blocks[0]]
    assert p.request_timed_out("a", blocks[1])
    assert p.pick_blocks("b", 4) == [blocks[1]]
    # A late arrival from the slow peer is still taken and b's request is cancelled.
    assert p.block_received("a", blocks[1]) == [("b", blocks[1])]
    assert p.peer_choked("a") == blocks[2:]
    assert p.outstanding("a") == 0
    assert p.peer_choked("a") == []
    assert p.peer_choked("nobody") == []
    assert p.pick_blocks("b", 4) == blocks[2:]
    assert not p.in_endgame()


def test_blocks_from_a_leaving_peer_are_released() -> None:
    p = make(1)
    p.peer_have_all("a")
    p.peer_have_all("b")
    blocks = p.pick_blocks("a", 2)
    assert sorted(p.peer_left("a")) == blocks
    assert sorted(p.pick_blocks("b", 2)) == blocks


def test_endgame_duplicates_and_cancels() -> None:
    p = make(2, endgame_max_owners=2)
    for peer in "abc":
        p.peer_have_all(peer)
    a_blocks = p.pick_blocks("a", 3)
    assert not p.in_endgame()
    assert p.statistics() == PickerStatistics(
        pieces_left=2, bytes_left=2 * PL, partial_pieces=2, peers=3, seeds=3, in_endgame=False
    )
    b_blocks = p.pick_blocks("b", 3)
    assert b_blocks[0] not in a_blocks  # the last free block first
    assert p.in_endgame()
    assert set(b_blocks[1:]) <= set(a_blocks)
    c_blocks = p.pick_blocks("c", 10)
    # every block at most endgame_max_owners=2 times overall
    everything = a_blocks + b_blocks + c_blocks
    assert all(everything.count(b) <= 2 for b in everything)
    assert len(set(everything)) == 4
    block = b_blocks[1]
    cancels = p.block_received("a", block)
    assert sorted(cancels) == [
        (pr, block) for pr, bs in [("b", b_blocks), ("c", c_blocks)] if block in bs
    ]
    assert p.block_received("b", block) == []  # late duplicate after cancel
    assert p.statistics().in_endgame
    assert p.outstanding("b") == len(b_blocks) - 1


def test_endgame_never_duplicates_to_the_same_peer() -> None:
    p = make(1)
    p.peer_have_all("a")
    first = p.pick_blocks("a", 5)
    assert len(first) == 2
    assert p.in_endgame()
    assert p.pick_blocks("a", 5) == []


def test_verifying_a_piece_with_requests_out_cancels_them() -> None:
    p = make(2, sequential=True)
    p.peer_have_all("a")
    p.peer_have_all("b")
    a_blocks = p.pick_blocks("a", 1)
    b_blocks = p.pick_blocks("b", 1)
    assert [b.index for b in a_blocks + b_blocks] == [0, 0]
    assert p.piece_verified(0) == [("a", a_blocks[0]), ("b", b_blocks[0])]
    assert p.outstanding("a") == p.outstanding("b") == 0
    assert p.block_received("a", a_blocks[0]) == []  # arrives anyway: ignored
    assert [b.index for b in p.pick_blocks("a", 5)] == [1, 1]


def test_block_received_checks_the_grid() -> None:
    p = make(2, total=PL + 100)
    for bad in [
        Block(2, 0, BLOCK_SIZE),
        Block(-1, 0, 1),
        Block(0, 1, BLOCK_SIZE),
        Block(0, 0, 1),
        Block(1, 0, BLOCK_SIZE),
        Block(0, 2 * BLOCK_SIZE, BLOCK_SIZE),
    ]:
        with pytest.raises(RemoteProtocolError):
            p.block_received("a", bad)
    assert p.block_received("a", Block(1, 0, 100)) == []  # unrequested but valid: kept
    assert p.piece_complete(1)


def test_verify_and_fail() -> None:
    p = make(2)
    p.peer_have_all("a")
    p.peer_have_all("b")
    a0 = p.pick_blocks("a", 1)[0]
    b0 = p.pick_blocks("b", 1)[0]
    assert a0.index == b0.index
    p.block_received("a", a0)
    assert not p.piece_complete(a0.index)
    p.block_received("b", b0)
    assert p.piece_complete(a0.index)
    assert p.piece_failed(a0.index) == {"a", "b"}
    assert not p.piece_complete(a0.index)
    again = p.pick_blocks("a", 2)
    assert sorted(again) == sorted([a0, b0])
    for blk in again:
        p.block_received("a", blk)
    p.piece_verified(a0.index)
    p.piece_verified(a0.index)  # idempotent
    assert p.has_piece(a0.index)
    assert p.wanted_left() == PL
    assert p.piece_failed(a0.index) == set()
    assert p.block_received("a", a0) == []  # piece already verified
    other = 1 - a0.index
    assert p.piece_verified(other) == []  # e.g. found on disk: no block ever requested
    assert p.is_complete()
    assert p.wanted_left() == 0
    assert p.have() == Bitfield.all(2)
    with pytest.raises(ValueError):
        p.piece_verified(2)


# ---- file selection ------------------------------------------------------------------


def test_file_piece_priorities() -> None:
    # files: [0, 100) [100, 100) (empty) [100, 250) [250, 400); pieces of 100 bytes
    files = [(0, 100), (100, 0), (100, 150), (250, 150)]
    assert list(file_piece_priorities(100, 400, files, [0, 7, 1, 0])) == [0, 1, 1, 0]
    assert list(file_piece_priorities(100, 400, files, [2, 0, 0, 5])) == [2, 0, 5, 5]
    with pytest.raises(ValueError):
        file_piece_priorities(100, 400, files, [1])
    with pytest.raises(ValueError):
        file_piece_priorities(100, 400, files, [1, 1, 1, 9])
    with pytest.raises(ValueError):
        file_piece_priorities(100, 300, files, [1, 1, 1, 1])
    with pytest.raises(ValueError):
        file_piece_priorities(0, 400, files, [1, 1, 1, 1])


@given(
    piece_length=st.integers(1, 50),
    lengths=st.lists(st.integers(0, 120), min_size=1, max_size=8),
    data=st.data(),
)
def test_file_piece_priorities_model(
    piece_length: int, lengths: list[int], data: st.DataObject
) -> None:
    prios = data.draw(st.lists(st.integers(0, 7), min_size=len(lengths), max_size=len(lengths)))
    offsets = [sum(lengths[:k]) for k in range(len(lengths))]
    total = sum(lengths)
    got = file_piece_priorities(
        piece_length, total, list(zip(offsets, lengths, strict=True)), prios
    )
    assert len(got) == -(-total // piece_length)
    for i in range(len(got)):
        lo, hi = i * piece_length, (i + 1) * piece_length
        touching = [
            pr
            for o, n, pr in zip(offsets, lengths, prios, strict=True)
            if n and o < hi and o + n > lo
        ]
        assert got[i] == max(touching, default=0)


# ---- properties ----------------------------------------------------------------------


@st.composite
def swarms(draw: st.DrawFn) -> tuple[int, int, dict[str, set[int]]]:
    """(num_pieces, total_length, peer -> pieces); every piece is held by someone."""
    n = draw(st.integers(1, 40))
    total = draw(st.integers((n - 1) * PL + 1, n * PL))
    peers = {f"p{k}": draw(st.sets(st.integers(0, n - 1))) for k in range(draw(st.integers(1, 6)))}
    if draw(st.booleans()):
        peers["seed"] = set(range(n))
    missing = set(range(n)).difference(*peers.values())
    peers["p0"] |= missing
    return n, total, peers


def join(p: Picker[str], peers: dict[str, set[int]], via_have: bool = False) -> None:
    for peer, pieces in peers.items():
        if via_have:
            for i in sorted(pieces):
                p.peer_has(peer, i)
        else:
            p.peer_bitfield(peer, Bitfield.from_indices(p.num_pieces, pieces))


@given(swarm=swarms(), seed=st.integers(0, 2**32), via_have=st.booleans())
def test_rarest_first_holds(
    swarm: tuple[int, int, dict[str, set[int]]], seed: int, via_have: bool
) -> None:
    n, total, peers = swarm
    p = make(n, seed=seed, total=total)
    join(p, peers, via_have)
    for peer, pieces in peers.items():
        got = p.pick_blocks(peer, 1)
        assert bool(got) == bool(pieces)
        if got:
            index = got[0].index
            assert index in pieces
            assert all(p.availability(index) <= p.availability(i) for i in pieces)
            p.block_rejected(peer, got[0])  # back to "no partials"


@given(swarm=swarms(), seed=st.integers(0, 2**32), data=st.data())
def test_sequential_picks_lowest_index_with_a_free_block(
    swarm: tuple[int, int, dict[str, set[int]]], seed: int, data: st.DataObject
) -> None:
    n, total, peers = swarm
    p = make(n, seed=seed, total=total, sequential=True)
    join(p, peers)
    booked: set[Block] = set()
    names = sorted(peers)
    for _ in range(12):
        peer = data.draw(st.sampled_from(names))
        count = data.draw(st.integers(1, 5))
        got = p.pick_blocks(peer, count)
        free = sorted(
            b
            for i in peers[peer]
            for b in (
                Block(i, k, min(BLOCK_SIZE, p.piece_size(i) - k))
                for k in range(0, p.piece_size(i), BLOCK_SIZE)
            )
            if b not in booked
        )
        if not p.in_endgame():
            assert got == free[:count]
        booked.update(got)


@given(
    swarm=swarms(),
    seed=st.integers(0, 2**32),
    prio=st.lists(st.integers(0, 7), min_size=40, max_size=40),
    sequential=st.booleans(),
    data=st.data(),
)
def test_simulated_download_completes(
    swarm: tuple[int, int, dict[str, set[int]]],
    seed: int,
    prio: list[int],
    sequential: bool,
    data: st.DataObject,
) -> None:
    """Random picks, arrivals, rejects, chokes, timeouts, hash failures, peers leaving."""
    n, total, peers = swarm
    rng = random.Random(seed)
    priorities = prio[:n]
    p = make(n, seed=seed, total=total, priorities=priorities, sequential=sequential)
    join(p, peers)
    wanted = {i for i in range(n) if priorities[i]}
    have: set[int] = set()
    received: dict[int, dict[int, str]] = {}  # piece -> begin -> sender
    out: dict[str, list[Block]] = {peer: [] for peer in peers}
    failures = data.draw(st.integers(0, 3))
    names = sorted(peers)
    for _step in range(20_000):
        if p.is_complete():
            break
        peer = rng.choice(names)
        action = rng.random()
        if action < 0.35:
            before_endgame = p.in_endgame()
            got = p.pick_blocks(peer, rng.randint(1, 6))
            for b in got:
                assert b.index in peers[peer]
                assert b.index in wanted
                assert b.index not in have
                assert b.begin not in received.get(b.index, {})
                assert b not in out[peer]
                assert b.begin % BLOCK_SIZE == 0
                assert b.length == min(BLOCK_SIZE, p.piece_size(b.index) - b.begin)
            booked_elsewhere = {b for other, bs in out.items() if other != peer for b in bs}
            assert len(set(got)) == len(got)
            out[peer].extend(got)
            if booked_elsewhere & set(got):  # endgame: no wanted block may be left free
                event("endgame duplicate handed out")
                assert p.in_endgame() or before_endgame
                booked = {b for bs in out.values() for b in bs}
                for i in wanted - have:
                    for begin in range(0, p.piece_size(i), BLOCK_SIZE):
                        length = min(BLOCK_SIZE, p.piece_size(i) - begin)
                        assert begin in received.get(i, {}) or Block(i, begin, length) in booked
        elif action < 0.75 and out[peer]:
            b = out[peer].pop(rng.randrange(len(out[peer])))
            cancels = p.block_received(peer, b)
            for other, cb in cancels:
                assert cb == b
                out[other].remove(b)
            assert not any(b in bs for bs in out.values())
            received.setdefault(b.index, {}).setdefault(b.begin, peer)
            if p.piece_complete(b.index):
                assert len(received[b.index]) == -(-p.piece_size(b.index) // BLOCK_SIZE)
                if failures and rng.random() < 0.3:
                    failures -= 1
                    event("hash check failed")
                    assert p.piece_failed(b.index) == set(received.pop(b.index).values())
                else:
                    assert p.piece_verified(b.index) == []  # complete: nothing in flight
                    have.add(b.index)
                    del received[b.index]
        elif action < 0.8 and out[peer]:
            b = out[peer].pop(rng.randrange(len(out[peer])))
            assert (p.block_rejected if rng.random() < 0.5 else p.request_timed_out)(peer, b)
        elif action < 0.85:
            assert sorted(p.peer_choked(peer)) == sorted(out[peer])
            out[peer].clear()
        elif action < 0.88:
            assert sorted(p.peer_left(peer)) == sorted(out[peer])
            out[peer].clear()
            p.peer_bitfield(peer, Bitfield.from_indices(n, peers[peer]))  # reconnects
        assert p.outstanding(peer) == len(out[peer])
        if _step % 64 == 0:
            check_availability(p, peers)
            for name, pieces in peers.items():
                assert p.interesting(name) == bool(pieces & (wanted - have))
    assert p.is_complete()
    assert have == wanted
    assert p.wanted_left() == 0
    assert all(p.has_piece(i) == (i in wanted) for i in range(n))


# ---- remote input totality ------------------------------------------------------------


@given(
    n=st.integers(1, 6),
    inputs=st.lists(
        st.one_of(
            st.tuples(st.just("have"), st.integers(-(2**70), 2**70)),
            st.tuples(
                st.just("block"),
                st.tuples(
                    st.integers(-3, 8) | st.integers(-(2**70), 2**70),
                    st.integers(-1, 5).map(lambda k: k * BLOCK_SIZE) | st.integers(-(2**40), 2**40),
                    st.sampled_from([BLOCK_SIZE, 1, 0, -1, 100]) | st.integers(-(2**40), 2**40),
                ),
            ),
        ),
        max_size=30,
    ),
)
def test_remote_inputs_raise_only_remote_protocol_error(
    n: int, inputs: list[tuple[str, object]]
) -> None:
    """``have`` indices and ``piece`` headers come off the wire: any values are survivable."""
    p = make(n, total=n * PL - 100)
    p.peer_have_all("s")
    pending = p.pick_blocks("s", 3)
    for kind, value in inputs:
        try:
            if kind == "have":
                assert isinstance(value, int)
                p.peer_has("x", value)
            else:
                assert isinstance(value, tuple)
                p.block_received("x", Block(*value))
        except RemoteProtocolError:
            pass
    # The picker is still coherent: the seed can finish the download.
    for _ in range(4 * n + 4):
        for b in pending + p.pick_blocks("s", 8):
            p.block_received("s", b)
        for i in range(n):
            if p.piece_complete(i):
                p.piece_verified(i)
        pending = []
    assert p.is_complete()


# ---- derived sets stay what a full refresh would make them -----------------------------


def check_memberships(p: Picker[str]) -> None:
    """`_partials`/`_is_fresh`/`_fresh`/`_open` equal what `_refresh` derives from scratch
    (`block_received` skips `_refresh` when a requested block arrives)."""
    for i in range(p.num_pieces):
        pb = p._partials.get(i)
        assert pb is None or not pb.is_idle(), f"idle piece {i} still partial"
        fresh = pb is None and p._wanted(i)
        assert p._is_fresh[i] == fresh, i
        assert bool(p._fresh & p._bit(i)) == fresh, i
        assert (i in p._open) == (pb is not None and bool(p._prio[i]) and pb.has_free()), i


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["pick", "recv", "recv_any", "reject", "verify", "fail"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 1000),
        ),
        max_size=60,
    )
)
def test_block_outcomes_keep_the_derived_sets_exact(ops: list[tuple[str, str, int]]) -> None:
    n = 5
    p = make(n, total=4 * PL + 1000, endgame_max_owners=2)
    p.peer_have_all("a")
    p.peer_bitfield("b", bf(n, 0, 2, 4))
    p.peer_has("c", 1)
    booked: list[tuple[str, Block]] = []
    for op, peer, x in ops:
        if op == "pick":
            booked += [(peer, b) for b in p.pick_blocks(peer, 1 + x % 4)]
        elif op in ("recv", "reject") and booked:
            owner, block = booked.pop(x % len(booked))
            if op == "recv":
                p.block_received(owner, block)
            else:
                p.block_rejected(owner, block)
        elif op == "recv_any":  # unrequested (or duplicate) but valid
            index = x % n
            size = p.piece_size(index)
            begin = (x // n) % (-(-size // BLOCK_SIZE)) * BLOCK_SIZE
            p.block_received(peer, Block(index, begin, min(BLOCK_SIZE, size - begin)))
        elif op in ("verify", "fail"):
            index = x % n
            if p.piece_complete(index):
                if op == "verify":
                    p.piece_verified(index)
                else:
                    p.piece_failed(index)
        check_memberships(p)
