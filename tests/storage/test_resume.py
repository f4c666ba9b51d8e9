"""Resume files: format round trip and totality, trust rules, crash safety, batching."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import DecodeError, StorageError
from shoal.ids import InfoHash
from shoal.storage import (
    FileStorage,
    ResumeSaver,
    check_existing,
    load_resume,
    resume_path,
    save_resume,
)
from shoal.storage.resume import ResumeData, decode_resume, encode_resume
from shoal.swarm.bitfield import Bitfield

from .helpers import Torrent, blocks, make_torrent, standard

REPO = Path(__file__).resolve().parents[2]


async def fetch(s: FileStorage, t: Torrent, pieces: list[int]) -> None:
    for i in pieces:
        for b, d in blocks(t, i):
            await s.write_block(i, b, d)
        assert await s.verify_piece(i)


# ---- format --------------------------------------------------------------------------


resume_data = st.builds(
    lambda h, n, bits, files: ResumeData(
        InfoHash(h), Bitfield.from_indices(n, [b % n for b in bits]), tuple(files)
    ),
    st.binary(min_size=20, max_size=20),
    st.integers(1, 300),
    st.lists(st.integers(0, 10**6), max_size=50),
    st.lists(st.tuples(st.integers(-1, 2**40), st.integers(0, 2**63)), max_size=10),
)


@given(resume_data)
def test_resume_round_trip(data: ResumeData) -> None:
    assert decode_resume(encode_resume(data)) == data


@given(resume_data, st.data())
def test_mutated_resume_files_raise_only_decode_error(
    data: ResumeData, draw: st.DataObject
) -> None:
    raw = bytearray(encode_resume(data))
    for _ in range(draw.draw(st.integers(1, 4))):
        pos = draw.draw(st.integers(0, len(raw) - 1))
        op = draw.draw(st.sampled_from(["flip", "cut", "dup"]))
        if op == "flip":
            raw[pos] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[pos:]
            if not raw:
                break
        else:
            raw[pos:pos] = raw[pos : pos + 3]
    with contextlib.suppress(DecodeError):
        decode_resume(bytes(raw))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_resume(raw)


def test_bitfield_length_is_checked_before_allocating() -> None:
    raw = encode_resume(ResumeData(InfoHash(bytes(20)), Bitfield(8), ()))
    huge = raw.replace(b"6:piecesi8e", b"6:piecesi100000000e")
    with pytest.raises(DecodeError, match="bitfield"):
        decode_resume(huge)


# ---- trust rules ---------------------------------------------------------------------


async def test_save_and_load_round_trip_without_hashing(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, [0, 2, 5])
    path = await save_resume(s, tmp_path)
    await s.close()
    assert (
        path
        == resume_path(t.info, tmp_path)
        == tmp_path / ".shoal" / f"{t.info.info_hash.hex()}.resume"
    )
    result = await load_resume(t.info, tmp_path)
    assert set(result.have) == set(result.durable) == {0, 2, 5}
    assert result.rechecked == 0
    assert result.reason == "resume file up to date"


async def test_state_dir_elsewhere(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path / "data")
    await fetch(s, t, [1])
    await save_resume(s, tmp_path / "data", tmp_path / "state")
    await s.close()
    assert resume_path(t.info, tmp_path / "data", tmp_path / "state").exists()
    result = await load_resume(t.info, tmp_path / "data", tmp_path / "state")
    assert set(result.have) == {1}
    assert result.rechecked == 0


async def test_modified_file_triggers_recheck_of_exactly_its_pieces(tmp_path: Path) -> None:
    t = standard()  # file 4: bytes 72000..132000, pieces 2 and 3 (and 4 from 131072)
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, list(range(t.info.num_pieces)))
    await save_resume(s, tmp_path)
    await s.close()
    f4 = tmp_path.joinpath(*t.info.files[4].path)
    with f4.open("r+b") as fh:
        fh.seek(40000)  # 72000 + 40000 = 112000: piece 3
        fh.write(b"!")
    os.utime(f4, ns=(1, 1))  # make sure mtime differs even on coarse clocks
    result = await load_resume(t.info, tmp_path)
    assert result.rechecked == 3  # pieces 2, 3, 4
    assert set(result.have) == {0, 1, 2, 4, 5}
    assert set(result.durable) == {0, 1, 5}  # rechecked ones become durable at a flush


async def test_missing_or_corrupt_or_foreign_resume_means_full_recheck(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, [0, 3])
    await s.flush()
    result = await load_resume(t.info, tmp_path)
    assert (result.reason, result.rechecked, set(result.have)) == ("no resume file", 6, {0, 3})
    path = await save_resume(s, tmp_path)
    await s.close()
    path.write_bytes(path.read_bytes()[:-5])
    result = await load_resume(t.info, tmp_path)
    assert result.reason.startswith("corrupt resume file")
    assert (result.rechecked, set(result.have)) == (6, {0, 3})
    assert result.durable.has_none()
    other = ResumeData(InfoHash(b"x" * 20), Bitfield.all(6), ((0, 0),) * 6)
    path.write_bytes(encode_resume(other))
    result = await load_resume(t.info, tmp_path)
    assert result.reason == "resume file is for another torrent"
    assert set(result.have) == {0, 3}


async def test_crash_before_save_trusts_only_recorded_and_rehashes_the_rest(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, [0])
    await save_resume(s, tmp_path)
    # More pieces verified and written but never recorded; then the process "dies":
    # no flush, no save, descriptors simply dropped.
    await fetch(s, t, [1, 4])
    assert set(s.durable()) == {0}
    for h in s._handles.values():
        os.close(h.fd)
    s._handles.clear()
    # Files 2 and 4 (pieces 1..4) changed; file 0 (pieces 0, 1) too, via piece 1.
    for k in (0, 2, 4):
        os.utime(tmp_path.joinpath(*t.info.files[k].path), ns=(2, 2))
    result = await load_resume(t.info, tmp_path)
    # Piece 0 was recorded, but its file changed (piece 1 shares it), so nothing is
    # trusted blindly; hashing recovers 0 and the unrecorded 1 and 4.
    assert result.durable.has_none()
    assert set(result.have) == {0, 1, 4}
    assert result.rechecked == 6  # files 0, 2, 4 and 5 (created by piece 4): pieces 0..5


async def test_flush_failure_leaves_pieces_pending(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, [0])
    tmp_path.joinpath(*t.info.files[0].path).unlink()
    for h in list(s._handles.values()):
        os.close(h.fd)
    s._handles.clear()
    with pytest.raises(Exception, match="vanished"):
        await s.flush()
    assert s.durable().has_none()
    assert s.statistics().verified_pieces == 1


# ---- kill -9 ---------------------------------------------------------------------------

_CHILD = """
import os, sys, trio
sys.path.insert(0, {repo!r})
from tests.storage.helpers import blocks, make_torrent
from shoal.storage import FileStorage, check_existing, ResumeSaver

t = make_torrent([300_000, 5_000, 400_000], seed=9)
async def main():
    s = FileStorage(t.info, {root!r})
    saver = ResumeSaver(s, {root!r}, interval=3600, max_pieces=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(saver.run)
        for i in range(t.info.num_pieces):
            for b, d in blocks(t, i):
                await s.write_block(i, b, d)
            assert await s.verify_piece(i)
            saver.piece_verified()
            await trio.sleep(0.03)  # leaves the parent ~0.5 s to kill us mid-way
trio.run(main)
"""


async def test_kill_9_never_leaves_a_recorded_piece_without_its_bytes(tmp_path: Path) -> None:
    t = make_torrent([300_000, 5_000, 400_000], seed=9)
    code = textwrap.dedent(_CHILD).format(repo=str(REPO), root=str(tmp_path))
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-c", code],
                stdout=subprocess.DEVNULL,
                check=False,
            )
        )
        # Kill mid-download while saves are going on (ResumeSaver every 3 pieces).
        with trio.fail_after(30):
            while not resume_path(t.info, tmp_path).exists():  # noqa: ASYNC110 - another process
                await trio.sleep(0.01)
        await trio.sleep(0.05)
        proc.kill()
    assert proc.returncode == -9
    raw = resume_path(t.info, tmp_path).read_bytes()  # a complete file: atomic rename
    recorded = decode_resume(raw).have
    assert 0 < recorded.count() < t.info.num_pieces
    # Every piece the file vouches for must hash correctly from disk.
    assert await check_existing(t.info, tmp_path, pieces=list(recorded)) == recorded
    result = await load_resume(t.info, tmp_path)
    assert set(result.durable) <= set(recorded)
    assert set(recorded) <= set(result.have)


# ---- batching ------------------------------------------------------------------------


async def test_saver_saves_after_max_pieces_and_on_interval(tmp_path: Path) -> None:
    t = standard()
    s = FileStorage(t.info, tmp_path)
    saver = ResumeSaver(s, tmp_path, interval=3600, max_pieces=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(saver.run)
        await fetch(s, t, [0])
        saver.piece_verified()
        await trio.sleep(0.05)
        assert saver.saves == 0
        await fetch(s, t, [1])
        saver.piece_verified()
        with trio.fail_after(5):
            while saver.saves == 0:  # noqa: ASYNC110 - the saver has no event to wait on
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert set((await load_resume(t.info, tmp_path)).durable) == {0, 1}
    quick = ResumeSaver(s, tmp_path, interval=0.05, max_pieces=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(quick.run)
        await fetch(s, t, [5])
        quick.piece_verified()
        with trio.fail_after(5):
            while quick.saves == 0:  # noqa: ASYNC110 - the saver has no event to wait on
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert set((await load_resume(t.info, tmp_path)).durable) == {0, 1, 5}
    await s.close()


async def test_torrent_named_like_the_state_dir_needs_an_explicit_one(tmp_path: Path) -> None:
    t = make_torrent([40_000], name=".shoal")
    with pytest.raises(StorageError, match="state_dir"):
        resume_path(t.info, tmp_path)
    s = FileStorage(t.info, tmp_path)
    await fetch(s, t, [0])
    with pytest.raises(StorageError, match="state_dir"):
        await save_resume(s, tmp_path)
    assert (await save_resume(s, tmp_path, tmp_path / "state")).parent == tmp_path / "state"
    await s.close()
