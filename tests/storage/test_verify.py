"""check_existing: a full or partial recheck finds exactly the pieces whose bytes are right."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import StorageError
from shoal.storage import check_existing

from .helpers import PIECE, Torrent, make_torrent, standard

if TYPE_CHECKING:
    from pathlib import Path


def write_files(t: Torrent, root: Path) -> None:
    for k, f in enumerate(t.info.files):
        if not f.pad:
            path = root.joinpath(*f.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(t.file_bytes(k))


def expected(t: Torrent, root: Path) -> set[int]:
    """The oracle: rebuild the stream from whatever is on disk, hash piece by piece."""
    stream = bytearray()
    readable = bytearray()
    for f in t.info.files:
        path = root.joinpath(*f.path)
        got = bytes(f.length) if f.pad else path.read_bytes()[: f.length] if path.is_file() else b""
        stream += got + bytes(f.length - len(got))
        readable += b"\x01" * len(got) + bytes(f.length - len(got))
    good = set()
    for i in range(t.info.num_pieces):
        a, b = i * t.info.piece_length, i * t.info.piece_length + t.info.piece_size(i)
        if all(readable[a:b]) and hashlib.sha1(stream[a:b]).digest() == t.info.piece_hash(i):
            good.add(i)
    return good


async def test_complete_data_checks_complete(tmp_path: Path) -> None:
    t = standard()
    write_files(t, tmp_path)
    calls: list[tuple[int, int]] = []
    have = await check_existing(
        t.info, tmp_path, progress=lambda d, n: calls.append((d, n)), chunk_bytes=PIECE
    )
    assert have.has_all()
    assert calls[-1] == (t.info.num_pieces, t.info.num_pieces)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


async def test_nothing_on_disk_checks_empty(tmp_path: Path) -> None:
    t = standard()
    assert (await check_existing(t.info, tmp_path / "missing")).has_none()


async def test_missing_short_and_corrupt_files(tmp_path: Path) -> None:
    t = standard()  # pieces of 32768; files at 0, 40000 (empty), 40000, pad 65000, 72000, 132000
    write_files(t, tmp_path)
    files = [tmp_path.joinpath(*f.path) for f in t.info.files]
    files[0].unlink()  # bytes 0..40000: pieces 0, 1
    with files[5].open("r+b") as fh:  # file 5 at 132000, 50000 long: cut to 30000
        fh.truncate(30000)  # bytes 162000.. missing: piece 4 (131072..163840) and 5
    with files[4].open("r+b") as fh:  # byte 72000 + 30000 = 102000 is in piece 3
        fh.seek(30000)
        fh.write(b"\xff")
    have = await check_existing(t.info, tmp_path, chunk_bytes=2 * PIECE)
    assert set(have) == expected(t, tmp_path) == {2}


async def test_partial_recheck_only_looks_at_the_given_pieces(tmp_path: Path) -> None:
    t = standard()
    write_files(t, tmp_path)
    have = await check_existing(t.info, tmp_path, pieces=[5, 1, 3, 4])
    assert set(have) == {1, 3, 4, 5}
    assert (await check_existing(t.info, tmp_path, pieces=[])).has_none()


async def test_directory_in_place_of_a_file_means_absent(tmp_path: Path) -> None:
    t = standard()
    write_files(t, tmp_path)
    f2 = tmp_path.joinpath(*t.info.files[2].path)
    f2.unlink()
    f2.mkdir()
    # File 2 holds bytes 40000..65000, all inside piece 1 (32768..65536).
    assert set(await check_existing(t.info, tmp_path)) == {0, 2, 3, 4, 5}


async def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    t = standard()
    outside = tmp_path / "outside"
    write_files(t, outside)
    root = tmp_path / "root"
    (root / "t").mkdir(parents=True)
    (root / "t" / "dir").symlink_to(outside / "t" / "dir")
    with pytest.raises(StorageError, match="symlink"):
        await check_existing(t.info, root)


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * PIECE), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
    pad_mask=st.integers(0, 31),
    damage=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from(["delete", "truncate", "flip"]),
            st.integers(0, 10**6),
        ),
        max_size=4,
    ),
    chunk_pieces=st.integers(1, 4),
)
async def test_matches_the_oracle_on_random_damage(
    sizes: list[int],
    pad_mask: int,
    damage: list[tuple[int, str, int]],
    chunk_pieces: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pads = {k for k in range(len(sizes)) if pad_mask >> k & 1}
    t = make_torrent(sizes, pads=pads, seed=len(sizes))
    root = tmp_path_factory.mktemp("damage")
    write_files(t, root)
    for k, kind, where in damage:
        f = t.info.files[k % len(sizes)]
        path = root.joinpath(*f.path)
        if f.pad or not path.exists():
            continue
        if kind == "delete":
            path.unlink()
        elif kind == "truncate":
            with path.open("r+b") as fh:
                fh.truncate(where % (f.length + 1))
        elif f.length:
            with path.open("r+b") as fh:
                fh.seek(where % f.length)
                byte = fh.read(1)
                if byte:  # not past the end of a truncated file
                    fh.seek(where % f.length)
                    fh.write(bytes([byte[0] ^ 0x01]))
    have = await check_existing(t.info, root, chunk_bytes=chunk_pieces * PIECE)
    assert set(have) == expected(t, root)
