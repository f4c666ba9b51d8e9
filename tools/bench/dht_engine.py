"""DHT serving cost of the sans-IO engine alone: CPU time per answered query, no sockets.

    python tools/bench/dht_engine.py                         # 20,000 public sources
    python tools/bench/dht_engine.py --sources 4096 --local  # 127.x sources (BEP 42 exempt)

One `DHTNode` answers pre-built ``get_peers`` (2/3) and ``find_node`` (1/3) datagrams
sent round-robin from ``--sources`` addresses, in virtual time paced so that every source
stays under the node's per-IP rate limit. Each answer is drained (``datagrams_to_send``,
``next_event``) as the Trio driver would. Reported: microseconds of ``process_time`` per
query, best of ``--repeat`` runs on a fresh node, so the number is what one dedicated core
would do even on a loaded machine (wall time is not used).

Many distinct sources matter: on the real DHT most requesters are new to a node, so the
per-address caches miss; ``--sources 20000`` shows that cost, a few thousand hide it.
"""

from __future__ import annotations

import argparse
import random
import time

from shoal.dht.krpc import FindNodeQuery, GetPeersQuery, encode_message
from shoal.dht.node import DHTNode

Datagram = tuple[bytes, tuple[str, int]]


def build(sources: int, local: bool, queries: int, seed: int) -> list[Datagram]:
    rng = random.Random(seed)

    def ip(i: int) -> str:
        if local:
            return f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{(i & 255) or 1}"
        octets = (
            rng.randrange(1, 224),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(1, 255),
        )
        return ".".join(map(str, octets))

    addrs = [(ip(i), 6881) for i in range(sources)]
    ids = [rng.randbytes(20) for _ in range(sources)]
    out = []
    for j in range(queries):
        s = j % sources
        t = b"q%d" % j
        query = (
            FindNodeQuery(t, ids[s], rng.randbytes(20))
            if j % 3 == 0
            else GetPeersQuery(t, ids[s], rng.randbytes(20))
        )
        out.append((encode_message(query), addrs[s]))
    return out


def run(datagrams: list[Datagram], sources: int) -> float:
    node = DHTNode(bytes(20), random.Random(1), 0.0)
    now, step = 0.0, 1.0 / (8 * sources)  # each source at 8 queries/s, under the 10/s limit
    started = time.process_time()
    for data, addr in datagrams:
        now += step
        node.receive_datagram(data, addr, now)
        node.datagrams_to_send()
        while node.next_event() is not None:
            pass
    return (time.process_time() - started) / len(datagrams) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=20_000)
    parser.add_argument("--local", action="store_true", help="127.x sources (BEP 42 exempt)")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    datagrams = build(args.sources, args.local, args.queries, args.seed)
    best = min(run(datagrams, args.sources) for _ in range(args.repeat))
    kind = "127.x" if args.local else "public"
    print(f"{args.sources} {kind} sources: {best:.1f} us/query, {1e6 / best:,.0f} queries/CPU-s")


if __name__ == "__main__":
    main()
