"""Torrent-creation throughput: shoal vs raw hashlib.sha1 vs libtorrent, same data.

Usage: ``python tools/bench/create_bench.py [--size-mib 1024] [--random] [--repeat 2]``

Makes one file (sparse by default, or filled with pseudo-random bytes) in a temporary
directory, then times, with the same piece length:

* ``hashlib.sha1`` over an in-memory buffer, sliced into pieces (the ceiling);
* ``shoal.create.create_torrent`` on the file;
* libtorrent's ``create_torrent`` + ``set_piece_hashes`` (v1 only) on the file,

checks the two torrents have the same info-hash, and prints MB/s (10^6 bytes/s),
best of ``--repeat`` runs. The file is read from the page cache after the first run.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shoal.create import auto_piece_length, create_torrent
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from collections.abc import Callable

MIB = 1024 * 1024


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_sha1(size: int, piece_length: int) -> None:
    buf = memoryview(bytes(64 * MIB))
    done = 0
    while done < size:
        n = min(len(buf), size - done)
        for off in range(0, n, piece_length):
            hashlib.sha1(buf[off : min(off + piece_length, n)]).digest()
        done += n


def libtorrent_create(path: Path, piece_length: int) -> bytes:
    import libtorrent as lt  # optional: only this tool and the golden tests need it

    ct = lt.create_torrent(lt.list_files(str(path)), piece_length, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(path.parent))
    out: bytes = lt.bencode(ct.generate())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--random", action="store_true", help="write real bytes, not a sparse file")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    size = args.size_mib * MIB
    piece_length = auto_piece_length(size)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        path = Path(tmp) / "data.bin"
        with path.open("wb") as fh:
            if args.random:
                block = hashlib.shake_256(b"bench").digest(MIB)
                for _ in range(args.size_mib):
                    fh.write(block)
            else:
                fh.truncate(size)
        print(f"{args.size_mib} MiB {'random' if args.random else 'sparse'}, piece {piece_length}")
        results = {
            "hashlib.sha1 (in memory)": best_of(args.repeat, lambda: raw_sha1(size, piece_length))
        }
        ours: list[bytes] = []
        results["shoal create_torrent"] = best_of(
            args.repeat, lambda: ours.append(create_torrent(path, piece_length=piece_length))
        )
        theirs: list[bytes] = []
        try:
            results["libtorrent set_piece_hashes"] = best_of(
                args.repeat, lambda: theirs.append(libtorrent_create(path, piece_length))
            )
        except ImportError:
            print("libtorrent not installed; skipping it")
        for name, secs in results.items():
            print(f"{name:30s} {secs:7.3f} s  {size / secs / 1e6:8.1f} MB/s")
        if theirs:
            same = parse_metainfo(ours[0]).info_hash == parse_metainfo(theirs[0]).info_hash
            print(f"same info-hash as libtorrent: {same}")


if __name__ == "__main__":
    main()
