"""Time `shoal.bencoding.decode`/`encode` against bencodepy on a KRPC query and a ~1 MB .torrent.

Usage: python tools/bench_bencode.py [--repeat N]

Prints the best-of-N per-call CPU time (``time.process_time``) for each input: on a shared
machine wall-clock timings swing by 2x with other people's load; CPU time plus best-of-N
gives numbers that repeat to within a few percent.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import time
import timeit
from typing import TYPE_CHECKING

import bencodepy

from shoal import bencoding

if TYPE_CHECKING:
    from collections.abc import Callable


def krpc_query() -> bytes:
    # BEP 5 find_node query shape with real 20-byte ids: ~100 bytes, the DHT hot path.
    nid = hashlib.sha1(b"node").digest()
    target = hashlib.sha1(b"target").digest()
    return bencoding.encode(
        {b"t": b"aa", b"y": b"q", b"q": b"find_node", b"a": {b"id": nid, b"target": target}}
    )


def krpc_response() -> bytes:
    # get_peers response with 8 compact nodes and 8 values: the other common hot-path shape.
    nid = hashlib.sha1(b"node").digest()
    nodes = b"".join(hashlib.sha1(bytes([i])).digest() + bytes(6) for i in range(8))
    values: list[bencoding.Bencoded] = [bytes([127, 0, 0, i, 0x1A, 0xE1]) for i in range(8)]
    msg: bencoding.Bencoded = {
        b"t": b"aa",
        b"y": b"r",
        b"r": {b"id": nid, b"token": b"aoeusnth", b"nodes": nodes, b"values": values},
    }
    return bencoding.encode(msg)


def big_torrent(target: int = 1 << 20) -> bytes:
    # Multi-file torrent: ~4000 file entries (the structural cost) plus piece hashes
    # filling the rest up to ~1 MB (one big string, cheap for any decoder).
    files: list[bencoding.Bencoded] = [
        {b"length": 1000 + i, b"path": [b"dir%d" % (i % 37), b"file-%06d.bin" % i]}
        for i in range(4000)
    ]
    info: dict[bytes, bencoding.Bencoded] = {
        b"files": files,
        b"name": b"big",
        b"piece length": 262144,
        b"pieces": b"",
    }
    used = len(bencoding.encode(info))
    info[b"pieces"] = bytes(20 * ((target - used - 64) // 20))
    return bencoding.encode({b"announce": b"http://127.0.0.1/a", b"info": info})


def best(fn: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(fn, timer=time.process_time)
    number = 1
    while timer.timeit(number=number) < 0.05:
        number *= 2
    return min(timer.repeat(number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name, data in [
        ("krpc query", krpc_query()),
        ("krpc response", krpc_response()),
        ("1 MB torrent", big_torrent()),
    ]:
        value = bencoding.decode(data)
        assert bencodepy.decode(data) == value
        fns: list[tuple[str, Callable[[], object]]] = [
            ("decode shoal", functools.partial(bencoding.decode, data)),
            ("decode bencodepy", functools.partial(bencodepy.decode, data)),
            ("encode shoal", functools.partial(bencoding.encode, value)),
            ("encode bencodepy", functools.partial(bencodepy.encode, value)),
        ]
        rows = [(label, best(fn, args.repeat)) for label, fn in fns]
        print(f"{name} ({len(data)} bytes)")
        for label, t in rows:
            print(f"  {label:18} {t * 1e6:12.2f} µs")


if __name__ == "__main__":
    main()
