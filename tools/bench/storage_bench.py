"""Storage throughput: receive blocks → verify → write, then fsync, then a full recheck.

Usage: ``python tools/bench/storage_bench.py [--size-mib 256] [--piece-kib 256]
[--files 4] [--in-flight 8] [--dir /tmp]``

Builds a torrent of ``--files`` equal files of pseudo-random bytes (in memory), then
in a temporary directory:

* *download*: ``--in-flight`` tasks each feed whole pieces as 16 KiB blocks into
  `FileStorage.write_block` and call `verify_piece` (SHA-1 on a thread, then
  ``pwrite`` to the files) — the path every downloaded byte takes;
* *flush*: `FileStorage.flush` (fsync of every file);
* *recheck*: `check_existing` over everything (page cache warm);
* *sha1*: plain ``hashlib.sha1`` over the same bytes in one thread (the ceiling).

Prints MB/s (10^6 bytes/s) by wall time and by process CPU time (all threads, user +
system) for each phase; on a shared machine the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time

import trio

from shoal.bencoding import encode
from shoal.metainfo import InfoDict, parse_info
from shoal.storage import FileStorage, WriteResult, check_existing

MIB = 1024 * 1024
BLOCK = 16 * 1024


def make_data(size: int) -> bytes:
    seed = hashlib.shake_256(b"storage-bench").digest(MIB)
    # Vary each MiB so that no two pieces are equal.
    return b"".join(i.to_bytes(8, "big") + seed[8:] for i in range(size // MIB))


def make_info(data: bytes, piece_length: int, files: int) -> InfoDict:
    each = len(data) // files
    hashes = b"".join(
        hashlib.sha1(data[i : i + piece_length]).digest() for i in range(0, len(data), piece_length)
    )
    entries = [{b"length": each, b"path": [f"part{k}.bin".encode()]} for k in range(files)]
    return parse_info(
        encode(
            {b"name": b"bench", b"piece length": piece_length, b"pieces": hashes, b"files": entries}
        )
    )


class Timer:
    def __init__(self, name: str, nbytes: int) -> None:
        self.name, self.nbytes = name, nbytes

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        mbs, cpu_mbs = self.nbytes / wall / 1e6, self.nbytes / max(cpu, 1e-9) / 1e6
        print(f"{self.name:9} {wall:7.3f} s {mbs:8.1f} MB/s   cpu {cpu:6.3f} s {cpu_mbs:8.1f} MB/s")


async def download(storage: FileStorage, data: bytes, in_flight: int) -> None:
    info = storage.info
    view = memoryview(data)
    next_piece = 0

    async def worker() -> None:
        nonlocal next_piece
        while next_piece < info.num_pieces:
            i, next_piece = next_piece, next_piece + 1
            start = i * info.piece_length
            size = info.piece_size(i)
            for b in range(0, size, BLOCK):
                res = await storage.write_block(
                    i, b, view[start + b : start + min(b + BLOCK, size)]
                )
                assert res is not WriteResult.NO_ROOM
            assert await storage.verify_piece(i)

    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(worker)


async def run(args: argparse.Namespace) -> None:
    size = args.size_mib * MIB
    data = make_data(size)
    info = make_info(data, args.piece_kib * 1024, args.files)
    print(
        f"{args.size_mib} MiB, {info.num_pieces} pieces of {args.piece_kib} KiB, "
        f"{args.files} files, {args.in_flight} pieces in flight"
    )
    with Timer("sha1", size):
        for i in range(0, size, info.piece_length):
            hashlib.sha1(data[i : i + info.piece_length]).digest()
    with tempfile.TemporaryDirectory(prefix="shoal-storage-bench-", dir=args.dir) as tmp:
        storage = FileStorage(info, tmp)
        with Timer("download", size):
            await download(storage, data, args.in_flight)
        with Timer("flush", size):
            await storage.flush()
        await storage.close()
        with Timer("recheck", size):
            have = await check_existing(info, tmp)
        assert have.has_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--dir", default=None, help="where to put the temporary download")
    trio.run(run, ap.parse_args())


if __name__ == "__main__":
    main()
