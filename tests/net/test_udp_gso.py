"""UDP segmentation offload (`shoal.net.udp_gso`): what leaves is exactly the batch,
datagram for datagram, over real loopback sockets; the run splitting obeys the
kernel's limits; a kernel that refuses GSO makes the senders fall back to sendto."""

from __future__ import annotations

import errno
import random
import socket
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal import socks5
from shoal.dht.node import DHTNode
from shoal.ids import random_id
from shoal.net.dht_service import DHTService
from shoal.net.socks_udp import RelayedSocket
from shoal.net.udp_gso import GSO_MAX_SEGMENTS, GsoRefused, _run_end, send_batch
from shoal.net.utp_socket import _UDPTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

Addr = tuple[str, int]


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.setblocking(False)
        socks.append(sock)
    yield socks
    for sock in socks:
        sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


def test_every_datagram_arrives_as_sent(receivers: list[socket.socket]) -> None:
    a, b = (s.getsockname() for s in receivers)
    batch: list[tuple[bytes, Addr]] = [(bytes([i]) * 1198, a) for i in range(150)]  # > 64 KiB
    batch += [(b"short", a), (b"x" * 1198, b), (b"y" * 1198, b), (b"z" * 40, b), (b"w" * 9, a)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        assert send_batch(sender, batch) == (len(batch), 0)
    got_a, got_b = drain(receivers[0]), drain(receivers[1])
    assert got_a == [d for d, to in batch if to == a]
    assert got_b == [d for d, to in batch if to == b]


sizes = st.lists(st.tuples(st.integers(1, 1500), st.integers(0, 1)), min_size=1, max_size=300)


@given(sizes)
@settings(max_examples=200)
def test_runs_partition_the_batch_within_the_kernels_limits(spec: list[tuple[int, int]]) -> None:
    batch = [(b"x" * n, ("127.0.0.1", 1000 + k)) for n, k in spec]
    i = 0
    while i < len(batch):
        j = _run_end(batch, i)
        run = batch[i:j]
        assert 1 <= len(run) <= GSO_MAX_SEGMENTS
        assert len({to for _, to in run}) == 1
        first = len(run[0][0])
        assert all(len(d) == first for d, _ in run[:-1])  # only the last may be shorter
        assert len(run[-1][0]) <= first
        assert len(run) == 1 or sum(len(d) for d, _ in run) <= 65000
        i = j
    assert i == len(batch)


class NoGsoSocket:
    """A socket whose kernel has no UDP_SEGMENT (the sendmsg option is refused)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def sendmsg(self, *args: Any) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    def sendto(self, data: bytes, addr: Addr) -> int:
        return self.real.sendto(data, addr)


def test_a_refused_segmented_send_says_what_is_unsent(receivers: list[socket.socket]) -> None:
    a = receivers[0].getsockname()
    batch = [(b"single", a), (b"1" * 100, a), (b"2" * 100, a)]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real,
        pytest.raises(GsoRefused) as info,
    ):
        send_batch(NoGsoSocket(real), batch)  # type: ignore[arg-type]
    assert info.value.unsent == 1
    assert drain(receivers[0]) == [b"single"]


async def test_our_socket_falls_back_to_sendto_without_gso(
    receivers: list[socket.socket],
) -> None:
    a = receivers[0].getsockname()
    batch = [(bytes([i]) * 500, a) for i in range(10)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real:
        transport = _UDPTransport(NoGsoSocket(real))  # type: ignore[arg-type]
        await transport.send_datagrams(batch)
        assert not transport.segment
        await transport.send_datagrams(batch)  # and stays on sendto
    await trio.lowlevel.checkpoint()
    assert drain(receivers[0]) == [d for d, _ in batch] * 2


async def test_the_dht_socket_segments_only_when_it_is_a_plain_socket(
    receivers: list[socket.socket],
) -> None:
    """Through a SOCKS5 relay (`RelayedSocket`, whose ``sendto`` wraps for the relay) a
    segmented ``sendmsg`` would go straight to the peer: `send_datagrams` must send
    every datagram through the relay instead. A plain DHT socket segments."""
    peer, relay = receivers
    batch = [(bytes([i]) * 1198, peer.getsockname()) for i in range(8)]
    for relayed in (False, True):
        rng = random.Random(3)
        sock = RelayedSocket() if relayed else None
        service = DHTService(DHTNode(random_id(rng), rng, trio.current_time()), sock=sock)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.serve)
            if isinstance(sock, RelayedSocket):
                sock.relay = relay.getsockname()
            await service.send_datagrams(batch)
            assert service.statistics().handler_out == len(batch)
            nursery.cancel_scope.cancel()
        got_peer, got_relay = drain(peer), drain(relay)
        if relayed:
            assert got_peer == []  # nothing went direct
            assert [socks5.decode_udp(w).data for w in got_relay] == [d for d, _ in batch]
        else:
            assert got_peer == [d for d, _ in batch]
