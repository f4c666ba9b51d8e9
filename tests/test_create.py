"""Torrent creation: piece-length choice, file order, hashing across files and buffers."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shoal.create
from shoal.bencoding import decode_dict
from shoal.create import auto_piece_length, create_torrent
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from pathlib import Path

KIB = 1024
MIB = KIB * KIB
PL = 16 * KIB


def reference_pieces(data: bytes, piece_length: int) -> bytes:
    return b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )


def write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (1, 16 * KIB),
        (2000 * 16 * KIB, 16 * KIB),
        (2000 * 16 * KIB + 1, 32 * KIB),
        (700 * MIB, 512 * KIB),
        (4 * 1024 * MIB, 4 * MIB),
        (10**15, 16 * MIB),
    ],
)
def test_auto_piece_length(total: int, expected: int) -> None:
    assert auto_piece_length(total) == expected


@given(st.integers(1, 2**50))
def test_auto_piece_length_targets_1000_to_2000_pieces(total: int) -> None:
    pl = auto_piece_length(total)
    assert pl & (pl - 1) == 0
    assert 16 * KIB <= pl <= 16 * MIB
    pieces = -(-total // pl)
    if 16 * KIB < pl < 16 * MIB:
        assert 1000 <= pieces <= 2000
    elif pl == 16 * KIB:
        assert pieces <= 2000


def test_auto_piece_length_rejects_empty() -> None:
    with pytest.raises(ValueError, match="positive"):
        auto_piece_length(0)


def test_single_file(tmp_path: Path) -> None:
    data = write(tmp_path / "movie.bin", os.urandom(50_000))
    torrent = create_torrent(
        tmp_path / "movie.bin", comment="hi", creation_date=123, created_by="me", private=True
    )
    meta = parse_metainfo(torrent)
    info = meta.info
    assert (info.name, info.multi_file, info.private) == ("movie.bin", False, True)
    assert info.total_length == 50_000
    assert info.piece_length == PL
    assert info.piece_hashes == reference_pieces(data, PL)
    assert (meta.comment, meta.created_by, meta.creation_date) == ("hi", "me", 123)
    assert set(decode_dict(info.raw)) == {
        b"name",
        b"piece length",
        b"pieces",
        b"length",
        b"private",
    }


def test_defaults_are_reproducible(tmp_path: Path) -> None:
    write(tmp_path / "f", b"x" * 1000)
    first = create_torrent(tmp_path / "f")
    assert first == create_torrent(tmp_path / "f")
    meta = parse_metainfo(first)
    assert meta.creation_date is None
    assert meta.created_by is not None
    assert meta.created_by.startswith("shoal/")
    assert not meta.info.private


def test_directory_order_and_contents(tmp_path: Path) -> None:
    root = tmp_path / "root"
    parts = {
        ("b",): b"B" * 20_000,
        ("A",): b"a" * 100,
        ("sub", "z"): b"z" * 7,
        ("sub", "deeper", "y"): b"y" * 40_000,
        ("é",): b"e" * 3,
        (".hidden",): b"h",
        ("empty",): b"",
        ("sub-2",): b"2",
    }
    for rel, data in parts.items():
        write(root.joinpath(*rel), data)
    (root / "emptydir").mkdir()
    info = parse_metainfo(create_torrent(root, piece_length=PL)).info
    expected = sorted(parts, key=lambda rel: [c.encode() for c in rel])
    assert [f.path for f in info.files] == [("root", *rel) for rel in expected]
    assert [f.length for f in info.files] == [len(parts[rel]) for rel in expected]
    # "sub" sorts before "sub-2" component-wise even though "sub-2" < "sub/..." as text.
    assert expected.index(("sub", "z")) < expected.index(("sub-2",))
    blob = b"".join(parts[rel] for rel in expected)
    assert info.piece_hashes == reference_pieces(blob, PL)


def test_single_file_directory_is_multi_file(tmp_path: Path) -> None:
    write(tmp_path / "d" / "only", b"1")
    info = parse_metainfo(create_torrent(tmp_path / "d")).info
    assert info.multi_file
    assert info.files[0].path == ("d", "only")


def test_symlinks_and_special_files_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "real", b"data")
    outside = write(tmp_path / "secret", b"do not share")
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "loop").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "fifo")
    info = parse_metainfo(create_torrent(root)).info
    assert [f.path for f in info.files] == [("root", "real")]
    assert info.total_length == 4
    assert outside not in info.raw


def test_symlinked_root_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "real" / "f", b"data")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    info = parse_metainfo(create_torrent(tmp_path / "alias")).info
    assert [f.path for f in info.files] == [("alias", "f")]


def test_executable_bit_becomes_attr_x(tmp_path: Path) -> None:
    write(tmp_path / "d" / "run.sh", b"#!/bin/sh\n")
    (tmp_path / "d" / "run.sh").chmod(0o755)
    raw_info = decode_dict(parse_metainfo(create_torrent(tmp_path / "d")).info.raw)
    files = raw_info[b"files"]
    assert isinstance(files, list)
    assert files == [{b"attr": b"x", b"length": 10, b"path": [b"run.sh"]}]


@pytest.mark.parametrize("setup", ["empty_dir", "zero_files", "missing"])
def test_nothing_to_share(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "t"
    if setup == "empty_dir":
        (target / "sub").mkdir(parents=True)
    elif setup == "zero_files":
        write(target / "a", b"")
    with pytest.raises(ValueError, match=r"no data|neither"):
        create_torrent(target)


@pytest.mark.parametrize("piece_length", [8 * KIB, 3 * PL, 128 * MIB, 0])
def test_bad_piece_length(tmp_path: Path, piece_length: int) -> None:
    write(tmp_path / "f", b"x")
    with pytest.raises(ValueError, match="piece length"):
        create_torrent(tmp_path / "f", piece_length=piece_length)


@pytest.mark.parametrize("bad", ["back\\slash", "C:", "ctl\x01", "...", ". ."])
def test_unrepresentable_names_refused_before_hashing(tmp_path: Path, bad: str) -> None:
    write(tmp_path / "d" / bad, b"x")
    calls: list[int] = []
    with pytest.raises(ValueError, match="cannot put"):
        create_torrent(tmp_path / "d", progress=lambda done, total: calls.append(done))
    assert calls == []


def test_non_utf8_name_refused(tmp_path: Path) -> None:
    os.makedirs(os.fsencode(tmp_path / "d"))
    with open(os.path.join(os.fsencode(tmp_path / "d"), b"\xff"), "wb") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="UTF-8"):
        create_torrent(tmp_path / "d")


def test_progress_reports_every_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shoal.create, "READ_CHUNK", 2 * PL)
    write(tmp_path / "d" / "a", b"a" * (3 * PL))
    write(tmp_path / "d" / "b", b"b" * 100)
    seen: list[tuple[int, int]] = []
    create_torrent(tmp_path / "d", piece_length=PL, progress=lambda d, t: seen.append((d, t)))
    total = 3 * PL + 100
    assert seen == [(2 * PL, total), (total, total)]


@settings(max_examples=30)
@given(
    sizes=st.lists(st.integers(0, 3 * PL + 3), min_size=1, max_size=6),
    piece_exp=st.integers(14, 16),
    chunk_pieces=st.integers(1, 5),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**32),
)
def test_hashes_match_reference_for_any_split(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    piece_exp: int,
    chunk_pieces: int,
    threads: int,
    seed: int,
) -> None:
    # The read buffer (chunk_pieces pieces), the per-thread split and the file
    # boundaries fall anywhere.
    root = tmp_path_factory.mktemp("prop") / "root"
    blob = hashlib.shake_256(seed.to_bytes(8, "big")).digest(sum(sizes) or 1)[: sum(sizes)]
    pos = 0
    for i, n in enumerate(sizes):
        write(root / f"f{i:02d}", blob[pos : pos + n])
        pos += n
    piece_length = 1 << piece_exp
    old = shoal.create.READ_CHUNK, shoal.create.HASH_THREADS
    shoal.create.READ_CHUNK = chunk_pieces * piece_length
    shoal.create.HASH_THREADS = threads
    try:
        if not blob:
            with pytest.raises(ValueError, match="no data"):
                create_torrent(root, piece_length=piece_length)
            return
        info = parse_metainfo(create_torrent(root, piece_length=piece_length)).info
    finally:
        shoal.create.READ_CHUNK, shoal.create.HASH_THREADS = old
    assert info.piece_hashes == reference_pieces(blob, piece_length)
    assert [f.length for f in info.files] == sizes


def test_file_that_shrank_is_an_error(tmp_path: Path) -> None:
    # The size is taken from stat() before hashing; a file cut short meanwhile must
    # not silently hash fewer bytes than the torrent will claim.
    write(tmp_path / "f", b"x" * 50)
    with pytest.raises(OSError, match="shrank"):
        shoal.create._hash_pieces([(tmp_path / "f", 100)], PL, 100, None)
