"""Bitfield: BEP 3 wire layout, spare-bit checks, and a set-based model for every operation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DecodeError
from shoal.swarm import Bitfield


@st.composite
def fields(draw: st.DrawFn, num_pieces: int | None = None) -> tuple[int, set[int]]:
    n = draw(st.integers(0, 200)) if num_pieces is None else num_pieces
    indices = draw(st.sets(st.integers(0, n - 1))) if n else set()
    return n, indices


def test_golden_layout_high_bit_is_piece_zero() -> None:
    bf = Bitfield.from_indices(10, [0, 9])
    assert bf.to_bytes() == b"\x80\x40"
    assert Bitfield.from_bytes(b"\x80\x40", 10) == bf
    assert list(bf) == [0, 9]


def test_all_and_none() -> None:
    full = Bitfield.all(10)
    assert full.to_bytes() == b"\xff\xc0"  # spare bits stay zero
    assert full.has_all()
    assert full.count() == 10
    empty = Bitfield.none(10)
    assert empty.has_none()
    assert empty.to_bytes() == b"\x00\x00"
    assert Bitfield.all(0).has_all()
    assert Bitfield.all(0).has_none()
    assert Bitfield.all(16).to_bytes() == b"\xff\xff"


def test_spare_bits_are_refused() -> None:
    with pytest.raises(DecodeError, match="spare"):
        Bitfield.from_bytes(b"\xff\xe0", 10)
    assert Bitfield.from_bytes(b"\xff\xc0", 10).has_all()


@pytest.mark.parametrize(("data", "n"), [(b"", 1), (b"\x00", 9), (b"\x00\x00", 8), (b"\x00", 0)])
def test_wrong_length_is_refused(data: bytes, n: int) -> None:
    with pytest.raises(DecodeError, match="bitfield of"):
        Bitfield.from_bytes(data, n)


def test_set_clear_test_and_bounds() -> None:
    bf = Bitfield(12)
    bf.set(11)
    bf.set(11)  # idempotent: the count does not drift
    assert bf.count() == 1
    assert bf.test(11)
    assert 11 in bf
    assert 12 not in bf
    assert "x" not in bf
    bf.clear(11)
    bf.clear(11)
    assert bf.count() == 0
    for bad in (-1, 12):
        with pytest.raises(IndexError):
            bf.set(bad)
        with pytest.raises(IndexError):
            bf.test(bad)
    with pytest.raises(ValueError):
        Bitfield(-1)


def test_operations_need_equal_sizes_and_bitfields_are_unhashable() -> None:
    with pytest.raises(ValueError):
        _ = Bitfield(8) & Bitfield(9)
    with pytest.raises(TypeError):
        hash(Bitfield(8))
    assert Bitfield(8) != Bitfield(9)
    assert Bitfield(8) != b"\x00"


@given(f=fields())
def test_matches_a_set_model(f: tuple[int, set[int]]) -> None:
    n, indices = f
    bf = Bitfield.from_indices(n, indices)
    assert list(bf) == sorted(indices)
    assert list(bf.missing()) == sorted(set(range(n)) - indices)
    assert bf.count() == len(indices)
    assert bf.has_all() == (len(indices) == n)
    assert bf.has_none() == (not indices)
    assert all(bf.test(i) == (i in indices) for i in range(n))
    wire = bf.to_bytes()
    assert len(wire) == (n + 7) // 8
    assert Bitfield.from_bytes(wire, n) == bf


@given(data=st.data(), n=st.integers(0, 120))
def test_set_operations_match_the_model(data: st.DataObject, n: int) -> None:
    _, a = data.draw(fields(n))
    _, b = data.draw(fields(n))
    fa, fb = Bitfield.from_indices(n, a), Bitfield.from_indices(n, b)
    assert set(fa & fb) == a & b
    assert set(fa | fb) == a | b
    assert set(fa - fb) == a - b
    assert set(~fa) == set(range(n)) - a
    assert (fa & fb).count() == len(a & b)
    assert (~fa).to_bytes() == Bitfield.from_indices(n, set(range(n)) - a).to_bytes()
    c = fa.copy()
    assert c == fa
    for i in range(n):
        c.clear(i)
    assert fa == Bitfield.from_indices(n, a)  # the copy is independent


@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 63)), max_size=60))
def test_count_is_tracked_through_mutations(ops: list[tuple[bool, int]]) -> None:
    bf, model = Bitfield(64), set()
    for add, i in ops:
        if add:
            bf.set(i)
            model.add(i)
        else:
            bf.clear(i)
            model.discard(i)
        assert bf.count() == len(model)
    assert set(bf) == model


@given(data=st.binary(max_size=40), n=st.integers(0, 330))
def test_from_bytes_is_total(data: bytes, n: int) -> None:
    try:
        bf = Bitfield.from_bytes(data, n)
    except DecodeError:
        return
    assert bf.to_bytes() == data
    assert all(i < n for i in bf)
