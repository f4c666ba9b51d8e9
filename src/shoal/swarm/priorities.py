"""Piece priorities: libtorrent's 0..7 scale, and file selection mapped onto pieces.

A piece belongs to every file it overlaps, so when files with different priorities
share a piece (small files, or the edges of big ones) the piece takes the *highest*
of them: skipping a file must never stop a selected neighbour from completing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DEFAULT_PRIORITY", "MAX_PRIORITY", "file_piece_priorities"]

#: Piece priority levels follow libtorrent's 0..7: 0 = do not download, 4 = default.
DEFAULT_PRIORITY: Final = 4
MAX_PRIORITY: Final = 7


def file_piece_priorities(
    piece_length: int,
    total_length: int,
    files: Sequence[tuple[int, int]],
    priorities: Sequence[int],
) -> bytearray:
    """Piece priorities from file priorities (file selection).

    Args:
        files: ``(offset, length)`` of each file in the concatenated torrent data.
        priorities: one per file, 0..7 (0 = skip; give pad files 0).

    Returns:
        One priority per piece: the highest priority of any file overlapping it, so a
        piece shared by a skipped and a selected file is still downloaded.
    """
    if piece_length <= 0 or total_length < 0:
        raise ValueError(f"bad geometry: piece length {piece_length}, total {total_length}")
    if len(files) != len(priorities):
        raise ValueError("one priority per file")
    num_pieces = -(-total_length // piece_length)
    out = bytearray(num_pieces)
    for (offset, length), prio in zip(files, priorities, strict=True):
        if not 0 <= prio <= MAX_PRIORITY:
            raise ValueError(f"priority {prio} outside 0..{MAX_PRIORITY}")
        if length <= 0 or prio == 0:
            continue
        if offset < 0 or offset + length > total_length:
            raise ValueError(f"file at {offset}+{length} outside {total_length} bytes")
        for i in range(offset // piece_length, (offset + length - 1) // piece_length + 1):
            out[i] = max(out[i], prio)
    return out
