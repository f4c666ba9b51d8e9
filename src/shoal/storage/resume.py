"""Resume files: which pieces are safely on disk, so a restart need not rehash everything.

Theory of operation
-------------------
A resume file (default ``<root>/.shoal/<info-hash hex>.resume``) is a bencoded dict::

    format    "shoal-resume-1"
    info-hash the torrent's 20-byte v1 info-hash
    pieces    number of pieces
    have      the *durable* pieces, as a BEP 3 bitfield
    files     [[size, mtime_ns], ...] per file in torrent order ([-1, 0]: absent)

Durability policy (full argument in docs/storage.md): `save_resume` first calls
`Storage.flush`, which fsyncs every file a verified piece touched, and only then
records the now-durable pieces and the files' (size, mtime_ns), writing the resume
file atomically (temp file, fsync, rename, fsync of the directory). So a piece is
never recorded before its bytes are on stable storage, and a kill -9 at any moment
leaves either the old or the new resume file, both true.

`load_resume` trusts recorded pieces only in files whose size and mtime are
unchanged; every piece touching a changed (or vanished) file is rehashed, which
also recovers pieces written after the last save. A missing, corrupt or foreign
resume file means a full recheck. Every decode failure is a `DecodeError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from .. import _atomic
from ..bencoding import Bencoded, decode_dict, encode, get_bytes, get_int, get_list
from ..errors import DecodeError, StorageError
from ..ids import InfoHash
from ..swarm.bitfield import Bitfield
from .files import describe_os_error, file_path
from .verify import check_existing

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..metainfo import InfoDict
    from .base import Storage

__all__ = [
    "FORMAT",
    "STATE_DIR_NAME",
    "ResumeData",
    "ResumeResult",
    "ResumeSaver",
    "decode_resume",
    "encode_resume",
    "load_resume",
    "resume_path",
    "save_resume",
    "stat_files",
    "write_atomic",
]

FORMAT: Final = b"shoal-resume-1"
#: Default state directory inside the download directory.
STATE_DIR_NAME: Final = ".shoal"
#: A resume file is tiny (bitfield + 2 ints per file); anything bigger is not ours.
MAX_RESUME_SIZE: Final = 16 * 1024 * 1024
ABSENT: Final = (-1, 0)

FileStat = tuple[int, int]  # (size, mtime_ns)


@dataclass(frozen=True, slots=True)
class ResumeData:
    """The contents of a resume file."""

    info_hash: InfoHash
    have: Bitfield  # durable pieces
    files: tuple[FileStat, ...]


@dataclass(frozen=True, slots=True)
class ResumeResult:
    """What `load_resume` concluded; open the storage with ``have`` and ``durable``."""

    have: Bitfield  # trusted + rechecked pieces
    durable: Bitfield  # pieces known to be on stable storage (trusted ones)
    rechecked: int  # how many pieces were hashed
    reason: str  # why (human-readable), for logs


def encode_resume(data: ResumeData) -> bytes:
    """The bencoded resume file."""
    value: dict[bytes, Bencoded] = {
        b"format": FORMAT,
        b"info-hash": bytes(data.info_hash),
        b"pieces": data.have.num_pieces,
        b"have": data.have.to_bytes(),
        b"files": [[size, mtime] for size, mtime in data.files],
    }
    return encode(value)


def decode_resume(raw: bytes) -> ResumeData:
    """Parse a resume file.

    Raises:
        DecodeError: not a well-formed shoal resume file (any damage at all).
    """
    d = decode_dict(raw, max_size=MAX_RESUME_SIZE)
    if get_bytes(d, b"format", what="resume") != FORMAT:
        raise DecodeError("resume: unknown format")
    info_hash = InfoHash(get_bytes(d, b"info-hash", what="resume"))
    pieces = get_int(d, b"pieces", what="resume")
    if not 0 < pieces <= 8 * MAX_RESUME_SIZE:
        raise DecodeError(f"resume: bad piece count {pieces}")
    bits = get_bytes(d, b"have", what="resume")
    if len(bits) != (pieces + 7) // 8:  # checked before Bitfield allocates anything
        raise DecodeError(f"resume: {len(bits)}-byte bitfield for {pieces} pieces")
    have = Bitfield.from_bytes(bits, pieces)
    files: list[FileStat] = []
    for entry in get_list(d, b"files", what="resume"):
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], int)
            and isinstance(entry[1], int)
        ):
            raise DecodeError("resume: each file must be [size, mtime_ns]")
        files.append((entry[0], entry[1]))
    return ResumeData(info_hash, have, tuple(files))


def resume_path(info: InfoDict, root: str | Path, state_dir: str | Path | None = None) -> Path:
    """``<state_dir or root/.shoal>/<info-hash hex>.resume``.

    Raises:
        StorageError: no `state_dir` and the torrent's own files would live in
            ``root/.shoal`` (a torrent named ``.shoal``): its data and our state must
            not share a directory.
    """
    if state_dir is None:
        if info.name == STATE_DIR_NAME:
            raise StorageError(f"torrent is named {STATE_DIR_NAME!r}: pass a state_dir")
        state_dir = Path(root) / STATE_DIR_NAME
    return Path(state_dir) / f"{info.info_hash.hex()}.resume"


def stat_files(info: InfoDict, root: str | Path) -> tuple[FileStat, ...]:
    """(size, mtime_ns) of each file under `root` (`ABSENT` if missing); blocking."""
    real = os.path.realpath(root)
    out: list[FileStat] = []
    for i, f in enumerate(info.files):
        if f.pad:
            out.append(ABSENT)
            continue
        try:
            st = os.stat(file_path(real, info, i), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            out.append(ABSENT)
            continue
        except OSError as exc:
            raise describe_os_error(exc, "cannot stat", file_path(real, info, i)) from exc
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace the resume file `path` crash-safely (see `shoal._atomic`); blocking.

    Raises:
        StorageError: with the `OSError` chained and a readable reason.
    """
    try:
        _atomic.write_atomic(path, data)
    except OSError as exc:
        raise describe_os_error(exc, "cannot write resume file", path) from exc


async def save_resume(
    storage: Storage, root: str | Path, state_dir: str | Path | None = None
) -> Path:
    """Flush `storage`, then record its durable pieces; returns the resume file's path.

    Raises:
        StorageError: the flush or the write failed (the old resume file is intact).
    """
    info = storage.info
    await storage.flush()
    durable = storage.durable()
    # Stat *after* the fsyncs: a write racing with us changes mtime, which only makes
    # the next load recheck that file (never trust too much).
    stats = await trio.to_thread.run_sync(stat_files, info, root)
    path = resume_path(info, root, state_dir)
    raw = encode_resume(ResumeData(info.info_hash, durable, stats))
    await trio.to_thread.run_sync(write_atomic, path, raw)
    return path


def _pieces_of_file(info: InfoDict, index: int) -> range:
    f = info.files[index]
    if f.length == 0:
        return range(0)
    return range(f.offset // info.piece_length, (f.offset + f.length - 1) // info.piece_length + 1)


def _read_resume(path: Path) -> bytes | None:
    try:
        with path.open("rb") as fh:
            return fh.read(MAX_RESUME_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise describe_os_error(exc, "cannot read resume file", path) from exc


async def load_resume(
    info: InfoDict,
    root: str | Path,
    state_dir: str | Path | None = None,
    *,
    limiter: trio.CapacityLimiter | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResumeResult:
    """Work out which pieces are on disk, hashing only what the resume file can't vouch for.

    Raises:
        StorageError: reading data or the resume file failed (not: missing or corrupt
            resume file, which just means a full recheck).
    """
    path = resume_path(info, root, state_dir)
    raw = await trio.to_thread.run_sync(_read_resume, path)
    data: ResumeData | None = None
    reason = "no resume file"
    if raw is not None:
        try:
            data = decode_resume(raw)
            reason = ""
        except DecodeError as exc:
            reason = f"corrupt resume file ({exc})"
    if data is not None and (
        data.info_hash != info.info_hash
        or data.have.num_pieces != info.num_pieces
        or len(data.files) != len(info.files)
    ):
        data, reason = None, "resume file is for another torrent"
    if data is None:
        have = await check_existing(info, root, limiter=limiter, progress=progress)
        return ResumeResult(have, Bitfield(info.num_pieces), info.num_pieces, reason)
    now = await trio.to_thread.run_sync(stat_files, info, root)
    recheck: set[int] = set()
    changed = [i for i, f in enumerate(info.files) if not f.pad and now[i] != data.files[i]]
    for i in changed:
        recheck.update(_pieces_of_file(info, i))
    trusted = data.have - Bitfield.from_indices(info.num_pieces, recheck)
    found = await check_existing(info, root, pieces=recheck, limiter=limiter, progress=progress)
    reason = f"{len(changed)} changed file(s)" if changed else "resume file up to date"
    return ResumeResult(trusted | found, trusted, len(recheck), reason)


class ResumeSaver:
    """Batches resume saves: every `interval` seconds, or after `max_pieces` new pieces.

    The engine calls `piece_verified` after each successful `verify_piece`, runs
    `run` in its nursery and calls `save` once more at shutdown (after writes stop).
    Batching matters because each save costs an fsync per touched file.
    """

    def __init__(
        self,
        storage: Storage,
        root: str | Path,
        state_dir: str | Path | None = None,
        *,
        interval: float = 30.0,
        max_pieces: int = 64,
    ) -> None:
        self.storage = storage
        self.root = root
        self.state_dir = state_dir
        self.interval = interval
        self.max_pieces = max_pieces
        self._pending = 0
        self._wake = trio.Event()
        self.saves = 0

    def piece_verified(self) -> None:
        self._pending += 1
        if self._pending >= self.max_pieces:
            self._wake.set()

    async def save(self) -> None:
        """Flush and save now (also resets the batch)."""
        self._pending = 0
        self._wake = trio.Event()
        await save_resume(self.storage, self.root, self.state_dir)
        self.saves += 1

    async def run(self) -> None:
        """Save whenever a batch is due; runs until cancelled.

        Raises:
            StorageError: a save failed (disk full...); the engine decides what then.
        """
        while True:
            with trio.move_on_after(self.interval):
                await self._wake.wait()
            if self._pending:
                await self.save()
