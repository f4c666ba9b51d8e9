"""Piece → file extent mapping: worked examples and coverage properties."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.layout import Extent, file_pieces, piece_extents
from shoal.metainfo import InfoDict, parse_info

from .test_metainfo import PL, multi_info


def make_info(
    lengths: list[int], piece_length: int = PL, pads: frozenset[int] = frozenset()
) -> InfoDict:
    entries = [
        {b"path": [b"f%d" % i], b"length": n, **({b"attr": b"p"} if i in pads else {})}
        for i, n in enumerate(lengths)
    ]
    return parse_info(encode(multi_info(entries, piece_length=piece_length)))


def test_block_spanning_three_files_skips_empty_ones() -> None:
    info = make_info([10_000, 0, 5_000, 0, 0, 20_000])
    # piece 0 is bytes [0, 16384): 10000 of f0, 5000 of f2, 1384 of f5.
    assert piece_extents(info, 0, 0, PL) == [
        Extent(0, 0, 10_000),
        Extent(2, 0, 5_000),
        Extent(5, 0, 1_384),
    ]
    assert piece_extents(info, 0, 9_999, 2) == [Extent(0, 9_999, 1), Extent(2, 0, 1)]
    # piece 1 is [16384, 32768) and piece 2 the short tail [32768, 35000) at f5 offset 17768.
    assert piece_extents(info, 1, 100, 50) == [Extent(5, 1_484, 50)]
    assert piece_extents(info, 2, 0, info.piece_size(2)) == [Extent(5, 17_768, 2_232)]


def test_pad_files_are_reported() -> None:
    info = make_info([100, PL - 100, 50], pads=frozenset({1}))
    assert piece_extents(info, 0, 0, PL) == [Extent(0, 0, 100), Extent(1, 0, PL - 100)]
    assert info.files[1].pad
    assert piece_extents(info, 1, 0, 50) == [Extent(2, 0, 50)]


def test_zero_length_and_edges() -> None:
    info = make_info([PL, 10])
    assert piece_extents(info, 0, PL, 0) == []
    assert piece_extents(info, 1, 10, 0) == []
    assert piece_extents(info, 0, PL - 1, 1) == [Extent(0, PL - 1, 1)]


@pytest.mark.parametrize(
    ("index", "begin", "length"),
    [(-1, 0, 1), (2, 0, 1), (0, -1, 1), (0, 0, -1), (0, 1, PL), (1, 0, 11), (1, 11, 0)],
)
def test_out_of_range(index: int, begin: int, length: int) -> None:
    info = make_info([PL, 10])
    with pytest.raises(ValueError, match="out"):
        piece_extents(info, index, begin, length)


layouts = st.tuples(
    st.lists(st.integers(0, 3 * PL), min_size=1, max_size=12).filter(lambda ls: sum(ls) > 0),
    st.sampled_from([PL, 2 * PL, 4 * PL]),
)


@given(layouts, st.data())
def test_extents_are_contiguous_and_in_bounds(
    layout: tuple[list[int], int], data: st.DataObject
) -> None:
    lengths, piece_length = layout
    info = make_info(lengths, piece_length)
    index = data.draw(st.integers(0, info.num_pieces - 1))
    size = info.piece_size(index)
    begin = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - begin))
    extents = piece_extents(info, index, begin, length)
    assert sum(e.length for e in extents) == length
    pos = index * piece_length + begin
    for e in extents:
        f = info.files[e.file_index]
        assert e.length > 0
        assert e.file_offset >= 0
        assert e.file_offset + e.length <= f.length
        assert f.offset + e.file_offset == pos  # contiguous in torrent space
        pos += e.length
    assert [e.file_index for e in extents] == sorted({e.file_index for e in extents})


@given(layouts)
def test_pieces_cover_every_file_byte_exactly_once(layout: tuple[list[int], int]) -> None:
    lengths, piece_length = layout
    info = make_info(lengths, piece_length)
    covered = [0] * len(lengths)
    cursor = [0] * len(lengths)
    for index in range(info.num_pieces):
        for e in piece_extents(info, index, 0, info.piece_size(index)):
            assert e.file_offset == cursor[e.file_index]  # in order, no gap or overlap
            cursor[e.file_index] += e.length
            covered[e.file_index] += e.length
    assert covered == lengths


def test_lookup_is_logarithmic_in_file_count() -> None:
    info = make_info([1] * 50_000 + [PL * 4])
    last = info.num_pieces - 1
    start = time.perf_counter()
    for _ in range(2_000):
        piece_extents(info, last, 0, 1)
    # 2000 linear scans over 50k files would take seconds; bisect takes milliseconds.
    assert time.perf_counter() - start < 0.5


def test_file_pieces_examples() -> None:
    info = make_info([10_000, 0, 5_000, 0, 0, 20_000])
    assert [file_pieces(info, i) for i in range(6)] == [
        range(1),
        range(0),
        range(1),
        range(0),
        range(0),
        range(3),
    ]
    with pytest.raises(IndexError):
        file_pieces(info, 6)


@given(layouts)
def test_file_pieces_agree_with_extents(layout: tuple[list[int], int]) -> None:
    lengths, piece_length = layout
    info = make_info(lengths, piece_length)
    touching: dict[int, set[int]] = {i: set() for i in range(len(lengths))}
    for index in range(info.num_pieces):
        for e in piece_extents(info, index, 0, info.piece_size(index)):
            touching[e.file_index].add(index)
    for i in range(len(lengths)):
        assert set(file_pieces(info, i)) == touching[i]
