"""Build small torrents (with BEP 47 pad files) and their data for storage tests."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from shoal.bencoding import Bencoded, encode
from shoal.metainfo import InfoDict, parse_info

BLOCK = 16 * 1024
PIECE = 32 * 1024  # the smallest piece length metainfo accepts is 16 KiB


@dataclass(frozen=True)
class Torrent:
    info: InfoDict
    data: bytes  # the whole torrent stream, pad bytes (zeros) included

    def piece(self, index: int) -> bytes:
        start = index * self.info.piece_length
        return self.data[start : start + self.info.piece_size(index)]

    def file_bytes(self, index: int) -> bytes:
        f = self.info.files[index]
        return self.data[f.offset : f.offset + f.length]


def make_torrent(
    sizes: list[int],
    *,
    pads: frozenset[int] | set[int] = frozenset(),
    piece_length: int = PIECE,
    seed: int = 0,
    name: str = "t",
) -> Torrent:
    """A multi-file torrent: file k has sizes[k] random bytes, or zeros if k in `pads`."""
    rng = random.Random(seed)
    files: list[Bencoded] = []
    chunks: list[bytes] = []
    for k, size in enumerate(sizes):
        entry: dict[bytes, Bencoded] = {b"length": size}
        if k in pads:
            entry[b"path"] = [b".pad", str(size).encode()]
            entry[b"attr"] = b"p"
            chunks.append(bytes(size))
        else:
            entry[b"path"] = [b"dir", f"f{k}.bin".encode()]
            chunks.append(rng.randbytes(size))
        files.append(entry)
    data = b"".join(chunks)
    hashes = b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )
    raw = encode(
        {b"name": name.encode(), b"piece length": piece_length, b"pieces": hashes, b"files": files}
    )
    return Torrent(parse_info(raw), data)


def blocks(t: Torrent, index: int, size: int = BLOCK) -> list[tuple[int, bytes]]:
    """(begin, data) blocks of piece `index`."""
    piece = t.piece(index)
    return [(b, piece[b : b + size]) for b in range(0, len(piece), size)]


def standard() -> Torrent:
    """Files straddling piece boundaries, a pad file, a zero-length file: ~5.6 pieces."""
    return make_torrent([40_000, 0, 25_000, 7_000, 60_000, 50_000], pads={3})
