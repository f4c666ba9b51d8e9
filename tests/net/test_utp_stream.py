"""UTPStream over real UDP sockets on loopback: trio's stream conformance, MSE on top."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from shoal.net.mse_stream import MSEStream
from shoal.net.utp_socket import UTPSocket, open_utp_socket
from shoal.net.utp_transport import is_utp
from shoal.peer.mse import CryptoMethod, EncryptionPolicy
from shoal.utp import MSS, UTPConfig

if TYPE_CHECKING:
    from shoal.net.utp_stream import UTPStream

SKEY = bytes(range(20))


async def _pair(a: UTPSocket, b: UTPSocket) -> tuple[UTPStream, UTPStream]:
    assert b.local_address is not None
    client = await a.connect(b.local_address)
    server = await b.accept()
    return client, server


async def test_check_two_way_stream() -> None:
    async with open_utp_socket() as a, open_utp_socket() as b:

        async def stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
            return await _pair(a, b)

        await trio.testing.check_two_way_stream(stream_maker, None)


async def test_check_half_closeable_stream() -> None:
    async with open_utp_socket() as a, open_utp_socket() as b:

        async def stream_maker() -> tuple[
            trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream
        ]:
            return await _pair(a, b)

        await trio.testing.check_half_closeable_stream(stream_maker, None)


async def test_bulk_transfer_both_ways_with_small_buffers() -> None:
    config = UTPConfig(recv_buffer=16 * MSS, send_buffer=8 * MSS)
    payload = random.Random(3).randbytes(3_000_000)
    async with open_utp_socket(config=config) as a, open_utp_socket(config=config) as b:
        client, server = await _pair(a, b)

        async def pump(src: UTPStream, dst: UTPStream, out: list[bytes]) -> None:
            async with trio.open_nursery() as nursery:

                async def send() -> None:
                    await src.send_all(payload)
                    await src.send_eof()

                nursery.start_soon(send)
                while chunk := await dst.receive_some():
                    out.append(chunk)

        got_ab: list[bytes] = []
        got_ba: list[bytes] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, server, got_ab)
                nursery.start_soon(pump, server, client, got_ba)
        assert b"".join(got_ab) == payload
        assert b"".join(got_ba) == payload
        await client.aclose()
        await server.aclose()


async def test_connect_to_a_silent_port_times_out() -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(("127.0.0.1", 0))
        async with open_utp_socket(config=UTPConfig(syn_resends=0)) as a:
            with pytest.raises(TimeoutError):
                await a.connect(silent.getsockname())


async def test_connect_to_a_refusing_socket_is_refused() -> None:
    async with open_utp_socket() as a, open_utp_socket(accept=False) as b:
        assert b.local_address is not None
        with pytest.raises(ConnectionRefusedError):
            await a.connect(b.local_address)


async def test_remote_abort_breaks_the_stream() -> None:
    async with open_utp_socket() as a, open_utp_socket() as b:
        client, server = await _pair(a, b)
        server.conn.abort(trio.current_time())
        b.poke()
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some()


async def test_mse_runs_over_utp_unchanged() -> None:
    async with open_utp_socket() as a, open_utp_socket() as b:
        client, server = await _pair(a, b)
        policy = EncryptionPolicy(methods=CryptoMethod.RC4, prefer=CryptoMethod.RC4)
        initiator = MSEStream.initiator(client, SKEY, policy=policy, rng=random.Random(1))
        receiver = MSEStream.receiver(server, [SKEY], policy=policy, rng=random.Random(2))
        blob = random.Random(4).randbytes(200_000)
        got = bytearray()

        async def read_all() -> None:
            while len(got) < len(blob):
                got.extend(await receiver.receive_some())

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                await initiator.send_all(blob)
        assert bytes(got) == blob
        assert initiator.crypto_method is CryptoMethod.RC4
        await initiator.aclose()
        await receiver.aclose()


async def test_is_utp_sees_through_mse() -> None:
    async with open_utp_socket() as a, open_utp_socket() as b:
        client, server = await _pair(a, b)
        assert is_utp(client)
        assert is_utp(MSEStream.initiator(client, SKEY, rng=random.Random(1)))
        tcp_like, _ = trio.testing.memory_stream_pair()
        assert not is_utp(tcp_like)
        assert not is_utp(MSEStream.initiator(tcp_like, SKEY, rng=random.Random(1)))
        await client.aclose()
        await server.aclose()


async def test_ipv6_loopback() -> None:
    async with open_utp_socket("::1") as a, open_utp_socket("::1") as b:
        client, server = await _pair(a, b)
        assert client.remote_address[0] == "::1"
        with trio.fail_after(20):
            await client.send_all(b"over v6" * 1000)
            await client.send_eof()
            got = bytearray()
            while chunk := await server.receive_some():
                got += chunk
        assert got == b"over v6" * 1000
        await client.aclose()
        await server.aclose()
