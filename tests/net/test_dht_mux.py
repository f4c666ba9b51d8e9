"""One UDP socket for the DHT and another protocol (uTP): the first-byte demultiplexer.

Real sockets on 127.0.0.1 and ::1: a non-KRPC datagram reaches the registered handler,
KRPC still reaches the DHT engine, and what the handler sends leaves from the DHT's port.
"""

from __future__ import annotations

import random
import socket
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.dht.krpc import PingQuery, Response, decode_message, encode_message
from shoal.dht.node import DHTConfig, DHTNode
from shoal.errors import DecodeError
from shoal.net.dht_service import DHTService, is_krpc, socket_family

if TYPE_CHECKING:
    from shoal.dht.compact import Addr

# uTP (BEP 29) ST_SYN, version 1: the first byte is type << 4 | version.
UTP_SYN = bytes([0x41, 0]) + bytes(18)
UTP_STATE = bytes([0x21, 0]) + bytes(18)


@pytest.mark.parametrize(
    ("data", "krpc"),
    [(b"d1:ad2:id20:", True), (UTP_SYN, False), (UTP_STATE, False), (b"", False), (b"l", False)],
)
def test_is_krpc_is_the_first_byte(data: bytes, krpc: bool) -> None:
    assert is_krpc(data) is krpc


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("127.0.0.1", socket.AF_INET),
        ("0.0.0.0", socket.AF_INET),
        ("::1", socket.AF_INET6),
        ("[::1]", socket.AF_INET6),
        ("::", socket.AF_INET6),
        ("localhost", socket.AF_INET),
    ],
)
def test_socket_family_follows_the_bind_address(host: str, family: socket.AddressFamily) -> None:
    assert socket_family(host) == family


def _service(host: str) -> DHTService:
    ipv6 = ":" in host
    node = DHTNode(b"\x11" * 20, random.Random(1), trio.current_time(), DHTConfig(ipv6=ipv6))
    return DHTService(node, bind=(host, 0))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_demux_on_one_socket(host: str) -> None:
    service = _service(host)
    got: list[tuple[bytes, Addr]] = []
    arrived = trio.Event()

    def handler(data: bytes, addr: Addr, now: float) -> None:
        assert now <= trio.current_time()
        got.append((data, addr))
        service.send_datagram_nowait(b"\x21echo:" + data, addr)  # from the DHT's socket
        arrived.set()

    family = socket_family(host)
    with trio.fail_after(10), trio.socket.socket(family, socket.SOCK_DGRAM) as peer:
        await peer.bind((host, 0))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(service.serve)
            service.set_datagram_handler(handler)
            me = peer.getsockname()[:2]

            await peer.sendto(UTP_SYN, address)
            await arrived.wait()
            assert got == [(UTP_SYN, me)]
            data, src = await peer.recvfrom(2048)
            assert data == b"\x21echo:" + UTP_SYN
            assert src[:2] == address  # same socket, same port as the DHT
            # The async form (uTP's DatagramTransport), from another task: same socket.
            await service.send_datagram(b"\x11from-a-task", me)
            data, src = await peer.recvfrom(2048)
            assert (data, src[:2]) == (b"\x11from-a-task", address)

            # KRPC still reaches the engine, which answers from the same port.
            await peer.sendto(encode_message(PingQuery(b"pq", b"\x22" * 20)), address)
            data, src = await peer.recvfrom(2048)
            reply = decode_message(data)
            assert isinstance(reply, Response)
            assert (reply.t, reply.node_id) == (b"pq", b"\x11" * 20)
            assert src[:2] == address
            assert len(got) == 1

            stats = service.statistics()
            assert (stats.handler_in, stats.handler_out) == (1, 2)
            assert (stats.datagrams_in, stats.datagrams_out) == (1, 1)
            assert stats.malformed == 0
            nursery.cancel_scope.cancel()
    with pytest.raises(trio.ClosedResourceError):
        service.send_datagram_nowait(b"\x21", address)
    with pytest.raises(trio.ClosedResourceError):
        await service.send_datagram(b"\x21", address)


async def test_without_a_handler_the_engine_gets_everything() -> None:
    service = _service("127.0.0.1")
    with trio.fail_after(10), trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        await peer.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(service.serve)
            await peer.sendto(UTP_SYN, address)
            # A ping after it: once it is answered, the SYN was read before it.
            await peer.sendto(encode_message(PingQuery(b"pq", b"\x22" * 20)), address)
            await peer.recvfrom(2048)
            stats = service.statistics()
            assert (stats.datagrams_in, stats.handler_in) == (2, 0)
            assert service.node.statistics().malformed == 1
            nursery.cancel_scope.cancel()


async def test_a_handler_decode_error_is_counted_and_serving_goes_on() -> None:
    service = _service("127.0.0.1")

    def handler(data: bytes, addr: Addr, now: float) -> None:
        raise DecodeError("not uTP either")

    with trio.fail_after(10), trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        await peer.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(service.serve)
            service.set_datagram_handler(handler)
            await peer.sendto(b"\x00junk", address)
            await peer.sendto(encode_message(PingQuery(b"pq", b"\x22" * 20)), address)
            data, _ = await peer.recvfrom(2048)
            assert isinstance(decode_message(data), Response)
            stats = service.statistics()
            assert (stats.handler_in, stats.malformed, stats.datagrams_in) == (1, 1, 1)
            service.set_datagram_handler(None)
            nursery.cancel_scope.cancel()


async def test_ipv6_socket_is_v6_only() -> None:
    """So a wildcard ``::`` service leaves the IPv4 port to the dual-stack node's IPv4
    service, and no IPv4-mapped address reaches the IPv6 table (checked on ::1: tests
    bind loopback only)."""
    v6 = _service("::1")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(v6.serve)
            raw = v6._raw
            assert raw is not None
            assert raw.family == socket.AF_INET6
            assert raw.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
            nursery.cancel_scope.cancel()
