"""`Picker` cost at scale: µs per `pick_blocks` call with 10^5 pieces and 50 peers.

Usage: python tools/bench/picker.py [--pieces N] [--peers N] [--seeds N] [--calls N]

Builds a swarm of `--peers` peers (`--seeds` of them seeds, the rest holding a random
half of the pieces), then times, best of 3:

* ``peer_bitfield`` for a half-full bitfield and ``peer_has`` per ``have``;
* ``pick_blocks(peer, 16)`` in steady state: each call's blocks are received (or the
  piece verified once complete), so partial pieces exist as in a real download;
* the same for a peer holding only 1% of the pieces (the rarest-bucket scan is longer);
* ``pick_blocks`` in sequential mode.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import TYPE_CHECKING

from shoal.swarm.bitfield import Bitfield
from shoal.swarm.picker import Picker

if TYPE_CHECKING:
    from collections.abc import Callable

PIECE = 256 * 1024  # 16 blocks per piece


def swarm(args: argparse.Namespace, sequential: bool = False) -> tuple[Picker[int], list[int]]:
    rng = random.Random(1)
    n = args.pieces
    p: Picker[int] = Picker(n, PIECE, n * PIECE, random.Random(2), sequential=sequential)
    for peer in range(args.peers):
        if peer < args.seeds:
            p.peer_have_all(peer)
        else:
            p.peer_bitfield(peer, Bitfield.from_indices(n, rng.sample(range(n), n // 2)))
    return p, list(range(args.peers))


def drive(p: Picker[int], peers: list[int], calls: int, count: int) -> float:
    """Seconds per pick_blocks call, with every block delivered between calls."""
    spent = 0.0
    for k in range(calls):
        peer = peers[k % len(peers)]
        t0 = time.perf_counter()
        blocks = p.pick_blocks(peer, count)
        spent += time.perf_counter() - t0
        for b in blocks:
            p.block_received(peer, b)
            if p.piece_complete(b.index):
                p.piece_verified(b.index)
    return spent / calls


def best(fn: Callable[[], float], repeat: int = 3) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pieces", type=int, default=100_000)
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=2_000)
    args = ap.parse_args()
    n = args.pieces
    rng = random.Random(3)

    t0 = time.perf_counter()
    p, peers = swarm(args)
    print(f"build: {args.peers} peers, {n} pieces: {time.perf_counter() - t0:.3f} s")

    half = Bitfield.from_indices(n, rng.sample(range(n), n // 2))

    def bitfield() -> float:
        t = time.perf_counter()
        p.peer_bitfield("x", half)  # type: ignore[arg-type]
        took = time.perf_counter() - t
        p.peer_left("x")  # type: ignore[arg-type]
        return took

    print(f"peer_bitfield (half full): {best(bitfield) * 1e3:.2f} ms")

    haves = [rng.randrange(n) for _ in range(5_000)]

    def have() -> float:
        p.peer_have_none("h")  # type: ignore[arg-type]
        t = time.perf_counter()
        for i in haves:
            p.peer_has("h", i)  # type: ignore[arg-type]
        took = (time.perf_counter() - t) / len(haves)
        p.peer_left("h")  # type: ignore[arg-type]
        return took

    print(f"peer_has: {best(have) * 1e6:.2f} µs")

    for count in (16, 1):
        per = best(lambda count=count: drive(p, peers, args.calls, count))  # type: ignore[misc]
        print(f"pick_blocks(peer, {count}) steady state: {per * 1e6:.1f} µs/call")

    sparse = 10_000
    p.peer_bitfield(sparse, Bitfield.from_indices(n, rng.sample(range(n), n // 100)))
    per = best(lambda: drive(p, [sparse], args.calls // 4, 16))
    print(f"pick_blocks(peer with 1% of pieces, 16): {per * 1e6:.1f} µs/call")

    ps, peers = swarm(args, sequential=True)
    per = best(lambda: drive(ps, peers, args.calls, 16))
    print(f"pick_blocks(peer, 16) sequential: {per * 1e6:.1f} µs/call")


if __name__ == "__main__":
    main()
