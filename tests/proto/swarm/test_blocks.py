"""PieceBlocks: 16 KiB geometry, free/requested/received bitmaps, endgame owners, reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.swarm.blocks import BLOCK_SIZE, Block, PieceBlocks, block_count


def test_block_size_is_bep3_16_kib() -> None:
    assert BLOCK_SIZE == 16384


@pytest.mark.parametrize(
    ("size", "blocks"), [(1, 1), (16384, 1), (16385, 2), (32768, 2), (262144, 16)]
)
def test_block_count(size: int, blocks: int) -> None:
    assert block_count(size) == blocks
    assert PieceBlocks[str](0, size).num_blocks == blocks


def test_last_block_is_short() -> None:
    pb = PieceBlocks[str](7, 40000)
    assert [pb.block(n) for n in range(3)] == [
        Block(7, 0, 16384),
        Block(7, 16384, 16384),
        Block(7, 32768, 40000 - 32768),
    ]


def test_empty_piece_is_refused() -> None:
    with pytest.raises(ValueError):
        PieceBlocks[str](0, 0)


def test_block_number_accepts_only_the_grid() -> None:
    pb = PieceBlocks[str](3, 40000)
    assert pb.block_number(Block(3, 16384, 16384)) == 1
    assert pb.block_number(Block(3, 32768, 7232)) == 2
    assert pb.block_number(Block(3, 32768, 16384)) is None  # past the end
    assert pb.block_number(Block(3, 100, 16384)) is None  # misaligned
    assert pb.block_number(Block(4, 0, 16384)) is None  # other piece
    assert pb.block_number(Block(3, 49152, 16384)) is None  # beyond last block
    assert pb.block_number(Block(3, -16384, 16384)) is None


def test_request_receive_lifecycle() -> None:
    pb = PieceBlocks[str](0, 3 * BLOCK_SIZE)
    assert pb.is_idle()
    assert pb.free_blocks(10) == [0, 1, 2]
    pb.request(0, "a")
    pb.request(1, "b")
    assert pb.free_blocks(10) == [2]
    assert not pb.is_idle()
    assert pb.receive(0, "a") == []
    assert pb.is_received(0)
    assert not pb.release(0, "a")  # the request ended with the data
    assert pb.release(1, "b")
    assert pb.free_blocks(2) == [1, 2]
    assert pb.free_blocks(1) == [1]
    pb.receive(1, "c")  # unrequested but valid
    pb.receive(2, "a")
    assert pb.is_complete()
    assert not pb.has_free()


def test_receive_returns_other_owners_and_detects_duplicates() -> None:
    pb = PieceBlocks[str](0, BLOCK_SIZE)
    for peer in "abc":
        pb.request(0, peer)
    assert sorted(pb.receive(0, "b") or []) == ["a", "c"]
    assert pb.owners == {}
    assert pb.receive(0, "a") is None


def test_endgame_blocks_prefers_fewest_owners_and_skips_own() -> None:
    pb = PieceBlocks[str](0, 4 * BLOCK_SIZE)
    pb.request(0, "a")
    pb.request(0, "b")
    pb.request(1, "a")
    pb.request(2, "x")
    pb.request(3, "a")
    pb.request(3, "b")
    pb.request(3, "c")
    assert pb.endgame_blocks("x", max_owners=3, limit=10) == [1, 0]
    assert pb.endgame_blocks("a", max_owners=3, limit=10) == [2]
    assert pb.endgame_blocks("z", max_owners=2, limit=10) == [1, 2]
    assert pb.endgame_blocks("z", max_owners=3, limit=1) == [1]


def test_reset_names_contributors_and_keeps_requests() -> None:
    pb = PieceBlocks[str](0, 3 * BLOCK_SIZE)
    pb.receive(0, "a")
    pb.receive(1, "b")
    pb.request(2, "c")
    assert pb.reset() == {"a", "b"}
    assert pb.free_blocks(10) == [0, 1]
    assert pb.owners == {2: ["c"]}
    assert pb.reset() == set()


@given(
    size=st.integers(1, 20 * BLOCK_SIZE),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["req", "rel", "recv"]), st.integers(0, 19), st.sampled_from("abc")
        )
    ),
)
def test_bitmaps_match_a_set_model(size: int, ops: list[tuple[str, int, str]]) -> None:
    pb = PieceBlocks[str](0, size)
    owners: dict[int, list[str]] = {}
    received: set[int] = set()
    for op, n, peer in ops:
        if n >= pb.num_blocks:
            continue
        if op == "req":
            pb.request(n, peer)
            owners.setdefault(n, []).append(peer)
        elif op == "rel":
            had = peer in owners.get(n, [])
            assert pb.release(n, peer) == had
            if had:
                owners[n].remove(peer)
                if not owners[n]:
                    del owners[n]
        else:
            got = pb.receive(n, peer)
            if n in received:
                assert got is None
            else:
                assert got == [p for p in owners.pop(n, []) if p != peer]
                received.add(n)
        free = [k for k in range(pb.num_blocks) if k not in received and k not in owners]
        assert pb.free_blocks(pb.num_blocks) == free
        assert pb.is_complete() == (len(received) == pb.num_blocks)
        assert pb.is_idle() == (not received and not owners)
        assert pb.owners == owners
    assert sum(pb.block(k).length for k in range(pb.num_blocks)) == size
