"""Create v1 .torrent files from a file or a directory tree.

The output is a BEP 3 v1 torrent without pad files whose info dict is byte-for-byte
what libtorrent 2.x writes with ``create_torrent(..., flags=v1_only)`` for the same
files in the same order, piece length and name, so both compute the same info-hash:
keys ``files``/``length``, ``name``, ``piece length``, ``pieces`` and ``private``
(only when set), and ``attr`` ``x`` for files with the owner-execute bit; no
``mtime``, ``sha1`` or ``.utf-8`` keys.

Policy (see ``docs/metainfo.md``):

* Order: files sorted by path components, bytewise on their UTF-8 encoding (the
  order of a BEP 52 file tree and of libtorrent's canonical order). libtorrent's
  v1-only mode keeps directory-listing order instead, so golden tests hand it our
  sorted list.
* Symlinks and special files (FIFOs, sockets, devices) inside a directory are
  skipped: following links can loop or pull in data from outside the tree. A
  symlink given as the root path itself is followed (the user named it).
* A directory always gives a multi-file torrent, even with one file in it.

Hashing reads with ``readinto`` into preallocated buffers holding many whole pieces,
runs across file boundaries, and hashes ``memoryview`` slices on worker threads
while the next buffer is read, so the Python overhead per piece is one call and the
throughput is bounded by SHA-1 (or the disk), not by Python. ``mmap`` would save
the kernel copy (libtorrent 2 maps files), but a file truncated while mapped kills a
Python process with SIGBUS, so we pay the copy.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ._version import __version__
from .bencoding import Bencoded, encode
from .errors import DecodeError
from .metainfo import (
    MAX_PIECE_LENGTH,
    MIN_PIECE_LENGTH,
    build_metainfo,
    check_component,
    parse_info,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["auto_piece_length", "create_torrent"]

#: Aim for at most this many pieces; the power-of-two step then gives 1000-2000.
TARGET_PIECES: Final = 2000
#: Automatic piece lengths stay within [16 KiB, 16 MiB]: smaller wastes per-piece
#: overhead and is below the block size, larger makes a single bad piece costly and
#: is beyond what older clients accept. Explicit lengths may go up to 64 MiB.
AUTO_MAX_PIECE_LENGTH: Final = 16 * 1024 * 1024
#: SHA-1 worker threads: one per core, at most 4 (beyond that the disk dominates).
HASH_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Read buffer size target: large sequential reads, a few MiB of memory (two buffers).
#: Not Final: tests shrink it to push buffer boundaries through small files.
READ_CHUNK = 8 * 1024 * 1024


def auto_piece_length(total_length: int) -> int:
    """Smallest power of two giving at most 2000 pieces, clamped to [16 KiB, 16 MiB].

    Raises:
        ValueError: `total_length` is not positive.
    """
    if total_length <= 0:
        raise ValueError("total length must be positive")
    need = -(-total_length // TARGET_PIECES)
    length = 1 << (need - 1).bit_length()
    return max(MIN_PIECE_LENGTH, min(AUTO_MAX_PIECE_LENGTH, length))


def _utf8_key(parts: tuple[str, ...]) -> tuple[bytes, ...]:
    try:
        return tuple(p.encode("utf-8") for p in parts)
    except UnicodeEncodeError as exc:
        raise ValueError(f"file name is not valid UTF-8: {'/'.join(parts)!r}") from exc


_Found = tuple[tuple[str, ...], Path, os.stat_result]


def _walk(root: Path) -> list[_Found]:
    """Regular files under `root` as (relative parts, path, stat), symlinks skipped."""
    found: list[_Found] = []
    stack: list[tuple[tuple[str, ...], Path]] = [((), root)]
    while stack:
        rel, directory = stack.pop()
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_symlink():
                    continue
                parts = (*rel, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    stack.append((parts, Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    found.append((parts, Path(entry.path), entry.stat(follow_symlinks=False)))
    found.sort(key=lambda f: _utf8_key(f[0]))
    return found


def _attrs(st: os.stat_result) -> dict[bytes, Bencoded]:
    # BEP 47 "x": executable. libtorrent writes it from the owner-execute bit, and
    # since it is inside the info dict it must match for equal info-hashes.
    return {b"attr": b"x"} if st.st_mode & stat.S_IXUSR else {}


def _check_names(name: str, entries: list[_Found]) -> None:
    for parts in [(name,), *(parts for parts, _, _ in entries)]:
        _utf8_key(parts)
        try:
            for part in parts:
                check_component(part)
        except DecodeError as exc:
            raise ValueError(f"cannot put {'/'.join(parts)!r} in a torrent: {exc}") from exc


def _hash_range(view: memoryview, start: int, stop: int, piece_length: int) -> list[bytes]:
    """Digests of the pieces in ``view[start:stop]`` (`start` is piece-aligned)."""
    sha1 = hashlib.sha1
    return [
        sha1(view[off : min(off + piece_length, stop)]).digest()
        for off in range(start, stop, piece_length)
    ]


def _hash_pieces(
    files: list[tuple[Path, int]],
    piece_length: int,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> bytes:
    """SHA-1 of every piece of the concatenation of `files` (each read to its size).

    Two buffers alternate: worker threads hash the pieces of a full buffer (split
    into one contiguous run per thread) while this thread reads into the other.
    ``readinto`` and ``hashlib`` (on > 2 KiB) both release the GIL, so reading and
    hashing overlap and, with several cores, SHA-1 runs in parallel as libtorrent's
    does.
    """
    chunk = piece_length * max(1, READ_CHUNK // piece_length)
    views = [memoryview(bytearray(chunk)), memoryview(bytearray(chunk))]
    digests: list[bytes] = []
    pending: list[Future[list[bytes]]] = []
    pending_len = done = filled = current = 0

    with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="shoal-hash") as pool:

        def collect() -> None:
            nonlocal done
            if pending:
                for fut in pending:
                    digests.extend(fut.result())
                pending.clear()
                done += pending_len
                if progress is not None:
                    progress(done, total)

        def flush() -> None:
            # The other buffer is free once its hashing is collected; then swap.
            nonlocal pending_len, filled, current
            collect()
            pieces = -(-filled // piece_length)
            per = -(-pieces // HASH_THREADS) * piece_length
            pending.extend(
                pool.submit(_hash_range, views[current], lo, min(lo + per, filled), piece_length)
                for lo in range(0, filled, per)
            )
            pending_len, filled, current = filled, 0, 1 - current

        for path, size in files:
            remaining = size
            if not remaining:
                continue
            with path.open("rb", buffering=0) as fh:
                while remaining:
                    want = min(chunk - filled, remaining)
                    n = fh.readinto(views[current][filled : filled + want])
                    if not n:
                        raise OSError(f"{path} shrank while it was being hashed")
                    filled += n
                    remaining -= n
                    if filled == chunk:
                        flush()
        if filled:
            flush()
        collect()
    return b"".join(digests)


def create_torrent(
    path: Path,
    *,
    piece_length: int | None = None,
    comment: str | None = None,
    private: bool = False,
    created_by: str | None = f"shoal/{__version__}",
    creation_date: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """Hash `path` (a file or a directory) and return a bencoded v1 .torrent.

    Args:
        piece_length: a power of two in [16 KiB, 64 MiB]; default `auto_piece_length`.
        private: set BEP 27 ``private=1``.
        creation_date: seconds since the epoch; omitted by default for
            reproducible output.
        progress: called as ``progress(bytes_hashed, total_bytes)`` after each read
            buffer is hashed (a few MiB at a time).

    Raises:
        ValueError: no data, a bad piece length, or file names that cannot be
            represented safely (see `shoal.metainfo.check_component`).
        OSError: a file could not be read or shrank while it was read.
    """
    path = Path(os.path.abspath(path))
    name = path.name
    multi = path.is_dir()
    if multi:
        entries = _walk(path)
    elif path.is_file():
        entries = [((name,), path, path.stat())]
    else:
        raise ValueError(f"{path} is neither a regular file nor a directory")
    files = [(p, st.st_size) for _, p, st in entries]
    total = sum(n for _, n in files)
    if total <= 0:
        raise ValueError(f"{path} holds no data; a torrent needs at least one byte")
    if piece_length is None:
        piece_length = auto_piece_length(total)
    elif not (
        MIN_PIECE_LENGTH <= piece_length <= MAX_PIECE_LENGTH
        and piece_length & (piece_length - 1) == 0
    ):
        raise ValueError(f"piece length {piece_length} is not a power of two in [16 KiB, 64 MiB]")
    _check_names(name, entries if multi else [])  # fail before hours of hashing, not after
    info: dict[bytes, Bencoded] = {
        b"name": _utf8_key((name,))[0],
        b"piece length": piece_length,
        b"pieces": _hash_pieces(files, piece_length, total, progress),
    }
    if multi:
        info[b"files"] = [
            {b"length": st.st_size, b"path": list[Bencoded](_utf8_key(parts)), **_attrs(st)}
            for parts, _, st in entries
        ]
    else:
        info[b"length"] = total
        info.update(_attrs(entries[0][2]))
    if private:
        info[b"private"] = 1
    raw = encode(info)
    try:
        parse_info(raw)  # never write a torrent that shoal itself would refuse
    except DecodeError as exc:
        raise ValueError(f"cannot make a torrent of {path}: {exc}") from exc
    return build_metainfo(raw, comment=comment, created_by=created_by, creation_date=creation_date)
