"""Dual-stack DHT nodes (BEP 32) over real UDP sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import json
import random
import socket
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.dht.krpc import FindNodeQuery, Response, decode_message, encode_message
from shoal.dht_client import DHT, open_dht_node, resolve
from shoal.magnet import Magnet
from shoal.metainfo import parse_metainfo
from shoal.net.transport import TcpTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

IH = bytes.fromhex("6b" * 20)
DUAL = [("127.0.0.1", 0), ("::1", 0)]


@asynccontextmanager
async def dual_network(size: int, seed: int = 0) -> AsyncIterator[list[DHT]]:
    """`size` dual-stack nodes; node i bootstraps through both addresses of the last 3."""
    async with AsyncExitStack() as stack:
        nodes: list[DHT] = []
        for i in range(size):
            boot = [a for n in nodes[-3:] for a in n.addresses]
            dht = await stack.enter_async_context(
                open_dht_node(DUAL, bootstrap=boot, rng=random.Random(seed + i))
            )
            nodes.append(dht)
        yield nodes


async def wait_both_bootstrapped(nodes: list[DHT]) -> None:
    for n in nodes[1:]:
        for service in n.services:
            await service.wait_bootstrapped()


async def test_dual_stack_node_has_one_socket_and_table_per_family() -> None:
    with trio.fail_after(20):
        async with dual_network(6) as nodes:
            await wait_both_bootstrapped(nodes)
            for n in nodes:
                (v4, v6) = n.addresses
                assert v4[0] == "127.0.0.1"
                assert v6[0] == "::1"
                assert v4[1] == v6[1]  # one port number for both families
                assert n.service_for("127.0.0.5") is n.services[0]
                assert n.service_for("::1") is n.services[1]
                four, six = (s.node.table.entries() for s in n.services)
                assert all(":" not in e.addr[0] for e in four)
                assert all(":" in e.addr[0] for e in six)
            stats = nodes[0].statistics()
            assert len(stats.others) == 1
            assert stats.node.routing.nodes >= 3
            assert stats.others[0].node.routing.nodes >= 3


async def test_announce_and_get_peers_run_on_both_families() -> None:
    with trio.fail_after(20):
        async with dual_network(7, seed=10) as nodes:
            await wait_both_bootstrapped(nodes)
            await nodes[2].announce(IH, 6881)
            search = nodes[6].get_peers(IH)
            found = {peer async for peer in search}
            # BEP 5: the peer is stored at the UDP source address of each announce.
            assert found == {("127.0.0.1", 6881), ("::1", 6881)}
            assert len(search.all_statistics) == 2
            assert all(s is not None and s.responses > 0 for s in search.all_statistics)
            assert search.statistics is search.all_statistics[0]


async def test_want_n6_over_ipv4_returns_the_ipv6_table() -> None:
    with trio.fail_after(20):
        async with dual_network(4, seed=20) as nodes:
            await wait_both_bootstrapped(nodes)
            with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                await sock.bind(("127.0.0.1", 0))
                query = FindNodeQuery(b"w1", b"\x33" * 20, b"\x44" * 20, (b"n4", b"n6"))
                await sock.sendto(encode_message(query), nodes[0].addresses[0])
                data, _ = await sock.recvfrom(4096)
            reply = decode_message(data)
            assert isinstance(reply, Response)
            assert {n.addr[0] for n in reply.nodes6} == {"::1"}
            assert {n.addr[0] for n in reply.nodes} == {"127.0.0.1"}


async def test_state_file_keeps_both_tables(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    with trio.fail_after(30):
        async with dual_network(4, seed=30) as nodes:
            await wait_both_bootstrapped(nodes)
            async with open_dht_node(
                DUAL, bootstrap=nodes[0].addresses, state_file=path, rng=random.Random(99)
            ) as dht:
                for service in dht.services:
                    await service.wait_bootstrapped()
                node_id = dht.node_id
            doc = json.loads(path.read_text())
            ips = {n["ip"] for n in doc["nodes"]}
            assert ips == {"127.0.0.1", "::1"}
            assert doc["version"] == 1
            # A warm start from the file alone joins both families.
            async with open_dht_node(DUAL, state_file=path) as warm:
                assert warm.node_id == node_id
                for service in warm.services:
                    await service.wait_bootstrapped()
                    assert len(service.node.table) > 0


async def test_an_ipv4_only_state_file_still_loads_into_a_dual_stack_node(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.json"
    with trio.fail_after(20):
        async with open_dht_node(("127.0.0.1", 0), rng=random.Random(5)) as seed_node:
            old = {
                "version": 1,
                "node_id": "ab" * 20,
                "nodes": [
                    {"id": seed_node.node_id.hex(), "ip": "127.0.0.1", "port": seed_node.address[1]}
                ],
            }
            path.write_text(json.dumps(old))
            async with open_dht_node(DUAL, state_file=path) as dht:
                assert dht.node_id == bytes.fromhex("ab" * 20)
                await dht.services[0].wait_bootstrapped()
                assert len(dht.services[0].node.table) == 1
                assert len(dht.services[1].node.table) == 0


async def test_add_nodes_goes_to_the_family_of_each_address() -> None:
    with trio.fail_after(20):
        async with (
            open_dht_node(DUAL, rng=random.Random(40)) as a,
            open_dht_node(DUAL, rng=random.Random(41)) as b,
        ):
            b.add_nodes([a.addresses[1]])  # IPv6 only
            await b.services[1].wait_bootstrapped()
            assert {e.addr for e in b.services[1].node.table.entries()} == {a.addresses[1]}
            assert len(b.services[0].node.table) == 0


async def test_two_binds_of_one_family_are_refused() -> None:
    with pytest.raises(ValueError, match="one address per address family"):
        async with open_dht_node([("127.0.0.1", 0), ("127.0.0.2", 0)]):
            pass  # pragma: no cover


async def test_resolve_sorts_literals_by_family() -> None:
    hosts = [("127.0.0.1", 1), ("::1", 2), ("[::1]", 3)]
    assert await resolve(hosts) == [("127.0.0.1", 1)]
    assert await resolve(hosts, socket.AF_INET6) == [("::1", 2), ("::1", 3)]


async def test_a_taken_port_is_an_oserror_not_an_exception_group() -> None:
    """The client falls back to another UDP port on OSError; it must see a plain one."""
    with trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        await taken.bind(("::1", 0))
        port = taken.getsockname()[1]
        for bind in ([("::1", port)], [("127.0.0.1", port), ("::1", port)]):
            with pytest.raises(OSError, match="in use"):
                async with open_dht_node(bind):
                    pass  # pragma: no cover


async def test_client_runs_a_dht_socket_per_bind_host(tmp_path: Path) -> None:
    """`ClientConfig.bind_hosts`: the client's DHT joins both families, on the TCP port
    number, and finds peers announced on either; a torrent's `dht_nodes` counts the
    tables of both."""
    async with (
        open_dht_node(DUAL, rng=random.Random(50)) as router,
        open_dht_node(DUAL, bootstrap=router.addresses, rng=random.Random(51)) as other,
    ):
        config = shoal.ClientConfig(
            bind_host="127.0.0.1",
            bind_hosts=("127.0.0.1", "::1"),
            port=0,
            bootstrap=router.addresses,
        )
        with trio.fail_after(20):
            async with shoal.open_client(config) as client:
                dht = client.dht
                assert dht is not None
                port = client.listen_address[1]
                assert dht.addresses == (("127.0.0.1", port), ("::1", port))
                for service in dht.services:
                    await service.wait_bootstrapped()
                for service in other.services:
                    await service.wait_bootstrapped()
                await other.announce(IH, 6999)  # stored by the router (and the client)
                found = {p async for p in dht.get_peers(IH)}
                assert found == {("127.0.0.1", 6999), ("::1", 6999)}
                magnet = Magnet(info_hash=shoal.InfoHash(IH))
                torrent = await client.add(magnet, save_to=tmp_path / "dl")
                stats, counted = dht.statistics(), torrent.statistics().dht_nodes  # no await
                four, six = (f.node.routing.nodes for f in stats.families)
                assert four >= 2
                assert six >= 2
                assert counted == stats.nodes == four + six


def test_bind_hosts_take_one_address_per_family() -> None:
    with pytest.raises(ValueError, match="one address per family"):
        shoal.ClientConfig(bind_hosts=("127.0.0.1", "0.0.0.0"))
    assert shoal.ClientConfig(bind_hosts=("0.0.0.0", "::")).bind_hosts == ("0.0.0.0", "::")


async def test_ipv6_dht_is_joined_through_an_ipv4_router_alone() -> None:
    """BEP 32: while its IPv6 table is short, a dual-stack node's IPv4 lookups ask for
    ``n6`` too and the IPv6 contacts in the replies bootstrap its IPv6 service."""
    with trio.fail_after(20):
        async with (
            open_dht_node(DUAL, rng=random.Random(70)) as router,
            open_dht_node(DUAL, bootstrap=router.addresses, rng=random.Random(71)) as other,
        ):
            for service in other.services:
                await service.wait_bootstrapped()
            # The newcomer knows only the router's IPv4 address.
            async with open_dht_node(
                DUAL, bootstrap=[router.addresses[0]], rng=random.Random(72)
            ) as newcomer:
                v6 = newcomer.services[1]
                assert v6.node.bootstrap_addrs == ()
                await v6.wait_bootstrapped()
                assert other.addresses[1] in {e.addr for e in v6.node.table.entries()}
                await other.announce(IH, 6070)
                found = {p async for p in newcomer.get_peers(IH)}
                assert ("::1", 6070) in found


async def test_dual_stack_clients_swarm_over_ipv6(tmp_path: Path) -> None:
    """`bind_hosts` also gives the client a TCP listener on the other family and dials
    each peer from the bind address of its family: a leecher that knows the seed only
    by its ::1 address downloads over IPv6, though both `bind_host`s are IPv4."""
    payload = tmp_path / "seed" / "x.bin"
    payload.parent.mkdir()
    payload.write_bytes(random.Random(3).randbytes(200_000))
    metainfo = parse_metainfo(create_torrent(payload, piece_length=16384))
    dual = {"bind_host": "127.0.0.1", "bind_hosts": ("127.0.0.1", "::1"), "port": 0}
    with trio.fail_after(30):
        async with (
            shoal.open_client(shoal.ClientConfig(**dual, dht=False)) as seed,
            shoal.open_client(shoal.ClientConfig(**dual, dht=False)) as leech,
        ):
            seeding = await seed.add(metainfo, save_to=tmp_path / "seed")
            await seeding.wait_complete()
            port = seed.listen_address[1]
            torrent = await leech.add(
                metainfo, save_to=tmp_path / "leech", peers=[("::1", port)], seed=False
            )
            await torrent.wait_complete()
            assert seed.statistics().inbound_accepted == 1  # on the ::1 listener
    assert (tmp_path / "leech" / "x.bin").read_bytes() == payload.read_bytes()


def test_tcp_transport_picks_the_source_of_the_peers_family() -> None:
    dual = TcpTransport("127.0.0.1", bind_hosts=("127.0.0.1", "::1"))
    assert dual.local_address("127.0.0.9") == "127.0.0.1"
    assert dual.local_address("::1") == "::1"
    wild = TcpTransport(None, bind_hosts=("0.0.0.0", "::"))
    assert wild.local_address("192.0.2.1") is None
    assert wild.local_address("2001:db8::1") is None
    assert TcpTransport("127.0.0.5").local_address("::1") == "127.0.0.5"  # as before


async def test_magnet_found_and_fetched_over_the_ipv6_dht(tmp_path: Path) -> None:
    """The whole dual-stack path: a dual-stack seed (IPv4 `bind_host`) announces on both
    DHTs and listens on both families; an IPv6-only leecher finds it through the IPv6
    DHT alone and downloads the magnet over IPv6."""
    payload = tmp_path / "seed" / "x.bin"
    payload.parent.mkdir()
    payload.write_bytes(random.Random(4).randbytes(150_000))
    metainfo = parse_metainfo(create_torrent(payload, piece_length=16384))
    dual = {"bind_host": "127.0.0.1", "bind_hosts": ("127.0.0.1", "::1"), "port": 0}
    with trio.fail_after(30):
        async with open_dht_node(DUAL, rng=random.Random(80)) as router:
            seed_cfg = shoal.ClientConfig(**dual, bootstrap=router.addresses)
            leech_cfg = shoal.ClientConfig(
                bind_host="::1", port=0, bootstrap=(router.addresses[1],)
            )
            async with shoal.open_client(seed_cfg) as seed:
                seeding = await seed.add(metainfo, save_to=tmp_path / "seed")
                await seeding.wait_complete()
                async with shoal.open_client(leech_cfg) as leech:
                    torrent = await leech.add(
                        Magnet(metainfo.info_hash), save_to=tmp_path / "leech", seed=False
                    )
                    await torrent.wait_complete()
                    assert leech.dht is not None
                    assert [s.family for s in leech.dht.services] == [socket.AF_INET6]
                assert seed.statistics().inbound_accepted >= 1  # on its ::1 listener
    assert (tmp_path / "leech" / "x.bin").read_bytes() == payload.read_bytes()
