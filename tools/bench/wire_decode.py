"""Peer-wire decode throughput: a stream of 16 KiB `Piece` messages through `FrameDecoder`.

Usage: python tools/bench/wire_decode.py [--mib N] [--repeat R]

Three feeds of the same stream, because the decoder's cost depends on how frames line
up with reads: 64 KiB reads (typical ``receive_some`` size, most frames inside one
chunk: zero-copy), 16397-byte reads offset by 7 bytes (every frame straddles two
chunks: one copy each) and 1400-byte reads (MTU-sized segments: many chunks per frame).
Prints best-of-R MB/s (10^6 bytes of wire data per second) by wall clock and by process
CPU time; on a shared, loaded machine the CPU-time figure is the comparable one.
"""

from __future__ import annotations

import argparse
import time

from shoal.peer.frames import FrameDecoder
from shoal.peer.messages import BLOCK_SIZE, Piece, encode_message


def make_stream(mib: int) -> tuple[bytes, int]:
    block = bytes(range(256)) * (BLOCK_SIZE // 256)
    count = mib * 1024 * 1024 // BLOCK_SIZE
    frames = [encode_message(Piece(i // 16, (i % 16) * BLOCK_SIZE, block)) for i in range(count)]
    return b"".join(frames), count


def chunks(stream: bytes, size: int, first: int) -> list[bytes]:
    out = [stream[:first]] if first else []
    out.extend(stream[i : i + size] for i in range(first, len(stream), size))
    return out


def decode_all(parts: list[bytes], expected: int) -> tuple[float, float]:
    dec = FrameDecoder()
    got = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for part in parts:
        dec.receive_data(part)
        for msg in dec:
            got += len(msg.block) if isinstance(msg, Piece) else 0
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if got != expected * BLOCK_SIZE:
        raise SystemExit(f"decoded {got} block bytes, expected {expected * BLOCK_SIZE}")
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64, help="block data per run (MiB)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    stream, count = make_stream(args.mib)
    feeds = {
        "64 KiB reads": chunks(stream, 65536, 0),
        "straddling 16397 B reads": chunks(stream, BLOCK_SIZE + 13, 7),
        "1400 B reads": chunks(stream, 1400, 0),
    }
    print(f"{count} piece messages, {len(stream) / 1e6:.1f} MB of wire data")
    for name, parts in feeds.items():
        runs = [decode_all(parts, count) for _ in range(args.repeat)]
        wall = min(r[0] for r in runs)
        cpu = min(r[1] for r in runs)
        mb = len(stream) / 1e6
        print(f"{name:>26}: {mb / wall:6.0f} MB/s wall, {mb / cpu:6.0f} MB/s CPU")


if __name__ == "__main__":
    main()
