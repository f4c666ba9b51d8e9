"""Real-UDP DHT benchmark on 127.0.0.1: N shoal nodes, announce then get_peers.

    python tools/bench/dht_loopback.py --nodes 40 --lookups 20

Every node binds 127.0.0.1; nothing leaves the machine. Prints how many lookups found
the announced peer, the median time to the first peer, hops and queries per lookup.
"""

from __future__ import annotations

import argparse
import random
import statistics
from contextlib import AsyncExitStack

import trio

from shoal.dht_client import DHT, open_dht_node


async def run(nodes_wanted: int, lookups: int, seed: int) -> None:
    rng = random.Random(seed)
    async with AsyncExitStack() as stack:
        nodes: list[DHT] = []
        for i in range(nodes_wanted):
            bootstrap = [n.address for n in nodes[-3:]]
            node = open_dht_node(("127.0.0.1", 0), bootstrap=bootstrap, rng=random.Random(seed + i))
            nodes.append(await stack.enter_async_context(node))
        for node in nodes[1:]:
            await node.wait_bootstrapped()
        firsts: list[float] = []
        hops: list[int] = []
        queries: list[int] = []
        for k in range(lookups):
            info_hash = rng.getrandbits(160).to_bytes(20, "big")
            await rng.choice(nodes).announce(info_hash, 1000 + k)
            search = rng.choice(nodes).get_peers(info_hash)
            start = trio.current_time()
            first: float | None = None
            async for _ in search:
                first = first if first is not None else trio.current_time() - start
            if first is not None:
                firsts.append(first)
            if search.statistics is not None:
                hops.append(search.statistics.hops)
                queries.append(search.statistics.queries_sent)
    print(
        f"nodes={nodes_wanted} found={len(firsts)}/{lookups} "
        f"median_first_peer_ms={1000 * statistics.median(firsts or [0.0]):.1f} "
        f"median_hops={statistics.median(hops or [0])} "
        f"median_queries={statistics.median(queries or [0])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--lookups", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    trio.run(run, args.nodes, args.lookups, args.seed)


if __name__ == "__main__":
    main()
