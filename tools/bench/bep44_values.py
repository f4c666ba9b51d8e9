"""BEP 44 value handling: what keeping ``v`` verbatim costs, and how big get replies get.

1. Decoding a ``put`` datagram with ``v`` taken verbatim from the datagram
   (`bencoding.raw_value`, the default) against the old way (``v`` decoded with the rest
   and re-encoded). The two are timed alternately, ``--rounds`` times, and the minimum
   of each is reported: on a shared machine the minimum is the least disturbed run.
2. The largest BEP 44 get reply: a ~1,000-byte mutable item asked for with
   ``want: [n4, n6]`` from a dual-stack node with full tables (8 + 8 nodes), before
   and after the cut to `serving.MAX_GET_REPLY`.

    python tools/bench/bep44_values.py [--rounds 30] [--number 2000]
"""

from __future__ import annotations

import argparse
import random
import timeit

from shoal.bencoding import encode
from shoal.dht import bep44, krpc_ext
from shoal.dht.krpc import GetQuery, PutQuery, Response, decode_message, encode_message
from shoal.dht.node import DHTConfig, DHTNode
from shoal.dht.serving import MAX_GET_REPLY

SEED = bytes(range(32))


def decode_cost(rounds: int, number: int) -> None:
    value = encode({b"name": b"x" * 80, b"seq": 3})
    item = bep44.make_mutable(SEED, value, 9, b"salt")
    assert item.key is not None
    put = PutQuery(b"pp", b"\x01" * 20, b"t" * 8, value, item.key, b"salt", 9, item.sig, 8)
    data = encode_message(put)
    real = krpc_ext.raw_value
    modes = {"verbatim": real, "re-encoded": lambda *args, **kw: None}
    best = dict.fromkeys(modes, float("inf"))
    try:
        for _ in range(rounds):
            for name, fn in modes.items():
                krpc_ext.raw_value = fn  # type: ignore[assignment]
                t = timeit.timeit(lambda: decode_message(data), number=number) / number
                best[name] = min(best[name], t)
    finally:
        krpc_ext.raw_value = real
    shown = ", ".join(f"{name} {t * 1e6:.1f} us" for name, t in best.items())
    print(f"decode a {len(data)}-byte put: {shown} (min of {rounds} x {number})")


def largest_get_reply() -> None:
    rng = random.Random(1)
    node_id = rng.randbytes(20)
    v4 = DHTNode(node_id, random.Random(1), 0.0, DHTConfig(rate=1e9, burst=1e9))
    v6 = DHTNode(node_id, random.Random(2), 0.0, DHTConfig(ipv6=True, rate=1e9, burst=1e9))
    v4.set_sibling(v6)
    v6.set_sibling(v4)
    for i in range(8):
        v4.table.heard_from(rng.randbytes(20), (f"127.0.1.{i + 1}", 6000 + i), 0.0, responded=True)
        v6.table.heard_from(
            rng.randbytes(20), (f"fd00:{i + 1:x}::1", 6000 + i), 0.0, responded=True
        )
    item = bep44.make_mutable(SEED, encode(b"y" * 995), 1)
    v4.server.items.put(item, 0.0)
    query = GetQuery(b"gg", b"\x02" * 20, item.target, want=(b"n4", b"n6"))
    v4.receive_datagram(encode_message(query), ("127.0.0.9", 7000), 1.0)
    ((data, _),) = v4.datagrams_to_send()
    reply = decode_message(data)
    assert isinstance(reply, Response)
    nodes, nodes6 = v4.server.closest_nodes(item.target, query.want, 1.0)
    uncut = Response(
        reply.t, reply.node_id, nodes, nodes6, (), reply.token, reply.ip, reply.version, reply.ext
    )
    print(
        f"get reply for a {len(item.value)}-byte mutable item, want n4+n6, 8+8 nodes: "
        f"{len(encode_message(uncut))} bytes uncut, {len(data)} sent "
        f"(cap {MAX_GET_REPLY}; {len(reply.nodes)} nodes + {len(reply.nodes6)} nodes6 kept)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    decode_cost(args.rounds, args.number)
    largest_get_reply()


if __name__ == "__main__":
    main()
