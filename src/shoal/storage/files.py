"""`FileStorage`: verified pieces written into the torrent's files under a download directory.

Theory of operation
-------------------
Paths: file ``k`` lives at ``root/<FileEntry.path...>``. `shoal.metainfo` already
refuses hostile components; here we check again (defence in depth, and `InfoDict`
can be built by hand): the joined path must be normalised and inside the root, the
real path of its parent directory (after creating it) must be inside the root's real
path, and the file itself is opened with ``O_NOFOLLOW``. So neither ``..`` nor a
symlink planted inside the download directory can redirect a write.

I/O: every system call runs in ``trio.to_thread.run_sync`` under one
``CapacityLimiter`` (default 4, shared with hashing), using positioned
``os.pwrite``/``os.preadv`` so concurrent requests on one descriptor never race on a
file offset. A verified piece is written with a single thread hop however many files
it spans. Descriptors are cached in a bounded LRU; one in use by a thread is never
closed (reference counts), so eviction can never close a descriptor under a running
``pwrite`` and have its number reused for another file. Files are opened read-only
until something must be written, so existing data in a read-only place can be seeded.

Allocation: at the first write to a file it is created and extended with
``ftruncate`` to its full length (sparse, so no space is reserved and no zeros are
written; a longer existing file is left alone). BEP 47 pad files are never created.

File selection policy: storage writes every byte of every verified piece it is
given (pad bytes excepted). Not downloading unwanted files is the picker's job; a
piece straddling a wanted and an unwanted file is written whole, so the unwanted
neighbour appears as a sparse file holding just the overlap. This keeps "verified"
meaning "readable and re-hashable from disk" for every piece, which seeding and
resume rely on.

Errors: every ``OSError`` becomes a `StorageError` naming the file and the cause
(disk full, permission denied, file too large, read-only file system), with the
``OSError`` chained.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, final

import trio

from ..errors import LocalProtocolError, StorageError
from ..layout import Extent, piece_extents
from .base import DEFAULT_MAX_BUFFER_BYTES, BufferedStorage

if TYPE_CHECKING:
    from pathlib import Path

    from ..metainfo import InfoDict
    from ..swarm.bitfield import Bitfield

__all__ = [
    "DEFAULT_MAX_OPEN_FILES",
    "FileStorage",
    "describe_os_error",
    "file_path",
    "open_for_reading",
]

#: Descriptors kept open per storage; torrents with more files reopen as needed.
DEFAULT_MAX_OPEN_FILES: Final = 64

_REASONS: Final = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (file size limit)",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.EIO: "I/O error",
    errno.ELOOP: "refusing to follow a symlink",
}


def describe_os_error(exc: OSError, action: str, path: str | Path) -> StorageError:
    """A `StorageError` with a human reason; raise it ``from exc``."""
    reason = _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return StorageError(f"{action} {os.fspath(path)!s}: {reason}")


def file_path(root: str, info: InfoDict, index: int) -> str:
    """Absolute path of file `index` under `root` (already real), refusing escapes.

    Raises:
        StorageError: the path would leave `root`.
    """
    parts = info.files[index].path
    path = os.path.join(root, *parts)
    if os.path.normpath(path) != path or not path.startswith(root.rstrip(os.sep) + os.sep):
        raise StorageError(f"file path {'/'.join(parts)!r} escapes the download directory")
    return path


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _check_parent(root: str, path: str) -> None:
    """Refuse `path` if its directory really lives outside `root` (a planted symlink)."""
    if not _inside(root, os.path.realpath(os.path.dirname(path))):
        raise StorageError(f"{path}: a symlink leads out of the download directory")


# The last component is never followed either (ELOOP if it is a symlink).
_NOFOLLOW: Final = os.O_CLOEXEC | os.O_NOFOLLOW


def open_for_reading(root: str, info: InfoDict, index: int) -> int | None:
    """Open file `index` under `root` (a real path) read-only; blocking.

    A missing file, a missing directory or a non-file in its place gives ``None``:
    its pieces are simply absent. Escapes and other errors raise `StorageError`.
    """
    path = file_path(root, info, index)
    try:
        _check_parent(root, path)
        fd = os.open(path, _NOFOLLOW | os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise describe_os_error(exc, "cannot open", path) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


@final
class _Handle:
    __slots__ = ("fd", "stale", "users", "writable")

    def __init__(self, fd: int, writable: bool) -> None:
        self.fd = fd
        self.writable = writable
        self.users = 0
        self.stale = False  # replaced or evicted: close when the last user is done


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n


def _pread_into(fd: int, out: memoryview, offset: int) -> int:
    """Fill `out` from `offset`; returns bytes read (short only at end of file)."""
    done = 0
    while done < len(out):
        n = os.preadv(fd, [out[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


@final
class FileStorage(BufferedStorage):
    """Pieces stored in the torrent's files under `root`.

    Args:
        info: the torrent.
        root: the download directory; created on first write if missing.
        have, durable, max_buffer_bytes, limiter: see `BufferedStorage`.
        max_open_files: size of the descriptor LRU.
    """

    def __init__(
        self,
        info: InfoDict,
        root: str | Path,
        *,
        have: Bitfield | None = None,
        durable: Bitfield | None = None,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        limiter: trio.CapacityLimiter | None = None,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
    ) -> None:
        super().__init__(
            info, have=have, durable=durable, max_buffer_bytes=max_buffer_bytes, limiter=limiter
        )
        self.root = os.path.realpath(root)
        self._max_open = max(1, max_open_files)
        self._handles: OrderedDict[int, _Handle] = OrderedDict()
        self._open_lock = trio.Lock()
        self._new_dirs: set[str] = set()  # directories whose entries must be fsync'ed
        self._empties_created = False
        self._released = False

    # ---- descriptors ---------------------------------------------------------------

    def path_of(self, index: int) -> str:
        """Where file `index` lives (`StorageError` if it would escape the root)."""
        return file_path(self.root, self.info, index)

    def _open_sync(self, index: int, write: bool) -> tuple[int | None, list[str]]:
        """Open file `index` in a worker thread: (fd, directories needing an fsync).

        For writing the file and its directories are created and the file is extended
        (sparsely) to its length. For reading see `open_for_reading`.
        """
        if not write:
            return open_for_reading(self.root, self.info, index), []
        path = self.path_of(index)
        dirs: list[str] = []
        try:
            dirs = self._makedirs(os.path.dirname(path))
            _check_parent(self.root, path)
            try:
                fd = os.open(path, _NOFOLLOW | os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                dirs.append(os.path.dirname(path))  # a new name: its directory needs an fsync
            except FileExistsError:
                fd = os.open(path, _NOFOLLOW | os.O_RDWR)
        except OSError as exc:
            raise describe_os_error(exc, "cannot open", path) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"cannot open {path}: not a regular file")
            if st.st_size < self.info.files[index].length:
                os.ftruncate(fd, self.info.files[index].length)
        except OSError as exc:
            os.close(fd)
            raise describe_os_error(exc, "cannot allocate", path) from exc
        except StorageError:
            os.close(fd)
            raise
        return fd, dirs

    def _makedirs(self, directory: str) -> list[str]:
        """Create `directory` and missing parents; returns parents of what was made."""
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d) and d not in missing:
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            if d.startswith(self.root + os.sep):  # the root itself may be anywhere
                _check_parent(self.root, d)  # never mkdir through a symlink leading out
            with contextlib.suppress(FileExistsError):  # another task made it: fine
                os.mkdir(d)
        return [os.path.dirname(d) for d in missing]

    async def _acquire(self, index: int, write: bool) -> _Handle | None:
        """A descriptor for file `index` (None if reading a missing file)."""
        async with self._open_lock:
            if self._released:  # an operation that began before close() must not reopen
                raise LocalProtocolError("storage is closed")
            h = self._handles.get(index)
            if h is None or (write and not h.writable):
                fd, dirs = await trio.to_thread.run_sync(
                    self._open_sync, index, write, limiter=self._limiter
                )
                self._new_dirs.update(dirs)
                if fd is None:
                    return None
                if h is not None:
                    self._retire(h)
                h = self._handles[index] = _Handle(fd, write)
            self._handles.move_to_end(index)
            h.users += 1  # before evicting, so the handle we return is never chosen
            self._evict()
            return h

    async def _acquire_writable(self, index: int) -> _Handle:
        h = await self._acquire(index, write=True)
        assert h is not None  # _open_sync raises rather than return None for writes
        return h

    def _release_handle(self, h: _Handle) -> None:
        h.users -= 1
        if h.users:
            return
        if h.stale:
            os.close(h.fd)
        elif len(self._handles) > self._max_open:
            self._evict()  # the cap is exceeded only while every cached fd is busy

    def _retire(self, h: _Handle) -> None:
        h.stale = True
        if h.users == 0:
            os.close(h.fd)

    def _evict(self) -> None:
        excess = len(self._handles) - self._max_open
        for index in [i for i, h in self._handles.items() if h.users == 0][: max(0, excess)]:
            self._retire(self._handles.pop(index))

    # ---- BufferedStorage hooks -----------------------------------------------------

    def _extents(self, index: int, begin: int, length: int) -> list[Extent]:
        files = self.info.files
        return [
            e for e in piece_extents(self.info, index, begin, length) if not files[e.file_index].pad
        ]

    async def _store_piece(self, index: int, data: memoryview) -> None:
        extents = self._extents(index, 0, len(data))
        handles: list[_Handle] = []
        try:
            for e in extents:
                # One at a time, so `finally` releases exactly those acquired.
                handles.append(await self._acquire_writable(e.file_index))  # noqa: PERF401
            await trio.to_thread.run_sync(
                self._write_extents, index, extents, handles, data, limiter=self._limiter
            )
        finally:
            for h in handles:
                self._release_handle(h)

    def _write_extents(
        self, index: int, extents: list[Extent], handles: list[_Handle], data: memoryview
    ) -> None:
        base = index * self.info.piece_length
        for e, h in zip(extents, handles, strict=True):
            f = self.info.files[e.file_index]
            pos = f.offset + e.file_offset - base
            try:
                _pwrite_all(h.fd, data[pos : pos + e.length], e.file_offset)
            except OSError as exc:
                raise describe_os_error(exc, "cannot write", self.path_of(e.file_index)) from exc

    async def _load(self, index: int, begin: int, length: int) -> bytes:
        out = bytearray(length)
        view = memoryview(out)
        base = index * self.info.piece_length + begin
        done = 0
        for e in piece_extents(self.info, index, begin, length):
            f = self.info.files[e.file_index]
            pos = f.offset + e.file_offset - base
            if f.pad:  # BEP 47: pad files are zeros, never on disk
                done = pos + e.length
                continue
            h = await self._acquire(e.file_index, write=False)
            if h is None:
                break
            try:
                n = await trio.to_thread.run_sync(
                    self._read_extent, h, view[pos : pos + e.length], e, limiter=self._limiter
                )
            finally:
                self._release_handle(h)
            done = pos + n
            if n < e.length:
                break
        return bytes(view[:done])

    def _read_extent(self, h: _Handle, out: memoryview, e: Extent) -> int:
        try:
            return _pread_into(h.fd, out, e.file_offset)
        except OSError as exc:
            raise describe_os_error(exc, "cannot read", self.path_of(e.file_index)) from exc

    async def _create_empty_files(self) -> None:
        # Zero-length files hold no piece bytes, so no write ever creates them.
        for i, f in enumerate(self.info.files):
            if f.length == 0 and not f.pad:
                self._release_handle(await self._acquire_writable(i))
        self._empties_created = True

    async def _sync(self, files: set[int]) -> None:
        if files and not self._empties_created:
            await self._create_empty_files()
        handles: list[_Handle] = []
        try:
            for i in sorted(files):
                h = await self._acquire(i, write=False)
                if h is None:
                    raise StorageError(f"{self.path_of(i)} vanished before it was synced")
                handles.append(h)
            dirs, self._new_dirs = self._new_dirs, set()
            try:
                await trio.to_thread.run_sync(self._fsync_all, handles, dirs, limiter=self._limiter)
            except BaseException:
                self._new_dirs |= dirs
                raise
        finally:
            for h in handles:
                self._release_handle(h)

    def _fsync_all(self, handles: list[_Handle], dirs: set[str]) -> None:
        for h in handles:
            try:
                os.fsync(h.fd)
            except OSError as exc:
                raise describe_os_error(exc, "cannot fsync", f"descriptor {h.fd}") from exc
        # A new file's name is durable only once its directory is fsync'ed.
        for d in sorted(dirs, key=len, reverse=True):
            _fsync_dir(d)

    async def _release(self) -> None:
        async with self._open_lock:
            self._released = True
            for h in self._handles.values():
                self._retire(h)
            self._handles.clear()
        await trio.lowlevel.checkpoint()


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise describe_os_error(exc, "cannot open directory", directory) from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise describe_os_error(exc, "cannot fsync directory", directory) from exc
    finally:
        os.close(fd)


if TYPE_CHECKING:
    from .base import Storage

    _conforms: type[Storage] = FileStorage  # mypy checks the protocol structurally
