"""`MemoryStorage`: the torrent's bytes in one ``bytearray``, for tests and simulation.

Same verify-then-write policy as `FileStorage` (it is the same `BufferedStorage`),
so an engine tested against it behaves identically on disk. Stored bytes are
durable the moment they are written: there is nothing to fsync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

from ..swarm.bitfield import Bitfield
from .base import DEFAULT_MAX_BUFFER_BYTES, BufferedStorage, sha1_matches

if TYPE_CHECKING:
    from ..metainfo import InfoDict

__all__ = ["MemoryStorage"]


@final
class MemoryStorage(BufferedStorage):
    """All of the torrent's data (pad bytes included) in memory."""

    _writes_are_durable = True

    def __init__(
        self,
        info: InfoDict,
        *,
        data: bytes | None = None,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        """Empty storage, or a seeder's: `data` (the whole torrent) is hashed now.

        Pieces of `data` whose SHA-1 matches start out verified; a wrong or short
        `data` simply leaves those pieces missing.
        """
        self._data = bytearray(info.total_length)
        have = Bitfield(info.num_pieces)
        if data is not None:
            self._data[: len(data)] = data[: info.total_length]
            view = memoryview(self._data)
            for i in range(info.num_pieces):
                start = i * info.piece_length
                piece = view[start : start + info.piece_size(i)]
                if start + len(piece) <= len(data) and sha1_matches(piece, info.piece_hash(i)):
                    have.set(i)
        super().__init__(
            info, have=have, durable=have, max_buffer_bytes=max_buffer_bytes, limiter=limiter
        )

    @property
    def contents(self) -> bytes:
        """Every stored byte (zeros where nothing was stored), for assertions."""
        return bytes(self._data)

    async def _store_piece(self, index: int, data: memoryview) -> None:
        start = index * self.info.piece_length
        self._data[start : start + len(data)] = data
        await trio.lowlevel.checkpoint()

    async def _load(self, index: int, begin: int, length: int) -> bytes:
        start = index * self.info.piece_length + begin
        await trio.lowlevel.checkpoint()
        return bytes(self._data[start : start + length])

    async def _sync(self, files: set[int]) -> None:
        await trio.lowlevel.checkpoint()

    async def _release(self) -> None:
        await trio.lowlevel.checkpoint()


if TYPE_CHECKING:
    from .base import Storage

    _conforms: type[Storage] = MemoryStorage  # mypy checks the protocol structurally
