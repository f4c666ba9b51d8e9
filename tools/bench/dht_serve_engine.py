"""The engine's share of `dht_serve.py`: the same query mix, no sockets, CPU µs per query.

    python tools/bench/dht_serve_engine.py                    # 40,000 queries, by kind
    python tools/bench/dht_serve_engine.py --general          # the fast path switched off
    python tools/bench/dht_serve_engine.py --profile e.prof   # cProfile of the engine calls
    python tools/bench/dht_serve_engine.py --big-swarm 200    # get_peers on one big swarm

`dht_serve.py` measures a node process: the engine plus ``recvfrom``/``sendto`` and the
Trio loop, on a machine whose other load moves the numbers. This replays its load
into one `DHTNode` directly, timing only the engine calls (``receive_datagram``,
``datagrams_to_send``, ``next_event``) with ``process_time``, so a change to the
serving code can be judged in seconds and per query type.

The load is `dht_serve.py`'s own generator (its query builder, mix and sources): 4,096
127.x sources round-robin, each at 8 queries/s of virtual time (under the node's
per-IP limit), 500 warm-up pings first; announces and puts carry the tokens of the
source's last get_peers/get reply, and the node's own pings are answered, as the
benchmark's generator does. The node is built as `open_dht_node` builds it (default
`DHTConfig`, ``random.SystemRandom()``).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dht_serve as ds

from shoal.dht.node import DHTNode

SOURCES = 4096


class _NoSocket:
    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        raise AssertionError("the engine replay sends nothing")


def _generator(seed: int) -> ds.LoadGen:
    """`dht_serve.LoadGen` without its sockets (only its query builder is used)."""
    gen = ds.LoadGen.__new__(ds.LoadGen)
    gen.rng = random.Random(seed)
    gen.sources = [ds._Source(_NoSocket(), gen.rng.randbytes(20)) for _ in range(SOURCES)]  # type: ignore[arg-type]
    gen.info_hashes = [gen.rng.randbytes(20) for _ in range(1000)]
    gen.values = [b"%d:%s" % (n, gen.rng.randbytes(n)) for n in range(20, 120)]
    gen.targets = {hashlib.sha1(v).digest(): v for v in gen.values}
    gen.pending, gen._next_t, gen._rr, gen.res = {}, 0, 0, ds._Results()
    return gen


def _answer_pings(
    node: DHTNode,
    out: list[tuple[bytes, tuple[str, int]]],
    gen: ds.LoadGen,
    index: dict[tuple[str, int], int],
    now: float,
) -> None:
    for data, addr in out:
        m = ds._QUERY_T.search(data)
        if b"1:y1:q" in data and m is not None and addr in index:
            t = data[m.end() : m.end() + int(m.group(1))]
            node_id = gen.sources[index[addr]].node_id
            node.receive_datagram(
                b"d1:rd2:id20:%se1:t%d:%s1:y1:re" % (node_id, len(t), t), addr, now
            )
            node.datagrams_to_send()


def run(queries: int, seed: int, general: bool, profile: str | None) -> None:
    gen = _generator(seed)
    node = DHTNode(random.Random(seed).randbytes(20), random.SystemRandom(), 0.0)
    if general:
        node._hot = None
    addrs = [
        (f"127.{1 + i // 65_000}.{(i // 250) % 250 + 1}.{i % 250 + 1}", 40_000 + i)
        for i in range(SOURCES)
    ]
    index = {a: i for i, a in enumerate(addrs)}
    now = 0.0
    for i in range(500):  # warm-up: the node's table fills with answering nodes
        data, _ = gen._build(ds._PING, gen.sources[i], gen._t())
        now += 1e-4
        node.receive_datagram(data, addrs[i], now)
        _answer_pings(node, node.datagrams_to_send(), gen, index, now)
    step = 1.0 / (8 * SOURCES)
    count = [0] * len(ds._KIND_NAMES)
    spent = [0.0] * len(ds._KIND_NAMES)
    prof = cProfile.Profile() if profile else None
    for j in range(queries):
        now += step
        src_index = j % SOURCES
        src = gen.sources[src_index]
        kind = ds._pick_kind(gen.rng)
        if kind == ds._ANNOUNCE and src.token is None:
            kind = ds._GET_PEERS
        if kind == ds._PUT and src.item_token is None:
            kind = ds._GET
        data, ih = gen._build(kind, src, gen._t())
        if prof is not None:
            prof.enable()
        started = time.process_time()
        node.receive_datagram(data, addrs[src_index], now)
        out = node.datagrams_to_send()
        while node.next_event() is not None:
            pass
        spent[kind] += time.process_time() - started
        if prof is not None:
            prof.disable()
        count[kind] += 1
        for reply, addr in out:
            m = ds._TOKEN.search(reply)
            if addr == addrs[src_index] and m is not None and kind in (ds._GET_PEERS, ds._GET):
                token = reply[m.end() : m.end() + int(m.group(1))]
                if kind == ds._GET:
                    src.item_token = (gen.targets[ih], token)
                else:
                    src.token = (ih, token)
        _answer_pings(node, out, gen, index, now)
    total = sum(spent)
    path = "general path" if general else "fast path"
    print(
        f"{path}: {queries} queries, {1e6 * total / queries:.1f} us/query, "
        f"{queries / total:,.0f} queries per CPU-s"
    )
    print(
        "by kind (us/query): "
        + " ".join(
            f"{name}={1e6 * spent[k] / count[k]:.1f}"
            for k, name in enumerate(ds._KIND_NAMES)
            if count[k]
        )
    )
    if prof is not None and profile:
        prof.dump_stats(profile)


def big_swarm(peers: int, queries: int) -> None:
    """get_peers for one swarm of `peers` peers from `queries` sources (a sample of 50)."""
    node = DHTNode(bytes(20), random.SystemRandom(), 0.0)
    info_hash = b"\x01" * 20
    for p in range(peers):
        node.peer_store.add(info_hash, (f"10.1.{p // 200}.{p % 200 + 1}", 6881), 0.0)
    args = b"9:info_hash20:" + info_hash + b"e1:q9:get_peers1:t2:aa1:y1:qe"
    datagrams = [
        (
            b"d1:ad2:id20:" + bytes([i % 256]) * 19 + b"\x07" + args,
            (f"127.0.{i // 250}.{i % 250 + 1}", 7000),
        )
        for i in range(queries)
    ]
    now = 1.0
    started = time.process_time()
    for data, addr in datagrams:
        now += 0.001
        node.receive_datagram(data, addr, now)
        node.datagrams_to_send()
    spent = time.process_time() - started
    print(f"get_peers on a {peers}-peer swarm: {1e6 * spent / queries:.1f} us/query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--general", action="store_true", help="switch the fast path off")
    parser.add_argument("--profile", help="cProfile the engine calls into this file")
    parser.add_argument(
        "--big-swarm", type=int, metavar="PEERS", help="instead: get_peers on one big swarm"
    )
    args = parser.parse_args()
    if args.big_swarm:
        big_swarm(args.big_swarm, 4000)
        return
    run(args.queries, args.seed, args.general, args.profile)


if __name__ == "__main__":
    main()
