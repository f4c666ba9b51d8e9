"""DHT serving cost of the sans-IO engine alone: CPU time per answered query, no sockets.

    python tools/bench/dht_engine.py                         # 20,000 public sources
    python tools/bench/dht_engine.py --sources 4096 --local  # 127.x sources (BEP 42 exempt)
    python tools/bench/dht_engine.py --kind put_mutable      # one query type (see --help)

One `DHTNode` answers pre-built ``get_peers`` (2/3) and ``find_node`` (1/3) datagrams
sent round-robin from ``--sources`` addresses, in virtual time paced so that every source
stays under the node's per-IP rate limit. Each answer is drained (``datagrams_to_send``,
``next_event``) as the Trio driver would. Reported: microseconds of ``process_time`` per
query, best of ``--repeat`` runs on a fresh node, so the number is what one dedicated core
would do even on a loaded machine (wall time is not used).

``--kind`` measures one query type instead of the BEP 5 mix: ``get_peers``,
``find_node``, ``scrape`` (get_peers with ``scrape=1``), ``get`` (BEP 44, a stored item),
``put_immutable``, ``put_mutable`` (an ed25519 verification each) or ``sample``
(BEP 51). The node's stores are filled first (100 swarms of 50 peers, 100 items), and
puts carry valid tokens (drawn from a twin node with the same seed).

Many distinct sources matter: on the real DHT most requesters are new to a node, so the
per-address caches miss; ``--sources 20000`` shows that cost, a few thousand hide it.
"""

from __future__ import annotations

import argparse
import random
import time

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.krpc import (
    FindNodeQuery,
    GetPeersQuery,
    GetQuery,
    PutQuery,
    Query,
    SampleInfohashesQuery,
    encode_message,
)
from shoal.dht.node import DHTNode

KINDS = ("mix", "get_peers", "find_node", "scrape", "get", "put_immutable", "put_mutable", "sample")
SWARMS = [bytes([i]) * 20 for i in range(100)]
ITEMS = [bep44.make_mutable(bytes(32), encode(b"v" * i), i) for i in range(100)]

Datagram = tuple[bytes, tuple[str, int]]


def fresh_node() -> DHTNode:
    """The node under test; every run (and the token twin) builds the same one."""
    node = DHTNode(bytes(20), random.Random(1), 0.0)
    for i, swarm in enumerate(SWARMS):
        for p in range(50):
            node.peer_store.add(swarm, (f"10.{i}.0.{p}", 6881), 0.0, seed=p < 10)
    for item in ITEMS:
        node.server.items.put(item, 0.0)
    return node


def _query(
    kind: str, j: int, t: bytes, node_id: bytes, ip: str, rng: random.Random, twin: DHTNode
) -> Query:
    if kind == "mix":
        kind = "find_node" if j % 3 == 0 else "get_peers"
    if kind == "find_node":
        return FindNodeQuery(t, node_id, rng.randbytes(20))
    if kind in ("get_peers", "scrape"):
        return GetPeersQuery(t, node_id, rng.choice(SWARMS), scrape=kind == "scrape")
    if kind == "get":
        return GetQuery(t, node_id, rng.choice(ITEMS).target)
    if kind == "sample":
        return SampleInfohashesQuery(t, node_id, rng.randbytes(20))
    item = rng.choice(ITEMS) if kind == "put_mutable" else bep44.Item(encode(rng.randbytes(40)))
    token = twin.tokens.issue(ip, item.target, 0.0)
    return PutQuery(t, node_id, token, item.value, item.key, item.salt, item.seq, item.sig)


def build(sources: int, local: bool, queries: int, seed: int, kind: str = "mix") -> list[Datagram]:
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
    twin = fresh_node()
    out = []
    for j in range(queries):
        s = j % sources
        query = _query(kind, j, b"q%d" % j, ids[s], addrs[s][0], rng, twin)
        out.append((encode_message(query), addrs[s]))
    return out


def run(datagrams: list[Datagram], sources: int) -> float:
    node = fresh_node()
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
    parser.add_argument("--kind", choices=KINDS, default="mix", help="query type (default: mix)")
    args = parser.parse_args()
    datagrams = build(args.sources, args.local, args.queries, args.seed, args.kind)
    best = min(run(datagrams, args.sources) for _ in range(args.repeat))
    where = "127.x" if args.local else "public"
    print(
        f"{args.kind}: {args.sources} {where} sources: {best:.1f} us/query, "
        f"{1e6 / best:,.0f} queries/CPU-s"
    )


if __name__ == "__main__":
    main()
