"""Look up the peers of an info-hash on the DHT, crawler style, with `open_dht_node`.

    python dht_lookup.py INFOHASH HOST:PORT [HOST:PORT ...]

Joins the DHT through the given nodes (no public routers are ever used implicitly),
prints each peer as the iterative get_peers lookup finds it, then the lookup's own
statistics and what the routing table learned on the way.
"""

import sys

import trio

from shoal.dht_client import open_dht_node
from shoal.ids import InfoHash


def hostport(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main() -> None:
    info_hash = InfoHash.from_hex(sys.argv[1])
    bootstrap = sys.argv[2:]
    nodes = [hostport(b) for b in bootstrap]
    async with open_dht_node(("127.0.0.1", 0), nodes) as dht:
        start = trio.current_time()
        search = dht.get_peers(info_hash)
        with trio.fail_after(30):
            async for host, port in search:
                print(f"peer {host}:{port} after {trio.current_time() - start:.3f} s")
        if search.statistics is not None:
            s = search.statistics
            print(f"lookup: {s.hops} hops, {s.queries_sent} queries, {s.responses} responses")
        table = dht.statistics().node.routing
        print(f"routing table: {table.nodes} nodes ({table.good} good) in {table.buckets} buckets")


trio.run(main)
