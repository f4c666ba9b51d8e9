"""Piece/offset/length → file extents: where a block of a piece lives on disk.

A torrent's data is all its files (BEP 47 pad files included) concatenated in info
dict order and cut into pieces of ``piece length`` bytes (BEP 3). A block inside a
piece may therefore span several files; `piece_extents` lists the pieces of files it
touches, in order. Lookup is a bisect over the files' start offsets, so the cost is
O(log files + extents) however many files a torrent has.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .metainfo import InfoDict

__all__ = ["Extent", "file_pieces", "piece_extents"]


@dataclass(frozen=True, slots=True)
class Extent:
    """`length` bytes of file `file_index`, starting at byte `file_offset` of that file."""

    file_index: int
    file_offset: int
    length: int


def piece_extents(info: InfoDict, index: int, begin: int, length: int) -> list[Extent]:
    """Map `length` bytes at `begin` within piece `index` onto file extents.

    Pad files are included (callers skip `info.files[e.file_index].pad`); zero-length
    files hold no bytes and never appear. A zero `length` gives an empty list.

    Raises:
        ValueError: the range is not inside the piece. Validate remote block requests
            before calling; this is a caller bug, not a protocol error.
    """
    if not 0 <= index < info.num_pieces:
        raise ValueError(f"piece {index} out of range (0..{info.num_pieces - 1})")
    if begin < 0 or length < 0 or begin + length > info.piece_size(index):
        raise ValueError(f"range {begin}+{length} outside piece {index}")
    pos = index * info.piece_length + begin
    end = pos + length
    files = info.files
    # bisect_right picks the last file starting at or before `pos`; zero-length files
    # sharing that offset come earlier, so the one found actually contains `pos`.
    i = bisect_right(info.file_offsets, pos) - 1
    out: list[Extent] = []
    while pos < end:
        f = files[i]
        stop = min(end, f.offset + f.length)
        if stop > pos:
            out.append(Extent(i, pos - f.offset, stop - pos))
            pos = stop
        i += 1
    return out


def file_pieces(info: InfoDict, file_index: int) -> range:
    """Indices of the pieces holding at least one byte of file `file_index`.

    Empty for a zero-length file. Used to turn a file selection (BEP 53 ``so=``) into
    pieces; the first and last piece may be shared with neighbouring files.

    Raises:
        IndexError: no such file.
    """
    f = info.files[file_index]
    if not f.length:
        return range(0)
    first = f.offset // info.piece_length
    last = (f.offset + f.length - 1) // info.piece_length
    return range(first, last + 1)
