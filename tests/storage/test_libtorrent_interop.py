"""Our files and libtorrent's agree: pad-file layout, recheck verdicts, data we write.

libtorrent 2.x makes hybrid v1+v2 torrents with BEP 47 pad files by default, so these
torrents exercise exactly the layout rules `FileStorage`/`check_existing` implement.
The libtorrent session listens on 127.0.0.1 only, with DHT, LSD, UPnP and NAT-PMP off.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import pytest

from shoal.metainfo import Metainfo, parse_metainfo
from shoal.storage import FileStorage, check_existing
from tests.lt_helpers import lt_checked_pieces

if TYPE_CHECKING:
    from pathlib import Path

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("libtorrent is not installed", allow_module_level=True)

pytestmark = pytest.mark.integration

KIB = 1024
LAYOUT = {"a.bin": 50_000, "empty": 0, "sub/b.bin": 70_001, "sub/c.bin": 16 * KIB, "z": 5}


def make_tree(root: Path) -> None:
    for rel, size in LAYOUT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.shake_256(rel.encode()).digest(size))


def lt_hybrid_torrent(tree: Path) -> bytes:
    files = lt.list_files(str(tree))
    ct = lt.create_torrent(files, 32 * KIB)  # default flags: hybrid v1+v2, pad files
    lt.set_piece_hashes(ct, str(tree.parent))
    out: bytes = lt.bencode(ct.generate())
    return out


def lt_have(torrent: bytes, save_path: Path) -> set[int]:
    """Pieces a loopback-only libtorrent session finds valid under `save_path`."""
    return {i for i, ok in enumerate(lt_checked_pieces(lt, torrent, save_path)) if ok}


@pytest.fixture
def hybrid(tmp_path: Path) -> tuple[Metainfo, bytes, Path]:
    tree = tmp_path / "src" / "tree"
    make_tree(tree)
    torrent = lt_hybrid_torrent(tree)
    meta = parse_metainfo(torrent)
    assert any(f.pad for f in meta.info.files), "expected libtorrent to insert pad files"
    return meta, torrent, tree.parent


async def test_check_existing_agrees_with_libtorrent(hybrid: tuple[Metainfo, bytes, Path]) -> None:
    meta, torrent, save_path = hybrid
    info = meta.info
    assert (await check_existing(info, save_path)).has_all()
    target = save_path / "tree" / "sub" / "b.bin"
    data = bytearray(target.read_bytes())
    data[30_000] ^= 0xFF
    target.write_bytes(data)
    ours = set(await check_existing(info, save_path))
    assert len(ours) == info.num_pieces - 1
    assert ours == lt_have(torrent, save_path)


async def test_libtorrent_accepts_what_file_storage_writes(
    hybrid: tuple[Metainfo, bytes, Path], tmp_path: Path
) -> None:
    meta, torrent, src = hybrid
    info = meta.info
    # The torrent stream: real files' bytes, zeros for pad files.
    stream = b"".join(
        bytes(f.length) if f.pad else src.joinpath(*f.path).read_bytes() for f in info.files
    )
    dest = tmp_path / "dest"
    s = FileStorage(info, dest)
    for i in reversed(range(info.num_pieces)):
        start = i * info.piece_length
        piece = stream[start : start + info.piece_size(i)]
        for b in range(0, len(piece), 16 * KIB):
            await s.write_block(i, b, piece[b : b + 16 * KIB])
        assert await s.verify_piece(i)
    await s.flush()
    await s.close()
    assert lt_have(torrent, dest) == set(range(info.num_pieces))
    for f in info.files:
        assert dest.joinpath(*f.path).exists() == (not f.pad)
