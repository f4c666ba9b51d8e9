"""CPU per 16 KiB block on the pure side of the download path: peer engine and picker.

Usage: python tools/bench/block_path.py [--mib N] [--read-kib K] [--repeat R]

Two in-process measurements, best of R, in µs of process CPU per block:

* **engine**: a leecher `PeerConnection` is fed a seeder's replies in reads of K KiB
  (default 64, what a loopback ``receive_some`` usually returns) and driven as the
  torrent layer drives it: every event taken with `next_event`, and after each one
  ``request_slots`` + ``request`` for the free slots (blocks numbered in order; no
  picker). Covers frame decoding, block bookkeeping, events, request encoding.
* **picker**: `Picker` over a 1 GiB torrent of 1 MiB pieces and one seed: pick 16,
  receive each, verify each completed piece.

Compare commits by running it with ``PYTHONPATH=<other checkout>/src``. Results are
in tools/bench/README.md ("The data path").
"""

from __future__ import annotations

import argparse
import random
import time

from shoal.ids import InfoHash, PeerId
from shoal.peer import events as ev
from shoal.peer.connection import ConnectionConfig, PeerConnection
from shoal.swarm.bitfield import Bitfield
from shoal.swarm.picker import Picker

BLOCK = 16 * 1024
PIECE = 1024 * 1024
INFO_HASH = InfoHash(bytes(20))


def _engine(mib: int, read: int) -> float:
    n_pieces = max(mib, 1)
    cfg = ConnectionConfig(request_timeout=1e9, snub_timeout=1e9, idle_timeout=1e9)
    geometry = {"piece_length": PIECE, "total_length": n_pieces * PIECE}
    rng = random.Random(1)
    seed = PeerConnection(
        INFO_HASH, PeerId(b"S" * 20), n_pieces, now=0.0, rng=rng, config=cfg,
        our_pieces=Bitfield.all(n_pieces), **geometry,
    )  # fmt: skip
    leech = PeerConnection(INFO_HASH, PeerId(b"L" * 20), n_pieces, now=0.0, rng=rng, config=cfg,
                           **geometry)  # fmt: skip
    leech.receive_data(b"".join(seed.data_to_send()), 0.0)
    seed.receive_data(b"".join(leech.data_to_send()), 0.0)
    seed.set_choking(False)
    leech.set_interested(True)
    leech.receive_data(b"".join(seed.data_to_send()), 0.0)
    seed.receive_data(b"".join(leech.data_to_send()), 0.0)
    while seed.next_event() is not None:
        pass
    total = n_pieces * PIECE // BLOCK
    payload = bytes(BLOCK)
    state = {"next": 0, "now": 0.0}

    def refill() -> None:
        now, nxt = state["now"], int(state["next"])
        for _ in range(min(leech.request_slots(now), total - nxt)):
            leech.request(nxt * BLOCK // PIECE, nxt * BLOCK % PIECE, BLOCK, now)
            nxt += 1
        state["next"] = nxt

    refill()
    got = 0
    cpu = 0.0
    while got < total:
        for buf in leech.data_to_send():
            seed.receive_data(buf, state["now"])
        # Seeder side (not timed): answer what the leecher asked for.
        while (e := seed.next_event()) is not None:
            if isinstance(e, ev.BlockRequested):
                seed.send_piece(e.index, e.begin, payload)
        wire = b"".join(seed.data_to_send())
        t0 = time.process_time()
        for i in range(0, len(wire), read):
            state["now"] += 0.0001
            leech.receive_data(wire[i : i + read], state["now"])
            while (event := leech.next_event()) is not None:
                if isinstance(event, ev.BlockReceived):
                    got += 1
                refill()
        cpu += time.process_time() - t0
    return cpu / total * 1e6


def _picker(mib: int) -> float:
    n = max(mib, 16)
    p: Picker[str] = Picker(n, PIECE, n * PIECE, random.Random(1))
    p.peer_have_all("s")
    t0 = time.process_time()
    count = 0
    while got := p.pick_blocks("s", 16):
        for b in got:
            p.block_received("s", b)
            count += 1
            if p.piece_complete(b.index):
                p.piece_verified(b.index)
    return (time.process_time() - t0) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--read-kib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    eng = min(_engine(args.mib, args.read_kib * 1024) for _ in range(args.repeat))
    pick = min(_picker(args.mib * 4) for _ in range(args.repeat))
    print(f"engine: {eng:6.2f} us/block  ({args.read_kib} KiB reads)")
    print(f"picker: {pick:6.2f} us/block  (pick 16, receive, verify)")


if __name__ == "__main__":
    main()
