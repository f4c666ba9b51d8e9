"""The DHT through a real dante's UDP relay (`shoal.net.socks_udp`), checked at the far end.

The far nodes are shoal nodes on their own 127.x addresses whose sockets record the
source of every datagram (`RecordingSocket`, the same seam `RelayedSocket` uses):
only the proxy's external address (EXTERNAL_IP) may appear there besides the far
nodes themselves, and never the proxied node's own address (CLIENT_IP). Killing
dante stops every datagram (none goes direct) and the node says "waiting for proxy";
a restarted dante brings it back.
"""

from __future__ import annotations

import dataclasses
import random
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.client import open_client
from shoal.config import ClientConfig
from shoal.dht.node import DHTNode
from shoal.dht_client import DHT, open_dht_node
from shoal.errors import ProxyUnavailable
from shoal.net.dht_service import DHTService
from shoal.net.socks_udp import RelayState
from shoal.socks5 import parse_proxy_url
from shoal.utp.packet import Packet, PacketType, decode_packet
from tests.integration.socks_servers import CLIENT_IP, EXTERNAL_IP, run_dante

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from _typeshed import ReadableBuffer

pytestmark = pytest.mark.integration

ROUTER_IP = "127.0.0.5"
ANNOUNCER_IP = "127.0.0.6"
IH = bytes.fromhex("5ca1ab1e" * 5)


class RecordingSocket(socket.socket):
    """A plain UDP socket that remembers the source address of every datagram."""

    def __init__(self, sources: list[str]) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.sources = sources

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int]]:
        data, addr = super().recvfrom(bufsize, flags)
        self.sources.append(addr[0])
        return data, (addr[0], addr[1])

    def sendto(self, data: ReadableBuffer, *args: object) -> int:
        return super().sendto(data, *args)  # type: ignore[call-overload, no-any-return]


@asynccontextmanager
async def far_node(ip: str, sources: list[str], seed: int) -> AsyncIterator[DHTService]:
    """A shoal DHT node on `ip` whose socket records who talked to it."""
    node = DHTNode(random.Random(seed).randbytes(20), random.Random(seed), trio.current_time())
    service = DHTService(node, bind=(ip, 0), sock=RecordingSocket(sources))
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        yield service
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def far_network(sources: list[str]) -> AsyncIterator[tuple[DHTService, DHTService]]:
    """A router and a node that announced IH (peer ANNOUNCER_IP:6881) behind the proxy."""
    async with (
        far_node(ROUTER_IP, sources, 1) as router,
        far_node(ANNOUNCER_IP, sources, 2) as announcer,
    ):
        assert router.address is not None
        announcer.add_nodes([router.address])
        await announcer.wait_bootstrapped()
        waiter = announcer.register(
            announcer.node.announce(IH, 6881, trio.current_time()), announce=True
        )
        await waiter.wait_done()
        yield router, announcer


async def find(dht: DHT) -> set[tuple[str, int]]:
    return {peer async for peer in dht.get_peers(IH)}


async def test_dht_lookup_through_dante_only_shows_the_proxy(tmp_path: Path) -> None:
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        assert router.address is not None
        async with open_dht_node(
            (CLIENT_IP, 0),
            bootstrap=[router.address],
            proxy=parse_proxy_url(proxy.url()),
            rng=random.Random(3),
        ) as dht:
            with trio.fail_after(30):
                await dht.wait_bootstrapped()
                assert (ANNOUNCER_IP, 6881) in await find(dht)
            stats = dht.statistics()
    assert stats.proxy is not None
    assert stats.proxy.state is RelayState.UP
    assert stats.proxy.associations == 1
    assert stats.service.datagrams_out > 0
    assert stats.service.datagrams_in > 0
    assert set(sources) - {ROUTER_IP, ANNOUNCER_IP} == {EXTERNAL_IP}


async def test_router_names_are_resolved_by_the_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``localhost:PORT`` as the bootstrap router: our resolver is never asked (it
    fails the test if it is); dante resolves the name, and the node joins through it."""
    real = trio.socket.getaddrinfo

    async def literal_only(host: object, *args: object, **kw: object) -> object:
        assert host in (None, "127.0.0.2", "127.0.0.4"), f"resolved {host!r} locally"
        return await real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(trio.socket, "getaddrinfo", literal_only)
    sources: list[str] = []
    async with (
        run_dante(tmp_path) as proxy,
        far_node("127.0.0.1", sources, 1) as router,
        far_node(ANNOUNCER_IP, [], 2) as announcer,
    ):
        assert router.address is not None
        announcer.add_nodes([router.address])
        async with open_dht_node(
            ("127.0.0.4", 0),
            bootstrap=[("localhost", router.address[1])],
            proxy=parse_proxy_url(proxy.url()),
            rng=random.Random(3),
        ) as dht:
            with trio.fail_after(30):
                await dht.wait_bootstrapped()
            assert dht.service.node.bootstrap_addrs == (("127.0.0.1", router.address[1]),)
    assert set(sources) - {ANNOUNCER_IP} == {EXTERNAL_IP}  # the router never heard 127.0.0.4


async def test_proxy_down_means_silence_then_resume(tmp_path: Path) -> None:
    """Kill dante: the node reports "waiting for proxy", its datagrams are not sent
    (counted as unsent), and the far end hears nothing from us; restart dante on the
    same port: a new association, and lookups work again."""
    sources: list[str] = []
    async with run_dante(tmp_path) as proxy, far_network(sources) as (router, _):
        assert router.address is not None
        async with open_dht_node(
            (CLIENT_IP, 0),
            bootstrap=[router.address],
            proxy=parse_proxy_url(proxy.url()),
            rng=random.Random(3),
        ) as dht:
            relay = dht.relay
            assert relay is not None
            relay.backoff = (0.2, 0.5)
            with trio.fail_after(30):
                await dht.wait_bootstrapped()
                proxy.stop()
                await relay.wait_state(RelayState.WAITING)
                assert dht.statistics().proxy.state is RelayState.WAITING  # type: ignore[union-attr]
                assert "waiting for proxy" in RelayState.WAITING.value
                heard = list(sources)
                before = relay.sock.unsent
                found = await find(dht)  # queries time out: nothing goes anywhere
                assert found == set()
                assert relay.sock.unsent > before
                with pytest.raises(ProxyUnavailable):
                    relay.sock.sendto(b"x", router.address)
                assert sources == heard
                await proxy.restart()
                await relay.wait_state(RelayState.UP)
                assert relay.associations == 2
                # The node joins again by itself: the router hears from it (through
                # the proxy) with no lookup asked for.
                while sources.count(EXTERNAL_IP) == heard.count(EXTERNAL_IP):  # noqa: ASYNC110
                    await trio.sleep(0.05)
                for _ in range(50):  # the table re-fills from the router first
                    if (ANNOUNCER_IP, 6881) in await find(dht):
                        break
                    await trio.sleep(0.2)
                else:
                    pytest.fail("no lookup succeeded after the proxy came back")
    assert set(sources) - {ROUTER_IP, ANNOUNCER_IP} == {EXTERNAL_IP}


@pytest.mark.parametrize("incoming", [False, True], ids=["refused", "accept_incoming"])
async def test_utp_on_the_relayed_socket_refuses_incoming_while_proxied(
    tmp_path: Path, incoming: bool
) -> None:
    """A far host that learned our relayed address (from a DHT ping) sends a uTP SYN
    back through dante: while proxied we answer ST_RESET; with ``accept_incoming``
    (the control case) ST_STATE, the SYN-ACK."""
    cfg = ClientConfig(
        bind_host=CLIENT_IP, port=0, dht=True, transports=("utp", "tcp"),
        accept_incoming=incoming,
    )  # fmt: skip
    far = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with far:
        await far.bind((ROUTER_IP, 0))
        async with run_dante(tmp_path) as proxy:
            cfg = dataclasses.replace(cfg, proxy=proxy.url())
            async with open_client(cfg) as client:
                assert client.dht is not None
                assert client.utp is not None
                client.dht.add_nodes([far.getsockname()])
                with trio.fail_after(20):
                    ping, relayed = await far.recvfrom(4096)  # our bootstrap query
                    assert ping[:1] == b"d"
                    assert relayed[0] == EXTERNAL_IP
                    syn = Packet(PacketType.SYN, connection_id=4242, seq_nr=1, wnd_size=65535)
                    await far.sendto(syn.encode(), relayed)
                    while True:
                        data, src = await far.recvfrom(4096)
                        if data[:1] != b"d":  # not a (retransmitted) KRPC query
                            break
    assert src == relayed
    reply = decode_packet(data)
    assert reply.type is (PacketType.STATE if incoming else PacketType.RESET)


async def test_a_dual_stack_bind_runs_one_node_of_the_proxys_family(tmp_path: Path) -> None:
    async with (
        run_dante(tmp_path) as proxy,
        open_dht_node([("::1", 0), (CLIENT_IP, 0)], proxy=parse_proxy_url(proxy.url())) as dht,
    ):
        assert [s.family for s in dht.services] == [socket.AF_INET]  # dante is on IPv4
        assert dht.relay is not None
        with trio.fail_after(10):
            await dht.relay.wait_state(RelayState.UP)
