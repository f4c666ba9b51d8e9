"""`RelayedSocket` on real loopback sockets, with a plain UDP socket playing the relay.

What the DHT loop relies on: ``sendto`` wraps and sends only to the relay, and without
a relay sends nothing at all (`ProxyUnavailable`); ``recvfrom`` is total over whatever
arrives (only `BlockingIOError` escapes, when nothing is left), unwraps the relay's
datagrams and drops everyone else's. The proxy-side behaviour (associate, lose it,
re-associate) is tested against real dante in ``tests/integration/test_dht_proxy.py``.
"""

from __future__ import annotations

import random
import socket
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from shoal import socks5
from shoal.dht import krpc
from shoal.errors import ProxyError, ProxyUnavailable
from shoal.net.socks_udp import ProxyRelay, RelayedSocket, RelayState
from shoal.socks5 import parse_proxy_url

if TYPE_CHECKING:
    from collections.abc import Iterator

HOST = "127.0.0.1"


@contextmanager
def pair() -> Iterator[tuple[RelayedSocket, socket.socket]]:
    """A bound `RelayedSocket` and a plain socket standing in for the relay (blocking,
    with a short timeout: loopback delivery is immediate)."""
    relayed = RelayedSocket()
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with relayed, relay:
        relayed.bind((HOST, 0))
        relayed.setblocking(False)
        relay.bind((HOST, 0))
        relay.settimeout(2)
        relayed.relay = relay.getsockname()
        yield relayed, relay


def drain(sock: RelayedSocket) -> list[tuple[bytes, tuple[str, int]]]:
    """Everything `recvfrom` hands out now (a datagram sent on loopback is queued at
    once, so a non-blocking read sees it)."""
    got = []
    while True:
        try:
            got.append(sock.recvfrom(4096))
        except BlockingIOError:
            return got


names = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}", fullmatch=True)
hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), names)
ports = st.integers(0, 0xFFFF)


@given(host=hosts, port=ports, data=st.binary(max_size=1400))
def test_sendto_wraps_for_the_relay_and_recvfrom_unwraps(host: str, port: int, data: bytes) -> None:
    with pair() as (relayed, relay):
        assert relayed.sendto(data, (host, port)) == len(data)
        wrapped, src = relay.recvfrom(4096)
        assert src == relayed.getsockname()
        dgram = socks5.decode_udp(wrapped)
        assert (dgram.host, dgram.port, dgram.data, dgram.frag) == (host, port, data, 0)
        relay.sendto(wrapped, src)  # the relay passes a reply back with the same header
        assert drain(relayed) == [(data, (host, port))]


@given(junk=st.binary(max_size=600))
def test_recvfrom_is_total_over_what_the_relay_sends(junk: bytes) -> None:
    """Whatever the relay sends, ``recvfrom`` returns an unwrapped datagram or drops
    it (counted); only `BlockingIOError` ever escapes."""
    with pair() as (relayed, relay):
        relayed.probes[b"tt"] = None  # the probe matcher parses replies too
        relay.sendto(junk, relayed.getsockname())
        got = drain(relayed)
        assert len(got) + relayed.dropped == 1
        if got:
            assert socks5.decode_udp(junk).data == got[0][0]


def test_only_the_relay_is_heard_and_fragments_are_dropped() -> None:
    with pair() as (relayed, relay):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind((HOST, 0))
            stranger.sendto(socks5.encode_udp("10.0.0.1", 1, b"spoof"), relayed.getsockname())
            relay.sendto(socks5.encode_udp("127.0.0.9", 9, b"part", frag=1), relayed.getsockname())
            relay.sendto(socks5.encode_udp("127.0.0.9", 9, b"whole"), relayed.getsockname())
            assert drain(relayed) == [(b"whole", ("127.0.0.9", 9))]
        assert relayed.dropped == 2


def test_without_a_relay_nothing_is_sent_and_nothing_is_heard() -> None:
    """Fail closed: no relay means `ProxyUnavailable` (an OSError, so the DHT loop
    drops the datagram), nothing on the wire, and incoming datagrams dropped."""
    with pair() as (relayed, relay):
        relay_addr = relayed.relay
        assert relay_addr is not None
        relayed.relay = None
        with pytest.raises(ProxyUnavailable, match="waiting for proxy"):
            relayed.sendto(b"d1:y1:qe", ("127.0.0.9", 6881))
        assert isinstance(ProxyUnavailable("x"), OSError | ProxyError)
        assert relayed.unsent == 1
        relay.settimeout(0.2)
        with pytest.raises(TimeoutError):
            relay.recvfrom(4096)  # nothing left the socket
        relay.sendto(socks5.encode_udp("127.0.0.9", 9, b"late"), relayed.getsockname())
        assert drain(relayed) == []
        assert relayed.dropped == 1


def test_probe_replies_are_matched_to_their_transaction() -> None:
    with pair() as (relayed, relay):
        relayed.probes[b"ab"] = None
        reply = krpc.encode_message(krpc.Response(t=b"ab", node_id=b"R" * 20))
        other = krpc.encode_message(krpc.Response(t=b"zz", node_id=b"R" * 20))
        for data in (other, reply):
            relay.sendto(socks5.encode_udp("127.0.0.7", 6881, data), relayed.getsockname())
        got = drain(relayed)
        assert [d for d, _ in got] == [other, reply]  # the DHT still gets both
        assert relayed.probes == {b"ab": ("127.0.0.7", 6881)}


async def test_a_proxy_that_is_not_there_means_waiting_for_proxy() -> None:
    """Nothing listens at the proxy's address: the relay reports "waiting for proxy"
    with the reason, and `resolve` gives up only when cancelled (it waits for UP)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        dead = probe.getsockname()[1]  # bound, not listening: connections are refused
        relayed = RelayedSocket()
        with relayed:
            relayed.bind((HOST, 0))
            relay = ProxyRelay(relayed, parse_proxy_url(f"socks5://{HOST}:{dead}"))
            async with trio.open_nursery() as nursery:
                await nursery.start(relay.run)
                assert relay.state is RelayState.WAITING
                assert relay.statistics().state.value == "waiting for proxy"
                assert relay.last_error is not None
                assert "cannot reach proxy" in relay.last_error
                with trio.move_on_after(0.3) as scope:
                    await relay.resolve("router.invalid", 6881, b"N" * 20, random.Random(1))
                assert scope.cancelled_caught
                assert relayed.unsent == 0  # not even tried while the proxy is away
                nursery.cancel_scope.cancel()


async def test_a_proxy_that_resets_us_means_waiting_not_a_crash() -> None:
    """A "proxy" that accepts and resets (RST) every connection: each attempt fails,
    the relay waits and says why, and nothing escapes its task."""
    import struct

    async def reset(stream: trio.SocketStream) -> None:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, reset, 0, host=HOST))
        port = listeners[0].socket.getsockname()[1]
        relayed = RelayedSocket()
        with relayed:
            relayed.bind((HOST, 0))
            relay = ProxyRelay(relayed, parse_proxy_url(f"socks5://{HOST}:{port}"))
            relay.backoff = (0.01, 0.02)
            await nursery.start(relay.run)
            for _ in range(3):  # several attempts, every one fails the same way
                await relay.wait_state(RelayState.WAITING)
                await trio.sleep(0.05)
            assert relay.state is RelayState.WAITING
            assert relay.associations == 0
            assert relay.last_error is not None
            nursery.cancel_scope.cancel()
