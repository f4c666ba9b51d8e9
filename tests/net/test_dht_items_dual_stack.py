"""BEP 44/33/51 on a dual-stack node (BEP 32): every bound family is used, not the first.

Real sockets on 127.0.0.1 and ::1. Single-family nodes on the side prove where the
data went: an IPv6-only node can only read what was put into the IPv6 DHT.
"""

from __future__ import annotations

import random

import trio

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht_client import open_dht_node

from .test_dht_dual_stack import DUAL, dual_network, wait_both_bootstrapped
from .test_dht_items_cli import shoal

SEED = bytes(range(32))
IH = bytes.fromhex("5e" * 20)


async def test_put_and_get_run_on_both_families() -> None:
    item = bep44.make_mutable(SEED, encode(b"both"), 3, b"dual")
    with trio.fail_after(30):
        async with dual_network(5, seed=30) as nodes:
            await wait_both_bootstrapped(nodes)
            stored = await nodes[4].put_item(item)
            now = trio.current_time()
            holders4 = [n for n in nodes if n.services[0].node.server.items.get(item.target, now)]
            holders6 = [n for n in nodes if n.services[1].node.server.items.get(item.target, now)]
            assert holders4
            assert holders6  # the IPv6 DHT got it too
            assert stored.stored == len(holders4) + len(holders6)
            assert not stored.errors
            found = await nodes[1].get_item(item.target, salt=b"dual")
            assert found.item == item
            # Both families' replies count (the node itself is not asked).
            mine = [n is nodes[1] for n in holders4].count(True)
            mine += [n is nodes[1] for n in holders6].count(True)
            assert found.nodes == len(holders4) + len(holders6) - mine
            six = [a for n in nodes for a in n.addresses if ":" in a[0]]
            async with open_dht_node(("::1", 0), bootstrap=six) as v6_only:
                found6 = await v6_only.get_item(item.target, salt=b"dual")
            assert found6.item == item
            stats = nodes[0].statistics()
            assert stats.nodes == stats.node.routing.nodes + stats.others[0].node.routing.nodes
            assert stats.families == (stats, stats.others[0])


async def test_get_prefers_the_higher_seq_of_either_family() -> None:
    old = bep44.make_mutable(SEED, encode(b"old"), 1)
    new = bep44.make_mutable(SEED, encode(b"new"), 2)
    with trio.fail_after(30):
        async with dual_network(4, seed=40) as nodes:
            await wait_both_bootstrapped(nodes)
            now = trio.current_time()
            for n in nodes[:3]:  # v4 holds seq 1, v6 holds seq 2
                n.services[0].node.server.items.put(old, now)
                n.services[1].node.server.items.put(new, now)
            found = await nodes[3].get_item(new.target)
            assert found.item == new
            assert found.nodes == 3


async def test_scrape_ors_the_filters_of_both_families() -> None:
    with trio.fail_after(30):
        async with dual_network(4, seed=50) as nodes:
            await wait_both_bootstrapped(nodes)
            now = trio.current_time()
            for i in range(20):  # 20 IPv4 peers (5 seeds) and 12 IPv6 peers (2 seeds)
                nodes[i % 3].services[0].node.peer_store.add(
                    IH, (f"127.8.0.{i}", 6881), now, seed=i < 5
                )
            for i in range(12):
                nodes[i % 3].services[1].node.peer_store.add(
                    IH, (f"fd00:8::{i + 1:x}", 6881), now, seed=i < 2
                )
            est = await nodes[3].scrape(IH)
            assert abs(est.seeds - 7) < 1.5
            assert abs(est.peers - 25) < 2
            assert est.responders == 6  # three nodes in each family


async def test_sample_goes_out_on_the_socket_of_the_addresses_family() -> None:
    with trio.fail_after(30):
        async with (
            open_dht_node(DUAL, rng=random.Random(1)) as dual,
            open_dht_node(("::1", 0)) as v6_only,
        ):
            v6_only.service.node.peer_store.add(IH, ("fd00::1", 6881), trio.current_time())
            got = await dual.sample(v6_only.address, bytes(20))
            assert got.samples == (IH,)
            assert got.addr == v6_only.address


async def test_cli_put_uses_every_bind_and_an_ipv6_only_get_reads_it() -> None:
    with trio.fail_after(60):
        async with dual_network(3, seed=60) as nodes:
            await wait_both_bootstrapped(nodes)
            boot4, boot6 = nodes[0].addresses
            node = ["--bind", "127.0.0.1", "--bind", "::1", "--json"]
            node += ["--bootstrap", f"{boot4[0]}:{boot4[1]}", "--bootstrap", f"[::1]:{boot6[1]}"]
            code, (put,), text = await shoal("dht", "put", "dual", *node)
            assert code == 0, text
            assert put["stored"] == 6  # three nodes in each family
            only6 = ["--bind", "::1", "--bootstrap", f"[::1]:{boot6[1]}", "--json"]
            code, (got,), text = await shoal("dht", "get", put["target"], *only6)
            assert code == 0, text
            assert (got["value"], got["nodes"]) == ("dual", 3)


async def test_cli_sample_walks_both_families() -> None:
    """`shoal dht sample` with a --bind per family reports hashes only IPv6 nodes hold."""
    v6_only = [bytes([0x60 + i]) * 20 for i in range(3)]
    v4_only = bytes([0x40]) * 20
    with trio.fail_after(60):
        async with dual_network(3, seed=70) as nodes:
            await wait_both_bootstrapped(nodes)
            now = trio.current_time()
            for node, h in zip(nodes, v6_only, strict=True):
                node.services[1].node.peer_store.add(h, ("fd00:6::1", 6881), now)
            nodes[0].services[0].node.peer_store.add(v4_only, ("127.6.0.1", 6881), now)
            boot4, boot6 = nodes[0].addresses
            argv = ["dht", "sample", "--bind", "127.0.0.1", "--bind", "::1", "--json"]
            argv += ["--bootstrap", f"{boot4[0]}:{boot4[1]}", "--bootstrap", f"[::1]:{boot6[1]}"]
            code, lines, text = await shoal(*argv)
            assert code == 0, text
            found = {bytes.fromhex(line["info_hash"]) for line in lines}
            assert found == {*v6_only, v4_only}
            givers = {line["node"][0] for line in lines}
            assert givers == {"127.0.0.1", "::1"}
