"""The disk side of a `Torrent`'s data phase: storage, resume data, file selection.

The swarm decisions live in the pure `shoal.session.data.DataPlane`; this module holds
what needs Trio or the file system: opening the injected `Storage` (or the files under
``save_to`` with their resume data), the resume saver, and deleting the files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING, Final, Protocol, final

import trio

from .layout import file_pieces
from .storage.files import FileStorage
from .storage.resume import ResumeSaver, load_resume
from .swarm.priorities import file_piece_priorities

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from .config import ClientConfig
    from .metainfo import InfoDict
    from .storage.base import Storage, StorageFactory

__all__ = ["DataFiles", "DataHost"]

#: The picker's default level (libtorrent's scale: 0 = skip, 4 = normal, 7 = top).
_NORMAL_PRIORITY: Final = 4


class DataHost(Protocol):
    """What opening the data needs of its torrent (`shoal.torrent.Torrent` is one).

    A protocol rather than an import, so ``torrent.py`` -> ``_torrent_data.py`` is the
    only direction of the dependency.
    """

    @property
    def config(self) -> ClientConfig: ...
    @property
    def save_to(self) -> Path | None: ...
    @property
    def storage_factory(self) -> StorageFactory | None: ...


@final
class DataFiles:
    """A torrent's open storage, resume saver and file selection."""

    def __init__(
        self,
        host: DataHost,
        info: InfoDict,
        storage: Storage,
        saver: ResumeSaver | None,
        wanted: list[bool],
    ) -> None:
        self.host = host
        self.info = info
        self.storage = storage
        self.saver = saver
        self.selected_size = sum(f.length for i, f in enumerate(info.files) if wanted[i])
        #: Bytes of each piece that belong to selected, non-pad files: what "downloaded"
        #: counts, so it never exceeds `selected_size` (pad bytes are never data).
        self.piece_wanted_bytes = _wanted_bytes_per_piece(info, wanted)
        self.wanted = wanted
        self.priorities = bytearray(info.num_pieces)  # 0 = skip
        for i, want in enumerate(wanted):
            if want:
                for piece in file_pieces(info, i):
                    self.priorities[piece] = _NORMAL_PRIORITY

    def piece_priorities(self, levels: Sequence[int]) -> bytearray:
        """Piece priorities from per-file levels (1..7, libtorrent's scale); files left
        out of the selection (and pad files) stay at 0 whatever their level.

        Raises:
            ValueError: not one level per file, or a level outside 1..7.
        """
        if len(levels) != len(self.info.files) or any(not 1 <= p <= 7 for p in levels):
            raise ValueError(f"need {len(self.info.files)} file priorities in 1..7")
        files = [(f.offset, f.length) for f in self.info.files]
        chosen = [p if want else 0 for p, want in zip(levels, self.wanted, strict=True)]
        info = self.info
        return file_piece_priorities(info.piece_length, info.total_length, files, chosen)

    @classmethod
    async def open(
        cls,
        host: DataHost,
        info: InfoDict,
        select: Iterable[int] | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DataFiles:
        """Open the storage; `progress(checked, total)` follows a recheck of the files."""
        storage, saver = await _open_storage(host, info, progress)
        chosen = set(range(len(info.files)) if select is None else select)
        wanted = [i in chosen and not f.pad for i, f in enumerate(info.files)]
        return cls(host, info, storage, saver, wanted)

    async def run_saver(self) -> None:
        if self.saver is not None:
            await self.saver.run()

    async def save_resume(self) -> None:
        if self.saver is not None:
            await self.saver.save()

    def verified_bytes(self) -> int:
        """Verified bytes of selected files (pad files and unselected files excluded)."""
        wanted = self.piece_wanted_bytes
        return sum(wanted[i] for i in self.storage.verified())

    async def delete_files(self) -> None:
        await self.storage.close()
        root = self.host.save_to
        if self.host.storage_factory is not None or root is None:
            return  # not our files
        for f in self.info.files:
            path = os.path.join(root, *f.path)
            await trio.to_thread.run_sync(_remove, path)
        if self.info.multi_file:
            top = os.path.join(root, self.info.name)
            await trio.to_thread.run_sync(lambda: shutil.rmtree(top, ignore_errors=True))


async def _open_storage(
    host: DataHost, info: InfoDict, progress: Callable[[int, int], None] | None
) -> tuple[Storage, ResumeSaver | None]:
    """The injected storage (no resume data: it is the caller's), or files under
    ``save_to`` with their resume file."""
    if host.storage_factory is not None:
        return host.storage_factory(info), None
    assert host.save_to is not None
    root = host.save_to
    state_dir = host.config.state_dir
    resume_dir = state_dir / "resume" if state_dir is not None else None
    found = await load_resume(info, root, resume_dir, progress=progress)
    storage = FileStorage(info, root, have=found.have, durable=found.durable)
    saver = ResumeSaver(storage, root, resume_dir) if resume_dir is not None else None
    return storage, saver


def _wanted_bytes_per_piece(info: InfoDict, wanted: list[bool]) -> list[int]:
    out = [0] * info.num_pieces
    plen = info.piece_length
    for f, want in zip(info.files, wanted, strict=True):
        if not want or f.length == 0:
            continue
        start, end = f.offset, f.offset + f.length
        for piece in range(start // plen, (end - 1) // plen + 1):
            out[piece] += min(end, (piece + 1) * plen) - max(start, piece * plen)
    return out


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
