"""The `Storage` protocol, per-piece receive buffers and the shared verify-then-write logic.

Theory of operation
-------------------
Blocks arriving from peers are *not* written to their files. Each piece in flight
gets one preallocated `PieceBuffer` (``bytearray(piece_size)``); a block is copied
into it exactly once by a memoryview slice assignment. When every byte of the piece
has arrived, `Storage.verify_piece` hashes the buffer with SHA-1 on a worker thread
(hashlib releases the GIL) and only if the digest matches the info dict's (BEP 3,
"pieces") are the bytes handed to the backend (files, memory). Hence:

* unverified bytes never touch the files, so a crash can never leave garbage that a
  later recheck might mistake for data we chose to keep;
* verified data is never overwritten: blocks for a piece we already have, or one
  that is being hashed right now, are dropped (`WriteResult.IGNORED`);
* a buffer is *sealed* while it is hashed and written, so a late duplicate block
  cannot change bytes between hashing and writing.

Memory: the buffers together never exceed ``max_buffer_bytes`` (default 64 MiB, at
least one piece). A block that would need a new buffer beyond the cap is dropped
with `WriteResult.NO_ROOM` instead of waiting: waiting inside a peer's reader task
could deadlock (the blocks that would complete the buffered pieces may sit behind it
in the same TCP stream). The download engine should start at most about
``max_buffer_bytes // piece_length`` pieces at once and `discard_piece` stalled ones.

Durability bookkeeping: a piece handed to the backend is *verified* at once but only
*durable* after a `flush` has fsync'ed every file it touches; `shoal.storage.resume`
records only durable pieces (see docs/storage.md).
"""

from __future__ import annotations

import enum
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final

import trio

from ..errors import LocalProtocolError, StorageError
from ..layout import piece_extents
from ..swarm.bitfield import Bitfield

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..metainfo import InfoDict

__all__ = [
    "DEFAULT_MAX_BUFFER_BYTES",
    "BufferedStorage",
    "PieceBuffer",
    "Storage",
    "StorageFactory",
    "StorageStatistics",
    "WriteResult",
    "sha1_matches",
]

#: Default cap on the bytes held by in-flight piece buffers: 16 pieces of 4 MiB.
DEFAULT_MAX_BUFFER_BYTES: Final = 64 * 1024 * 1024
#: Stored pieces' buffers kept for reuse: a fresh piece-sized bytearray costs a page
#: fault per 4 KiB (the allocator maps and unmaps big blocks), per piece.
_MAX_SPARE: Final = 2
#: Failed pieces whose bytes are kept until the engine picks them up (`pop_rejected`).
_MAX_REJECTED: Final = 2


class WriteResult(enum.Enum):
    """What `Storage.write_block` did with a block."""

    STORED = "stored"  # copied into the piece's buffer; the piece is still incomplete
    COMPLETE = "complete"  # copied, and the piece now has every byte: call verify_piece
    IGNORED = "ignored"  # empty block, or piece verified or being verified: dropped
    NO_ROOM = "no_room"  # buffer cap reached: block dropped, request it again later


@dataclass(frozen=True, slots=True)
class StorageStatistics:
    """A snapshot for logging and the engine's scheduling (trio-style `statistics()`)."""

    verified_pieces: int
    durable_pieces: int
    buffered_pieces: int
    buffered_bytes: int
    max_buffer_bytes: int


class Storage(Protocol):
    """What the download engine needs from storage; `BufferedStorage` implements it.

    This is the seam a `Torrent` uses (``Client.add(..., storage=factory)``): anything
    with these methods can hold a torrent's data, `FileStorage` and `MemoryStorage`
    among them.

    All methods are called from Trio tasks of one run; none is thread-safe.
    """

    info: InfoDict

    async def write_block(self, index: int, begin: int, data: bytes | memoryview) -> WriteResult:
        """Copy a received block into piece `index`'s buffer (never straight to disk)."""
        ...

    def write_block_now(self, index: int, begin: int, data: bytes | memoryview) -> WriteResult:
        """`write_block` without checkpoints: the per-block path of the torrent's engine
        must not await (copying into a buffer never waits)."""
        ...

    def pop_rejected(self, index: int) -> bytes | bytearray | None:
        """The bytes of piece `index` if it just failed `verify_piece` (once; else None),
        so smart ban can hash them block by block."""
        ...

    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        """Bytes of a *verified* piece, for uploading."""
        ...

    async def verify_piece(self, index: int) -> bool:
        """Hash the piece (buffer if in flight, else the stored bytes); True if it matches."""
        ...

    def discard_piece(self, index: int) -> None:
        """Drop piece `index`'s in-flight buffer (given up on, or its peers are gone)."""
        ...

    def has_piece(self, index: int) -> bool:
        """Is piece `index` verified?"""
        ...

    def verified(self) -> Bitfield:
        """A copy of the verified pieces."""
        ...

    def durable(self) -> Bitfield:
        """A copy of the pieces whose bytes are known to be on stable storage."""
        ...

    def statistics(self) -> StorageStatistics: ...

    async def flush(self) -> None:
        """Make every verified piece durable (fsync the files they touched)."""
        ...

    async def close(self) -> None:
        """Release every resource; buffers of unfinished pieces are dropped."""
        ...


#: Builds the storage of a torrent once its info dict is known (a magnet's only later).
StorageFactory: TypeAlias = "Callable[[InfoDict], Storage]"


def sha1_matches(data: bytes | bytearray | memoryview, digest: bytes) -> bool:
    """The pure verification rule (BEP 3): SHA-1 of the piece equals its listed hash."""
    return hashlib.sha1(data).digest() == digest


@final
class PieceBuffer:
    """One piece being received: its bytes and which ranges of them have arrived.

    Arrived ranges are kept as sorted, disjoint, merged ``[start, end)`` pairs, so
    duplicate and overlapping blocks are counted once; with in-order 16 KiB blocks
    the list stays at one or two entries.
    """

    __slots__ = ("_ranges", "data", "index", "received", "sealed", "view")

    def __init__(self, index: int, size: int, data: bytearray | None = None) -> None:
        self.index = index
        # A recycled `data` may hold old bytes: `received` is what says which are new.
        self.data = data if data is not None and len(data) == size else bytearray(size)
        self.view = memoryview(self.data)
        self._ranges: list[list[int]] = []
        self.received = 0
        self.sealed = False  # set while hashing/writing: no more writes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def complete(self) -> bool:
        return self.received == len(self.data)

    def write(self, begin: int, data: bytes | memoryview) -> None:
        """Copy `data` in at `begin` (the caller has checked the range and `sealed`)."""
        end = begin + len(data)
        self.view[begin:end] = data
        self._add_range(begin, end)

    def _add_range(self, start: int, end: int) -> None:
        if start == end:
            return
        ranges = self._ranges
        # Find every range touching [start, end), merge them into one.
        i = 0
        while i < len(ranges) and ranges[i][1] < start:
            i += 1
        j = i
        while j < len(ranges) and ranges[j][0] <= end:
            start = min(start, ranges[j][0])
            end = max(end, ranges[j][1])
            j += 1
        ranges[i:j] = [[start, end]]
        self.received = sum(b - a for a, b in ranges)


class BufferedStorage(ABC):
    """`Storage` with the verify-then-write policy; subclasses supply the byte backend.

    Subclasses implement `_store_piece` (write a verified piece's bytes), `_load`
    (read bytes back, possibly short if the data is missing), `_sync` (make stored
    bytes durable) and `_release` (close).

    Args:
        info: the torrent.
        have: pieces already verified (from a resume file or a recheck).
        durable: the subset of `have` known to be on stable storage already; the
            rest of `have` becomes durable at the next `flush`.
        max_buffer_bytes: cap on in-flight buffer memory (raised to one piece if lower).
        limiter: bounds the worker threads used for hashing (and, in subclasses, disk
            I/O). Default: a new ``CapacityLimiter(4)``.
    """

    def __init__(
        self,
        info: InfoDict,
        *,
        have: Bitfield | None = None,
        durable: Bitfield | None = None,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.info = info
        n = info.num_pieces
        for given in (have, durable):
            if given is not None and given.num_pieces != n:
                raise ValueError(f"bitfield of {given.num_pieces} pieces for a torrent of {n}")
        self._have = have.copy() if have is not None else Bitfield(n)
        self._durable = (durable & self._have) if durable is not None else Bitfield(n)
        # Pieces verified but not yet fsync'ed, and the files they touched.
        self._unsynced: set[int] = set(self._have - self._durable)
        self._dirty_files: set[int] = set()
        for i in self._unsynced:
            self._dirty_files.update(self._files_of_piece(i))
        self.max_buffer_bytes = max(max_buffer_bytes, info.piece_length)
        self._buffers: dict[int, PieceBuffer] = {}
        self._buffered_bytes = 0
        self._verifying: dict[int, trio.Event] = {}
        # The bytes of pieces that just failed their hash, for smart ban (`pop_rejected`).
        self._rejected: dict[int, bytearray] = {}
        self._spare: list[bytearray] = []
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(4)
        self._closed = False

    # ---- backend hooks -------------------------------------------------------------

    @abstractmethod
    async def _store_piece(self, index: int, data: memoryview) -> None:
        """Write verified piece `index` to the backend (pad bytes are skipped)."""

    @abstractmethod
    async def _load(self, index: int, begin: int, length: int) -> bytes:
        """Read stored bytes; shorter than `length` if the data is missing or short."""

    @abstractmethod
    async def _sync(self, files: set[int]) -> None:
        """Make everything written to these files durable."""

    @abstractmethod
    async def _release(self) -> None:
        """Close backend resources."""

    # ---- helpers -------------------------------------------------------------------

    def _files_of_piece(self, index: int) -> list[int]:
        files = self.info.files
        extents = piece_extents(self.info, index, 0, self.info.piece_size(index))
        return [e.file_index for e in extents if not files[e.file_index].pad]

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("storage is closed")

    def _check_range(self, index: int, begin: int, length: int) -> None:
        if not 0 <= index < self.info.num_pieces:
            raise LocalProtocolError(f"piece {index} out of range")
        if begin < 0 or length < 0 or begin + length > self.info.piece_size(index):
            raise LocalProtocolError(f"range {begin}+{length} outside piece {index}")

    # ---- Storage -------------------------------------------------------------------

    async def write_block(self, index: int, begin: int, data: bytes | memoryview) -> WriteResult:
        """Copy a block into piece `index`'s buffer, allocating it if needed.

        Returns `WriteResult.COMPLETE` once every byte of the piece is present; the
        caller then calls `verify_piece`. Never waits on the disk. `data` is copied
        before the first yield, so a decoder may reuse the memory behind a memoryview.

        Raises:
            LocalProtocolError: the range is outside the piece (validate peer messages
                against your requests first) or the storage is closed.
        """
        self._check_open()
        self._check_range(index, begin, len(data))
        await trio.lowlevel.checkpoint_if_cancelled()
        result = self._write_now(index, begin, data)
        # The copy is done before we yield, so the caller may reuse its buffer at once.
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result

    def write_block_now(self, index: int, begin: int, data: bytes | memoryview) -> WriteResult:
        """`write_block` without the checkpoints, for the download engine's hot path.

        Copying a block never waits, so the engine calls this once per 16 KiB block
        instead of paying two scheduler round trips (and a cancel shield) per block.

        Raises:
            LocalProtocolError: as `write_block`.
        """
        self._check_open()
        self._check_range(index, begin, len(data))
        return self._write_now(index, begin, data)

    def _write_now(self, index: int, begin: int, data: bytes | memoryview) -> WriteResult:
        # An empty block must not cost a piece-sized buffer.
        if not data or self._have.test(index) or index in self._verifying:
            return WriteResult.IGNORED
        buf = self._buffers.get(index)
        if buf is None:
            size = self.info.piece_size(index)
            if self._buffered_bytes + size > self.max_buffer_bytes:
                return WriteResult.NO_ROOM
            spare = self._spare.pop() if self._spare and len(self._spare[-1]) == size else None
            buf = self._buffers[index] = PieceBuffer(index, size, spare)
            self._buffered_bytes += size
        buf.write(begin, data)
        return WriteResult.COMPLETE if buf.complete else WriteResult.STORED

    def pop_rejected(self, index: int) -> bytearray | None:
        """The bytes of piece `index` if it just failed `verify_piece` (once; else None).

        The engine hashes them block by block to find which peer sent the bad block
        (smart ban) only when a piece fails, instead of hashing every block it receives.
        Only the last few failures are kept.
        """
        return self._rejected.pop(index, None)

    def discard_piece(self, index: int) -> None:
        """Drop an in-flight buffer (no-op if none, or if it is being verified)."""
        buf = self._buffers.get(index)
        if buf is not None and not buf.sealed:
            self._free(buf)

    def _free(self, buf: PieceBuffer) -> None:
        # `close` may have dropped every buffer while this one was being verified.
        if self._buffers.pop(buf.index, None) is buf:
            self._buffered_bytes -= buf.size

    async def verify_piece(self, index: int) -> bool:
        """Hash piece `index` and record the outcome.

        With a complete buffer: on a match the bytes are stored and the piece becomes
        verified; on a mismatch the buffer is dropped (ban-worthy peers are the
        engine's business). With an incomplete buffer: False, buffer kept. With no
        buffer: the stored bytes are read back and hashed (a single-piece recheck),
        and the verified bit is set or cleared accordingly. Concurrent calls for the
        same piece wait for the first one's result.

        Raises:
            StorageError: the backend failed (the piece stays unverified).
            LocalProtocolError: bad index or closed storage.
        """
        self._check_open()
        self._check_range(index, 0, 0)
        if (event := self._verifying.get(index)) is not None:
            await event.wait()
            return self._have.test(index)
        buf = self._buffers.get(index)
        if buf is not None and not buf.complete:
            await trio.lowlevel.checkpoint()
            return False
        event = self._verifying[index] = trio.Event()
        try:
            if buf is not None:
                return await self._verify_buffer(buf)
            return await self._recheck(index)
        finally:
            del self._verifying[index]
            event.set()

    async def _verify_buffer(self, buf: PieceBuffer) -> bool:
        buf.sealed = True
        try:
            ok = await self._hash(buf.view, buf.index)
            if ok:
                await self._store_piece(buf.index, buf.view)
                self._mark_verified(buf.index)
                # Hashed and stored: nothing refers to these bytes any more.
                if len(self._spare) < _MAX_SPARE and not self._closed:
                    self._spare.append(buf.data)
            else:
                self._rejected[buf.index] = buf.data
                while len(self._rejected) > _MAX_REJECTED:
                    del self._rejected[next(iter(self._rejected))]
            return ok
        finally:
            self._free(buf)

    async def _recheck(self, index: int) -> bool:
        size = self.info.piece_size(index)
        data = await self._load(index, 0, size)
        ok = len(data) == size and await self._hash(data, index)
        if ok:
            if not self._have.test(index):
                self._mark_verified(index)
        else:
            self._have.clear(index)
            self._durable.clear(index)
            self._unsynced.discard(index)
        return ok

    async def _hash(self, data: bytes | memoryview, index: int) -> bool:
        digest = self.info.piece_hash(index)
        return await trio.to_thread.run_sync(sha1_matches, data, digest, limiter=self._limiter)

    #: Backends with nothing to fsync (memory) make stored pieces durable at once.
    _writes_are_durable = False

    def _mark_verified(self, index: int) -> None:
        self._have.set(index)
        if self._writes_are_durable:
            self._durable.set(index)
            return
        self._unsynced.add(index)
        self._dirty_files.update(self._files_of_piece(index))

    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        """Read `length` bytes at `begin` of verified piece `index` (for uploads).

        Raises:
            LocalProtocolError: the piece is not verified (we never upload unverified
                bytes), the range is outside the piece, or the storage is closed.
            StorageError: the backend failed or the data vanished from disk.
        """
        self._check_open()
        self._check_range(index, begin, length)
        if not self._have.test(index):
            raise LocalProtocolError(f"piece {index} is not verified; refusing to read it")
        data = await self._load(index, begin, length)
        if len(data) != length:
            raise StorageError(f"piece {index}: stored data is shorter than expected")
        return data

    def has_piece(self, index: int) -> bool:
        return self._have.test(index)

    def verified(self) -> Bitfield:
        return self._have.copy()

    def durable(self) -> Bitfield:
        return self._durable.copy()

    def statistics(self) -> StorageStatistics:
        return StorageStatistics(
            verified_pieces=self._have.count(),
            durable_pieces=self._durable.count(),
            buffered_pieces=len(self._buffers),
            buffered_bytes=self._buffered_bytes,
            max_buffer_bytes=self.max_buffer_bytes,
        )

    async def flush(self) -> None:
        """Fsync the files touched since the last flush; their pieces become durable.

        The snapshot of pieces and files is taken without an intervening checkpoint,
        so a piece stored while the fsyncs run stays pending until the next flush.
        """
        self._check_open()
        pieces, files = self._unsynced, self._dirty_files
        self._unsynced, self._dirty_files = set(), set()
        try:
            await self._sync(files)
        except BaseException:
            self._unsynced |= pieces
            self._dirty_files |= files
            raise
        for i in pieces:
            if self._have.test(i):  # a recheck may have cleared it meanwhile
                self._durable.set(i)

    async def close(self) -> None:
        """Drop all buffers and close the backend (does not flush: call `flush` first)."""
        if self._closed:
            return
        self._closed = True
        self._buffers.clear()
        self._rejected.clear()
        self._spare.clear()
        self._buffered_bytes = 0
        await self._release()
