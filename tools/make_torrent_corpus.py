"""Regenerate tests/corpus/torrents/*.torrent with libtorrent from deterministic data.

Run from the repo root: ``python tools/make_torrent_corpus.py``. The data is derived
from a fixed seed, so only ``creation date`` changes between runs; the info-hashes
pinned in tests/test_golden_libtorrent.py stay valid.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import libtorrent as lt

OUT = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "torrents"
KIB = 1024


def blob(label: str, size: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def build(
    base: Path,
    rel: str,
    piece_size: int,
    flags: int,
    *,
    comment: str | None = None,
    private: bool = False,
    node: tuple[str, int] | None = None,
) -> bytes:
    files = sorted(
        lt.list_files(str(base / rel)), key=lambda e: [c.encode() for c in e.filename.split("/")]
    )
    ct = lt.create_torrent(files, piece_size, flags=flags)
    lt.set_piece_hashes(ct, str(base))
    if comment is not None:
        ct.set_comment(comment)
    if private:
        ct.set_priv(True)
    if node is not None:
        ct.add_node(*node)
    ct.set_creator("libtorrent 2.1.1 (shoal corpus)")
    out: bytes = lt.bencode(ct.generate())
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "single.bin").write_bytes(blob("single", 100_000))
        tree = base / "Multi Folder"
        (tree / "sub dir").mkdir(parents=True)
        (tree / "a.txt").write_bytes(blob("a", 1_000))
        (tree / "empty").write_bytes(b"")
        (tree / "sub dir" / "b.bin").write_bytes(blob("b", 40_000))
        (tree / "sub dir" / "ü.dat").write_bytes(blob("u", 17_000))
        v1 = lt.create_torrent.v1_only
        torrents = {
            "single_v1.torrent": build(base, "single.bin", 16 * KIB, v1, comment="single v1"),
            "multi_v1_private.torrent": build(
                base, "Multi Folder", 32 * KIB, v1, private=True, node=("127.0.0.1", 6881)
            ),
            "hybrid_pads.torrent": build(base, "Multi Folder", 16 * KIB, 0),
            "v2_only.torrent": build(base, "Multi Folder", 16 * KIB, lt.create_torrent.v2_only),
        }
    for name, data in torrents.items():
        (OUT / name).write_bytes(data)
        print(name, len(data), lt.torrent_info(data).info_hashes().v1)


if __name__ == "__main__":
    main()
