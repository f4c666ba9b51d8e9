"""Storage behaviour: verify-then-write buffers, file layout, hostile paths, disk errors."""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import LocalProtocolError, StorageError
from shoal.metainfo import FileEntry
from shoal.storage import FileStorage, MemoryStorage, PieceBuffer, WriteResult
from shoal.swarm.bitfield import Bitfield

from .helpers import BLOCK, PIECE, Torrent, blocks, make_torrent, standard

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shoal.storage.base import BufferedStorage

REPO = Path(__file__).resolve().parents[2]


async def download(
    storage: BufferedStorage, t: Torrent, pieces: range | list[int] | None = None
) -> None:
    for i in range(t.info.num_pieces) if pieces is None else pieces:
        results = [await storage.write_block(i, b, d) for b, d in blocks(t, i)]
        assert results[-1] is WriteResult.COMPLETE
        assert all(r is WriteResult.STORED for r in results[:-1])
        assert await storage.verify_piece(i)


# ---- PieceBuffer ---------------------------------------------------------------------


@given(
    size=st.integers(1, 3 * BLOCK),
    cuts=st.lists(st.tuples(st.integers(0, 3 * BLOCK), st.integers(0, 3 * BLOCK)), max_size=30),
)
def test_piece_buffer_counts_each_byte_once(size: int, cuts: list[tuple[int, int]]) -> None:
    buf = PieceBuffer(0, size)
    covered = bytearray(size)
    for a, b in cuts:
        lo, hi = sorted((a % (size + 1), b % (size + 1)))
        buf.write(lo, bytes([1]) * (hi - lo))
        covered[lo:hi] = b"\x01" * (hi - lo)
    assert buf.received == sum(covered)
    assert bytes(buf.data) == bytes(covered)
    assert buf.complete == (sum(covered) == size)
    buf.write(0, b"\x02" * size)
    assert buf.complete


# ---- memory backend --------------------------------------------------------------------


async def test_memory_round_trip_in_any_block_order() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    order = [(i, b, d) for i in range(t.info.num_pieces) for b, d in blocks(t, i, 8192)]
    order.reverse()
    for i, b, d in order:
        await s.write_block(i, b, d)
    assert all([await s.verify_piece(i) for i in range(t.info.num_pieces)])
    assert s.contents == t.data
    assert s.verified().has_all()
    assert s.durable().has_all()
    assert await s.read_block(2, 100, 5000) == t.piece(2)[100:5100]


async def test_memory_seeder_hashes_given_data() -> None:
    t = standard()
    damaged = bytearray(t.data)
    damaged[PIECE + 5] ^= 0xFF
    s = MemoryStorage(t.info, data=bytes(damaged))
    assert list(s.verified().missing()) == [1]
    assert list(MemoryStorage(t.info, data=t.data[:-1]).verified().missing()) == [5]


async def test_bad_piece_is_dropped_and_never_stored() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    for b, d in blocks(t, 1):
        await s.write_block(1, b, d if b else b"x" + d[1:])
    assert not await s.verify_piece(1)
    assert not s.has_piece(1)
    assert s.statistics().buffered_pieces == 0
    assert s.contents == bytes(len(t.data))  # nothing reached the backend


async def test_rejected_piece_bytes_are_handed_out_once_for_smart_ban() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    sent = [(b, d if b else b"x" + d[1:]) for b, d in blocks(t, 1)]
    for b, d in sent:
        assert s.write_block_now(1, b, d) in (WriteResult.STORED, WriteResult.COMPLETE)
    assert s.pop_rejected(1) is None  # not verified yet
    assert not await s.verify_piece(1)
    assert s.pop_rejected(1) == b"".join(d for _, d in sent)
    assert s.pop_rejected(1) is None
    await download(s, t, [0])
    assert s.pop_rejected(0) is None  # a good piece leaves nothing behind


async def test_only_the_last_rejected_pieces_are_kept() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    for i in range(4):
        for b, d in blocks(t, i):
            s.write_block_now(i, b, bytes(len(d)))
        assert not await s.verify_piece(i)
    assert [s.pop_rejected(i) is not None for i in range(4)] == [False, False, True, True]


async def test_reused_buffers_never_count_stale_bytes() -> None:
    t = make_torrent([6 * PIECE])
    s = MemoryStorage(t.info)
    await download(s, t, [0, 1])  # their buffers are kept for reuse
    first, *rest = blocks(t, 2)
    assert s.write_block_now(2, *first) is WriteResult.STORED  # a reused buffer
    assert not await s.verify_piece(2)  # old bytes in the rest do not make it complete
    for b, d in rest:
        s.write_block_now(2, b, d)
    assert await s.verify_piece(2)
    assert s.contents[2 * PIECE : 3 * PIECE] == t.piece(2)


async def test_write_block_now_checks_like_write_block() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    with pytest.raises(LocalProtocolError):
        s.write_block_now(0, PIECE, b"x")
    with pytest.raises(LocalProtocolError):
        s.write_block_now(t.info.num_pieces, 0, b"x")
    await s.close()
    with pytest.raises(LocalProtocolError):
        s.write_block_now(0, 0, b"x")


async def test_verified_piece_is_never_overwritten() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    await download(s, t, [0])
    assert await s.write_block(0, 0, b"\0" * BLOCK) is WriteResult.IGNORED
    assert s.contents[:PIECE] == t.piece(0)


async def test_empty_block_allocates_nothing() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    assert await s.write_block(0, 100, b"") is WriteResult.IGNORED
    assert s.statistics().buffered_bytes == 0


async def test_incomplete_piece_does_not_verify_and_keeps_its_buffer() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    begin, data = blocks(t, 0)[0]
    assert await s.write_block(0, begin, data) is WriteResult.STORED
    assert not await s.verify_piece(0)
    assert s.statistics().buffered_pieces == 1
    s.discard_piece(0)
    assert s.statistics().buffered_bytes == 0


async def test_buffer_cap_refuses_new_pieces_until_one_is_freed() -> None:
    t = standard()
    s = MemoryStorage(t.info, max_buffer_bytes=2 * PIECE)
    assert s.max_buffer_bytes == 2 * PIECE
    for i in (0, 1):
        assert await s.write_block(i, 0, t.piece(i)[:BLOCK]) is WriteResult.STORED
    assert await s.write_block(2, 0, t.piece(2)[:BLOCK]) is WriteResult.NO_ROOM
    assert await s.write_block(0, BLOCK, t.piece(0)[BLOCK:]) is WriteResult.COMPLETE
    assert await s.verify_piece(0)
    assert await s.write_block(2, 0, t.piece(2)[:BLOCK]) is WriteResult.STORED
    assert s.statistics().buffered_bytes == 2 * PIECE
    assert MemoryStorage(t.info, max_buffer_bytes=1).max_buffer_bytes == PIECE


async def test_block_arriving_while_piece_is_hashed_is_ignored() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    results: list[bool] = []
    async with trio.open_nursery() as nursery:

        async def verify() -> None:
            results.append(await s.verify_piece(0))

        nursery.start_soon(verify)
        nursery.start_soon(verify)
        await trio.testing.wait_all_tasks_blocked()
        assert await s.write_block(0, 0, b"\0" * BLOCK) is WriteResult.IGNORED
    assert results == [True, True]
    assert s.contents[:PIECE] == t.piece(0)


async def test_caller_bugs_raise_local_protocol_error() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    with pytest.raises(LocalProtocolError):
        await s.read_block(0, 0, 10)  # not verified: never uploaded
    with pytest.raises(LocalProtocolError):
        await s.write_block(0, PIECE - 1, b"ab")
    with pytest.raises(LocalProtocolError):
        await s.write_block(t.info.num_pieces, 0, b"a")
    with pytest.raises(LocalProtocolError):
        await s.verify_piece(-1)
    await s.close()
    with pytest.raises(LocalProtocolError):
        await s.write_block(0, 0, b"a")


# ---- files -----------------------------------------------------------------------------


async def test_files_round_trip_across_boundaries_with_pad_and_empty_files(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await download(s, t)
    await s.flush()
    assert s.durable().has_all()
    for k, f in enumerate(t.info.files):
        path = tmp_path.joinpath(*f.path)
        if f.pad:
            assert not path.exists()
        else:  # the empty file 1 is created by the flush
            assert path.read_bytes() == t.file_bytes(k)
    # Reads spanning file 0 → file 2 (empty file 1 between) and file 2 → pad → file 4.
    assert await s.read_block(1, 0, PIECE) == t.piece(1)
    assert await s.read_block(1, 7000, 3000) == t.piece(1)[7000:10000]
    assert await s.read_block(2, 0, PIECE) == t.piece(2)
    await s.close()
    assert not (tmp_path / ".pad").exists()
    assert not (tmp_path / "t" / ".pad").exists()


async def test_seeding_from_read_only_opened_files(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await download(s, t)
    await s.close()
    seeder = FileStorage(t.info, tmp_path)
    assert all([await seeder.verify_piece(i) for i in range(t.info.num_pieces)])
    assert await seeder.read_block(4, 10, 20) == t.piece(4)[10:30]
    assert all(not h.writable for h in seeder._handles.values())
    await seeder.close()


async def test_single_file_torrent_and_sparse_preallocation(tmp_path: Path) -> None:
    t = make_torrent([5 * PIECE + 123], seed=3)
    # A one-entry multi-file torrent still goes under <name>/; fine for this test.
    s = FileStorage(t.info, tmp_path)
    await download(s, t, [3])
    path = tmp_path.joinpath(*t.info.files[0].path)
    st = path.stat()
    assert st.st_size == t.info.total_length  # extended to full length at first write
    assert st.st_blocks * 512 < t.info.total_length  # ... but sparse
    assert path.read_bytes()[3 * PIECE : 4 * PIECE] == t.piece(3)
    await s.close()


async def test_tiny_descriptor_cache_still_works(tmp_path: Path) -> None:
    t = make_torrent([9000] * 12, seed=5)
    s = FileStorage(t.info, tmp_path, max_open_files=1)
    async with trio.open_nursery() as nursery:
        for i in range(t.info.num_pieces):
            nursery.start_soon(download, s, t, [i])
    assert len(s._handles) <= 1
    for i in range(t.info.num_pieces):
        assert await s.read_block(i, 0, t.info.piece_size(i)) == t.piece(i)
    await s.close()


async def test_recheck_of_stored_piece_notices_damage(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await download(s, t)
    await s.flush()
    f4 = tmp_path.joinpath(*t.info.files[4].path)
    with f4.open("r+b") as fh:  # file 4 starts at 72000: byte 30000 is in piece 3
        fh.seek(30000)
        fh.write(b"!")
    assert not await s.verify_piece(3)
    assert not s.has_piece(3)
    assert not s.durable().test(3)
    assert await s.verify_piece(2)
    await s.close()
    # A cached descriptor keeps an unlinked file readable (POSIX), so reopen to see it gone.
    f4.unlink()
    s = FileStorage(t.info, tmp_path, have=s.verified())
    assert not await s.verify_piece(4)
    assert await s.verify_piece(1)
    await s.close()


def _hostile(t: Torrent, index: int, path: tuple[str, ...]) -> Torrent:
    files = list(t.info.files)
    files[index] = dataclasses.replace(files[index], path=path)
    return dataclasses.replace(t, info=dataclasses.replace(t.info, files=tuple(files)))


@pytest.mark.parametrize(
    "path",
    [
        ("..", "escaped.bin"),
        ("t", "..", "..", "escaped.bin"),
        ("/tmp", "escaped.bin"),
        ("a/../..",),
    ],
)
async def test_hostile_paths_cannot_escape(tmp_path: Path, path: tuple[str, ...]) -> None:
    t = _hostile(standard(), 0, path)
    root = tmp_path / "root"
    s = FileStorage(t.info, root)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    with pytest.raises(StorageError, match="escapes the download directory"):
        await s.verify_piece(0)
    assert not s.has_piece(0)
    assert not (tmp_path / "escaped.bin").exists()
    await s.close()


async def test_planted_symlinks_are_not_followed(tmp_path: Path) -> None:
    t = standard()
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "t").mkdir(parents=True)
    outside.mkdir()
    (root / "t" / "dir").symlink_to(outside)
    s = FileStorage(t.info, root)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    with pytest.raises(StorageError, match="symlink"):
        await s.verify_piece(0)
    assert list(outside.iterdir()) == []
    await s.close()
    # A symlink as the file itself (last component) is refused too.
    (root / "t" / "dir").unlink()
    (root / "t" / "dir").mkdir()
    (root / "t" / "dir" / "f0.bin").symlink_to(outside / "target")
    s = FileStorage(t.info, root)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    with pytest.raises(StorageError, match="symlink"):
        await s.verify_piece(0)
    assert list(outside.iterdir()) == []
    await s.close()


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory we cannot create files in, and the reason we expect to read.

    Root ignores permission bits, so as root the directory is made immutable with
    ``chattr +i`` (EPERM) instead; skipped where neither works.
    """
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        yield tmp_path, "permission denied"
        tmp_path.chmod(0o700)
        return
    try:
        subprocess.run(["chattr", "+i", str(tmp_path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("chattr +i not available here")
    try:
        yield tmp_path, "operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path)], check=True, timeout=10)


async def test_unwritable_directory_gives_a_clean_storage_error(
    unwritable_dir: tuple[Path, str],
) -> None:
    root, reason = unwritable_dir
    t = standard()
    s = FileStorage(t.info, root)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    with pytest.raises(StorageError, match=reason) as info:
        await s.verify_piece(0)
    assert isinstance(info.value.__cause__, PermissionError)
    assert not s.has_piece(0)
    await s.close()


def test_file_size_limit_gives_clean_storage_error(tmp_path: Path) -> None:
    # No tiny tmpfs here: RLIMIT_FSIZE in a child process makes ftruncate/pwrite fail
    # with EFBIG just like a full disk fails with ENOSPC (same code path).
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, trio
        sys.path.insert(0, {str(REPO)!r})
        from tests.storage.helpers import blocks, make_torrent
        from shoal.errors import StorageError
        from shoal.storage import FileStorage
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        t = make_torrent([200_000], seed=1)
        async def main():
            s = FileStorage(t.info, {str(tmp_path)!r})
            for b, d in blocks(t, 0):
                await s.write_block(0, b, d)
            try:
                await s.verify_piece(0)
            except StorageError as exc:
                print("StorageError:", exc, "| cause:", type(exc.__cause__).__name__)
            print("have:", s.has_piece(0))
            await s.close()
        trio.run(main)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "StorageError: cannot allocate" in out
    assert "file too large" in out
    assert "cause: OSError" in out
    assert "have: False" in out


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * PIECE), min_size=1, max_size=6).filter(lambda s: sum(s) > 0),
    pad_mask=st.integers(0, 63),
    seed=st.integers(0, 2**16),
)
async def test_random_layouts_round_trip_through_files(
    sizes: list[int], pad_mask: int, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pads = {k for k in range(len(sizes)) if pad_mask >> k & 1}
    t = make_torrent(sizes, pads=pads, seed=seed)
    root = tmp_path_factory.mktemp("layout")
    s = FileStorage(t.info, root, max_open_files=2)
    await download(s, t, list(reversed(range(t.info.num_pieces))))
    for i in range(t.info.num_pieces):
        assert await s.read_block(i, 0, t.info.piece_size(i)) == t.piece(i)
    await s.close()
    for k, f in enumerate(t.info.files):
        path = root.joinpath(*f.path)
        assert path.exists() == (not f.pad and f.length > 0)  # no flush: no empty files
        if path.exists():
            assert path.read_bytes() == t.file_bytes(k)


def test_file_entries_are_what_the_helpers_claim() -> None:
    t = standard()
    assert t.info.files[3] == FileEntry(("t", ".pad", "7000"), 7000, 65000, pad=True)
    assert len(t.data) == t.info.total_length


async def test_block_is_copied_before_write_block_yields() -> None:
    t = standard()
    s = MemoryStorage(t.info)
    scratch = bytearray(t.piece(0))  # a decoder's reusable receive buffer
    view = memoryview(scratch)
    assert await s.write_block(0, 0, view[:BLOCK]) is WriteResult.STORED
    scratch[:BLOCK] = bytes(BLOCK)  # reused for the next frame
    assert await s.write_block(0, BLOCK, view[BLOCK:]) is WriteResult.COMPLETE
    assert await s.verify_piece(0)


async def test_close_while_a_piece_is_being_verified(tmp_path: Path) -> None:
    t = standard()
    limiter = trio.CapacityLimiter(1)
    s = FileStorage(t.info, tmp_path, limiter=limiter)
    for b, d in blocks(t, 0):
        await s.write_block(0, b, d)
    outcome: list[str] = []

    async def verify() -> None:
        try:
            await s.verify_piece(0)
        except LocalProtocolError as exc:
            outcome.append(str(exc))

    async with trio.open_nursery() as nursery:
        await limiter.acquire()  # hold the only thread token: hashing must wait
        nursery.start_soon(verify)
        await trio.testing.wait_all_tasks_blocked()
        await s.close()
        limiter.release()
    # The hash finished after close: the piece is not written (no descriptor reopened).
    assert outcome == ["storage is closed"]
    assert not s.has_piece(0)
    assert not tmp_path.joinpath(*t.info.files[0].path).exists()
    assert s.statistics().buffered_bytes == 0
    with pytest.raises(LocalProtocolError):
        await s.flush()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_swarm_of_writers_with_liars_and_a_tight_buffer_cap(
    tmp_path: Path, seed: int
) -> None:
    """Several 'peers' race on shuffled blocks; one lies. Only honest bytes reach disk."""
    rng = random.Random(seed)
    t = make_torrent([70_000, 0, 33_000, 5_000, 120_000], pads={3}, seed=seed)
    s = FileStorage(t.info, tmp_path, max_buffer_bytes=3 * PIECE, max_open_files=2)
    n = t.info.num_pieces
    todo = [(i, b, d) for i in range(n) for b, d in blocks(t, i, 4096)]
    failures = peak = 0

    async def peer(name: int, lie: bool) -> None:
        nonlocal failures, peak
        mine = todo[:]
        rng.shuffle(mine)
        for _round in range(50):  # bounded: re-request what was refused, a few rounds
            retry = []
            for i, b, d in mine:
                data = bytes(len(d)) if lie and rng.random() < 0.3 else d
                res = await s.write_block(i, b, data)
                peak = max(peak, s.statistics().buffered_bytes)
                if res is WriteResult.NO_ROOM:
                    retry.append((i, b, d))
                elif res is WriteResult.COMPLETE and not await s.verify_piece(i):
                    failures += 1
                    retry.extend((i, bb, dd) for bb, dd in blocks(t, i, 4096))
            if not retry:
                return
            mine = [x for x in retry if not s.has_piece(x[0])]
            # A buffer another peer abandoned must not hold the cap forever.
            for i in {x[0] for x in mine}:
                if rng.random() < 0.2:
                    s.discard_piece(i)
            await trio.lowlevel.checkpoint()

    # A lying pass alone first, so that bad pieces are hashed whatever the scheduling.
    for i, b, d in rng.sample(todo, len(todo)):
        res = await s.write_block(i, b, bytes(len(d)) if rng.random() < 0.3 else d)
        if res is WriteResult.COMPLETE and not await s.verify_piece(i):
            failures += 1
    assert failures > 0  # the liar's pieces were hashed and refused
    async with trio.open_nursery() as nursery:
        for k in range(4):
            nursery.start_soon(peer, k, k == 0)
    # Discards drop blocks other peers had delivered; an honest endgame pass finishes.
    for i in s.verified().missing():
        s.discard_piece(i)
        for b, d in blocks(t, i):
            await s.write_block(i, b, d)
        assert await s.verify_piece(i)
    assert s.verified().has_all()
    assert 0 < peak <= 3 * PIECE
    await s.flush()
    await s.close()
    for k, f in enumerate(t.info.files):
        if not f.pad:
            assert tmp_path.joinpath(*f.path).read_bytes() == t.file_bytes(k)


async def test_disk_full_during_write_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ENOSPC cannot be provoked without a small filesystem; fail pwrite the way it would.
    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    t = standard()
    s = FileStorage(t.info, tmp_path)
    for b, d in blocks(t, 1):
        await s.write_block(1, b, d)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StorageError, match=r"cannot write .*f0\.bin: disk full") as info:
        await s.verify_piece(1)
    assert info.value.__cause__ is not None
    assert info.value.__cause__.errno == errno.ENOSPC
    assert not s.has_piece(1)
    assert s.statistics().buffered_bytes == 0  # the piece will be fetched again
    monkeypatch.undo()
    await download(s, t, [1])
    await s.close()


async def test_initial_bitfields_are_checked_and_durable_implies_have(tmp_path: Path) -> None:
    t = standard()
    with pytest.raises(ValueError, match="bitfield of 5 pieces"):
        FileStorage(t.info, tmp_path, have=Bitfield(5))
    with pytest.raises(ValueError, match="bitfield of 7 pieces"):
        FileStorage(t.info, tmp_path, durable=Bitfield(7))
    fs = FileStorage(
        t.info,
        tmp_path,
        have=Bitfield.from_indices(6, [0, 1]),
        durable=Bitfield.from_indices(6, [1, 2]),
    )
    assert set(fs.durable()) == {1}  # nothing can be durable without being verified
    assert set(fs.verified()) == {0, 1}
    await fs.close()
