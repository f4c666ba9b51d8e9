"""Recheck data already on disk: which pieces hash correctly (full or partial recheck).

Theory of operation
-------------------
The pieces to check are grouped into runs of consecutive indices and each run is
cut into chunks of whole pieces (about ``chunk_bytes``). A chunk is a contiguous
range of the torrent's byte stream, so it is read with one big ``preadv`` per file
it overlaps straight into a reused buffer (pad files are zero-filled, BEP 47), and
its pieces are then hashed in a worker thread while the next chunk is read. Up to
three buffers circulate, so on two cores one thread reads while up to two hash;
``hashlib`` and ``preadv`` both release the GIL. A missing file, a short file or a
directory in a file's place makes the bytes it should hold *unreadable*; any piece
touching unreadable bytes is absent without being hashed.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import TYPE_CHECKING, Final

import trio

from ..errors import StorageError
from ..swarm.bitfield import Bitfield
from .base import sha1_matches
from .files import describe_os_error, file_path, open_for_reading

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from ..metainfo import InfoDict

__all__ = ["DEFAULT_CHUNK_BYTES", "check_existing"]

#: Read granularity: big enough that per-call overhead vanishes, small enough that
#: three buffers stay modest next to the piece buffers.
DEFAULT_CHUNK_BYTES: Final = 16 * 1024 * 1024
_BUFFERS: Final = 3


def _chunks(pieces: list[int], per_chunk: int) -> list[tuple[int, int]]:
    """[first, stop) piece ranges: consecutive pieces, at most `per_chunk` each."""
    out: list[tuple[int, int]] = []
    for i in pieces:
        if out and out[-1][1] == i and i - out[-1][0] < per_chunk:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


class _Reader:
    """Reads byte ranges of the torrent stream; used by one worker thread at a time."""

    def __init__(self, info: InfoDict, root: str) -> None:
        self.info = info
        self.root = root
        self.fds: dict[int, int | None] = {}

    def _fd(self, index: int) -> int | None:
        if index not in self.fds:
            self.fds[index] = open_for_reading(self.root, self.info, index)
        return self.fds[index]

    def read(self, start: int, out: memoryview) -> list[tuple[int, int]]:
        """Fill `out` with torrent bytes from `start`; returns unreadable [a, b) ranges."""
        info, end = self.info, start + len(out)
        bad: list[tuple[int, int]] = []
        i = bisect_right(info.file_offsets, start) - 1
        pos = start
        while pos < end:
            f = info.files[i]
            stop = min(end, f.offset + f.length)
            if stop > pos:
                dst = out[pos - start : stop - start]
                if f.pad:
                    dst[:] = bytes(len(dst))
                else:
                    got = self._read_file(i, pos - f.offset, dst)
                    if got < len(dst):
                        bad.append((pos + got, stop))
                pos = stop
            i += 1
        return bad

    def _read_file(self, index: int, offset: int, dst: memoryview) -> int:
        fd = self._fd(index)
        if fd is None:
            return 0
        done = 0
        try:
            while done < len(dst):
                n = os.preadv(fd, [dst[done:]], offset + done)
                if n == 0:
                    break
                done += n
        except IsADirectoryError:
            return 0
        except OSError as exc:
            path = file_path(self.root, self.info, index)
            raise describe_os_error(exc, "cannot read", path) from exc
        return done

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()


def _any_data(info: InfoDict, root: str | Path) -> bool:
    """Could any piece verify: a file with piece bytes exists, or pad files (blocking)?

    Only ``lstat``: whether a file found here is safe to read is `_Reader`'s business.
    """
    real = os.path.realpath(root)
    for i, f in enumerate(info.files):
        if f.pad and f.length:
            return True  # a piece of pad bytes only is valid with no file at all
        if not f.length:
            continue
        try:
            path = file_path(real, info, i)
        except StorageError:
            return True  # let the full check raise it
        if os.path.lexists(path):
            return True
    return False


def _hash_chunk(
    info: InfoDict, first: int, stop: int, view: memoryview, bad: list[tuple[int, int]]
) -> list[int]:
    """Indices in [first, stop) whose bytes are all readable and hash correctly."""
    base = first * info.piece_length
    good: list[int] = []
    for i in range(first, stop):
        a = i * info.piece_length
        b = a + info.piece_size(i)
        if any(x < b and a < y for x, y in bad):
            continue
        if sha1_matches(view[a - base : b - base], info.piece_hash(i)):
            good.append(i)
    return good


async def check_existing(
    info: InfoDict,
    root: str | Path,
    *,
    pieces: Iterable[int] | None = None,
    limiter: trio.CapacityLimiter | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Bitfield:
    """Hash the data under `root` and return the pieces that match their SHA-1.

    Args:
        info: the torrent.
        root: the download directory (files at ``root/<FileEntry.path>``).
        pieces: only these pieces (default: all); others are absent in the result.
        limiter: bounds the worker threads (reading and hashing). Default: 3.
        progress: called as ``progress(checked, total)`` after each chunk.
        chunk_bytes: read size; rounded to whole pieces, at least one.

    Raises:
        StorageError: a read failed for a reason other than missing data, or a path
            would escape `root`.
    """
    todo = sorted(set(range(info.num_pieces) if pieces is None else pieces))
    result = Bitfield(info.num_pieces)
    if not todo or not await trio.to_thread.run_sync(_any_data, info, root):
        # A fresh download: skip the chunk buffers (tens of MiB to zero) and the loop.
        return result
    limiter = limiter if limiter is not None else trio.CapacityLimiter(_BUFFERS)
    per_chunk = max(1, chunk_bytes // info.piece_length)
    free = [bytearray(per_chunk * info.piece_length) for _ in range(min(_BUFFERS, len(todo)))]
    buffers = trio.Semaphore(len(free))
    reader = _Reader(info, await trio.to_thread.run_sync(os.path.realpath, root))
    checked = 0

    async def hash_and_release(
        first: int, stop: int, buf: bytearray, bad: list[tuple[int, int]]
    ) -> None:
        nonlocal checked
        try:
            view = memoryview(buf)
            good = await trio.to_thread.run_sync(
                _hash_chunk, info, first, stop, view, bad, limiter=limiter
            )
        finally:
            free.append(buf)
            buffers.release()
        for i in good:
            result.set(i)
        checked += stop - first
        if progress is not None:
            progress(checked, len(todo))

    async def read_all(nursery: trio.Nursery) -> None:
        for first, stop in _chunks(todo, per_chunk):
            await buffers.acquire()
            buf = free.pop()
            start = first * info.piece_length
            length = (stop - 1) * info.piece_length + info.piece_size(stop - 1) - start
            try:
                view = memoryview(buf)[:length]
                bad = await trio.to_thread.run_sync(reader.read, start, view, limiter=limiter)
            except BaseException:
                free.append(buf)
                buffers.release()
                raise
            nursery.start_soon(hash_and_release, first, stop, buf, bad)

    error: StorageError | None = None
    try:
        async with trio.open_nursery() as nursery:
            # Caught here, not let out of the nursery body, so callers get a plain
            # StorageError rather than an ExceptionGroup (hashing itself cannot fail).
            try:
                await read_all(nursery)
            except StorageError as exc:
                error = exc
                nursery.cancel_scope.cancel()
    finally:
        reader.close()
    if error is not None:
        raise error
    return result
