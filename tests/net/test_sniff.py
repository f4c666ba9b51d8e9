"""Inbound sniffing (plain BitTorrent vs MSE) and PrefixedStream."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from shoal.errors import HandshakeError
from shoal.net.mse_stream import MSEStream
from shoal.net.sniff import BT_PROTOCOL_HEADER, PrefixedStream, sniff_inbound
from shoal.peer.mse import CryptoMethod, EncryptionPolicy

from .lt_seed import PE_PLAINTEXT, PE_RC4, bt_handshake, lt_seed, wait_until_seeding

if TYPE_CHECKING:
    from pathlib import Path

SKEY = bytes(range(20))
BT_HANDSHAKE = BT_PROTOCOL_HEADER + bytes(8) + SKEY + b"-SH0001-abcdefghijkl"


async def test_prefixed_stream_conformance() -> None:
    async def stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        x, y = trio.testing.memory_stream_pair()
        return PrefixedStream(b"", x), PrefixedStream(b"", y)

    async def clogged_stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        x, y = trio.testing.lockstep_stream_pair()
        return PrefixedStream(b"", x), PrefixedStream(b"", y)

    await trio.testing.check_two_way_stream(stream_maker, clogged_stream_maker)


async def test_prefixed_stream_serves_prefix_first() -> None:
    x, y = trio.testing.memory_stream_pair()
    s = PrefixedStream(b"abcdef", y)
    await x.send_all(b"ghi")
    assert await s.receive_some(4) == b"abcd"
    assert await s.receive_some() == b"ef"
    assert await s.receive_some() == b"ghi"
    await s.send_all(b"back")
    assert await x.receive_some() == b"back"
    await s.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await s.receive_some()
    with pytest.raises(ValueError):
        await s.receive_some(0)


async def test_plaintext_peer_gets_its_bytes_back() -> None:
    x, y = trio.testing.memory_stream_pair()
    await x.send_all(BT_HANDSHAKE + b"more")
    found = await sniff_inbound(y, skeys=[SKEY])
    assert found.method is None
    assert found.skey is None
    got = bytearray()
    while len(got) < len(BT_HANDSHAKE) + 4:
        got += await found.stream.receive_some()
    assert got == BT_HANDSHAKE + b"more"


async def test_plaintext_one_byte_at_a_time() -> None:
    x, y = trio.testing.memory_stream_pair()
    found_box: list[object] = []

    async def server() -> None:
        found = await sniff_inbound(y, skeys=[SKEY])
        found_box.append(found.method)
        assert await found.stream.receive_some(20) == BT_PROTOCOL_HEADER

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        for byte in BT_PROTOCOL_HEADER:
            await x.send_all(bytes([byte]))
            await trio.testing.wait_all_tasks_blocked()
    assert found_box == [None]


async def test_plaintext_refused_by_policy() -> None:
    x, y = trio.testing.memory_stream_pair()
    await x.send_all(BT_HANDSHAKE)
    with pytest.raises(HandshakeError, match="plaintext"):
        await sniff_inbound(y, skeys=[SKEY], policy=EncryptionPolicy(allow_unencrypted=False))


@pytest.mark.parametrize("method", [CryptoMethod.RC4, CryptoMethod.PLAINTEXT])
async def test_mse_peer_is_detected_and_handshaken(method: CryptoMethod) -> None:
    x, y = trio.testing.memory_stream_pair()
    policy = EncryptionPolicy(methods=method, prefer=method, allow_unencrypted=False)
    a = MSEStream.initiator(x, SKEY, policy=policy, initial_payload=BT_HANDSHAKE)

    async def dial() -> None:
        await a.do_handshake()
        await a.send_all(b"bitfield")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dial)
        found = await sniff_inbound(y, skeys=[bytes(20), SKEY], policy=policy)
    assert found.method is method
    assert found.skey == SKEY
    got = bytearray()
    while len(got) < len(BT_HANDSHAKE) + 8:
        got += await found.stream.receive_some()
    assert got == BT_HANDSHAKE + b"bitfield"


async def test_mse_prefix_that_looks_like_the_protocol_string() -> None:
    # A DH key starting with 0x13 'B' ... must still be treated as MSE once it diverges.
    x, y = trio.testing.memory_stream_pair()
    await x.send_all(BT_PROTOCOL_HEADER[:5] + bytes(1000))
    with pytest.raises(HandshakeError, match="sync marker"):
        await sniff_inbound(y, skeys=[SKEY], rng=random.Random(0))


async def test_eof_before_decision() -> None:
    x, y = trio.testing.memory_stream_pair()
    await x.send_all(BT_PROTOCOL_HEADER[:3])
    await x.aclose()
    with pytest.raises(HandshakeError, match="closed"):
        await sniff_inbound(y, skeys=[SKEY])


async def test_garbage_is_refused_within_the_window() -> None:
    x, y = trio.testing.memory_stream_pair()
    await x.send_all(random.Random(3).randbytes(2000))
    with pytest.raises(HandshakeError, match="sync marker"):
        await sniff_inbound(y, skeys=[SKEY], rng=random.Random(0))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("level", "method"), [(PE_RC4, CryptoMethod.RC4), (PE_PLAINTEXT, CryptoMethod.PLAINTEXT)]
)
async def test_interop_libtorrent_dials(tmp_path: Path, level: int, method: CryptoMethod) -> None:
    """libtorrent (encryption forced) dials our listener; we sniff MSE and talk."""
    with lt_seed(tmp_path, level) as seed:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with listeners[0]:
            port = listeners[0].socket.getsockname()[1]
            with trio.fail_after(20):
                await wait_until_seeding(seed)
                seed.handle.connect_peer(("127.0.0.1", port))
                transport = await listeners[0].accept()
                found = await sniff_inbound(transport, skeys=[bytes(20), seed.info_hash])
                assert found.method is method
                assert found.skey == seed.info_hash
                got = bytearray()
                while len(got) < 68:
                    got += await found.stream.receive_some()
                assert got[:20] == BT_PROTOCOL_HEADER
                assert got[28:48] == seed.info_hash
                await found.stream.send_all(bt_handshake(seed.info_hash))
                # Then its bitfield (BEP 3, id 5): all three pieces, spare bits clear.
                while len(got) < 68 + 6:
                    chunk = await found.stream.receive_some()
                    assert chunk, "libtorrent hung up"
                    got += chunk
                assert got[68 : 68 + 6] == b"\x00\x00\x00\x02\x05\xe0"
            await found.stream.aclose()
