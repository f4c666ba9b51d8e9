"""PeerConnection throughput: two engines back to back in memory, no sockets.

Usage: python tools/bench/peer_connection.py [--mib N] [--repeat R] [--read K]

The leecher keeps its adaptive pipeline full (`request_slots`), the seeder answers every
`BlockRequested` with `send_piece` from one shared buffer, and the seeder's output is
handed to the leecher in ``--read`` KiB chunks (like ``receive_some``). Both engines'
work is counted: requests, framing, decoding, events, pipeline and rate bookkeeping.
Prints best-of-R MB/s of block payload (10^6 bytes/s) by wall clock and by process CPU
time; on a shared machine the CPU figure is the comparable one.
"""

from __future__ import annotations

import argparse
import random
import time

from shoal.ids import InfoHash, PeerId
from shoal.peer import events as ev
from shoal.peer.connection import PeerConnection
from shoal.peer.messages import BLOCK_SIZE
from shoal.swarm import Bitfield

PIECE = 256 * 1024


def transfer(mib: int, read: int) -> tuple[float, float]:
    n = mib * 1024 * 1024 // PIECE
    ih = InfoHash(bytes(20))
    seed = PeerConnection(
        ih,
        PeerId(b"S" * 20),
        n,
        now=0.0,
        rng=random.Random(1),
        our_pieces=Bitfield.all(n),
        piece_length=PIECE,
        total_length=n * PIECE,
    )
    leech = PeerConnection(
        ih, PeerId(b"L" * 20), n, now=0.0, rng=random.Random(2), piece_length=PIECE
    )
    block = bytes(BLOCK_SIZE)
    todo = [(i, b, BLOCK_SIZE) for i in range(n) for b in range(0, PIECE, BLOCK_SIZE)][::-1]
    total = len(todo)
    received = 0
    now = 0.0
    c0, t0 = time.process_time(), time.perf_counter()
    leech.receive_data(b"".join(seed.data_to_send()), now)
    seed.receive_data(b"".join(leech.data_to_send()), now)
    leech.receive_data(b"".join(seed.data_to_send()), now)
    seed.set_choking(False)
    while received < total:
        now += 0.001  # 1 ms per round: what the rate estimator sees
        stream = b"".join(seed.data_to_send())
        for i in range(0, len(stream), read):
            leech.receive_data(stream[i : i + read], now)
        for e in iter(leech.next_event, None):
            if isinstance(e, ev.BlockReceived):
                received += 1
        for _ in range(leech.request_slots(now)):
            if todo:
                leech.request(*todo.pop(), now)
        seed.receive_data(b"".join(leech.data_to_send()), now)
        for e in iter(seed.next_event, None):
            if isinstance(e, ev.BlockRequested):
                seed.send_piece(e.index, e.begin, block)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--read", type=int, default=64, help="KiB per receive_data call")
    args = parser.parse_args()
    runs = [transfer(args.mib, args.read * 1024) for _ in range(args.repeat)]
    mb = args.mib * 1024 * 1024 / 1e6
    wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    print(
        f"{args.mib} MiB in 16 KiB blocks, {args.read} KiB reads: "
        f"{mb / wall:.0f} MB/s wall, {mb / cpu:.0f} MB/s CPU (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
