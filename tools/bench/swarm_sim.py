"""Wall time of a simulated swarm (`shoal.testing.swarmsim`): 1 seed + N leechers.

    python tools/bench/swarm_sim.py --size-mib 64 --leechers 8 --seed 1

Prints the virtual completion time, the wall time and each leecher's upload. Issue 9's
target: 64 MiB, 1 seed + 8 leechers, under 10 s of wall time.
"""

from __future__ import annotations

import argparse
import random
import time

from shoal.swarm.peer_pool import PeerSource
from shoal.testing.swarmsim import LinkConfig, SwarmSim, make_torrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--leechers", type=int, default=8)
    parser.add_argument("--piece-kib", type=int, default=256)
    parser.add_argument("--bandwidth-mb", type=float, default=100.0, help="uplink MB/s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = random.Random(args.seed).randbytes(args.size_mib * 1024 * 1024)
    meta = make_torrent(data, args.piece_kib * 1024)
    link = LinkConfig(latency=0.005, bandwidth=args.bandwidth_mb * 1e6)
    sim = SwarmSim(meta, seed=args.seed)
    origin = sim.add_node("seed", data=data, link=link)
    leechers = [sim.add_node(f"l{i}", link=link) for i in range(args.leechers)]
    nodes = [origin, *leechers]
    for node in nodes:
        node.engine.peers_found([n.addr for n in nodes if n is not node], PeerSource.DHT, 0.0)
        sim._after_input(node)
    start = time.perf_counter()
    end = sim.run_until_complete(leechers, limit=3600.0)
    wall = time.perf_counter() - start
    done = sum(1 for n in leechers if n.completed_at is not None)
    ok = all(n.storage is not None and bytes(n.storage.disk) == data for n in leechers)
    print(f"{args.size_mib} MiB, 1 seed + {args.leechers} leechers, seed {args.seed}")
    print(f"complete: {done}/{args.leechers}, identical bytes: {ok}")
    print(f"virtual time: {end:.2f} s   wall time: {wall:.2f} s")
    for n in leechers:
        print(f"  {n.name}: uploaded {n.engine.payload_totals()[1] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
