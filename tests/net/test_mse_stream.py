"""MSEStream: trio's generic stream checks, handshake lifecycle, BROKEN rules."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import HandshakeError, NeedHandshakeError
from shoal.net.mse_stream import MSEStream
from shoal.peer.mse import CryptoMethod, EncryptionPolicy

from .lt_seed import PE_PLAINTEXT, PE_RC4, bt_handshake, lt_seed, wait_until_seeding

if TYPE_CHECKING:
    from pathlib import Path

SKEY = bytes(range(20))
BT_HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + SKEY + b"-SH0001-abcdefghijkl"
PairMaker = Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]


def mse_pair(
    make_transport: PairMaker = trio.testing.memory_stream_pair,
    *,
    method: CryptoMethod = CryptoMethod.RC4,
    initial_payload: bytes = b"",
    seed: int = 0,
) -> tuple[MSEStream, MSEStream]:
    ta, tb = make_transport()
    policy = EncryptionPolicy(methods=method, prefer=method)
    a = MSEStream.initiator(
        ta, SKEY, policy=policy, initial_payload=initial_payload, rng=random.Random(seed)
    )
    b = MSEStream.receiver(tb, [SKEY], policy=policy, rng=random.Random(seed + 1))
    return a, b


async def handshake_both(a: MSEStream, b: MSEStream) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.do_handshake)
        nursery.start_soon(b.do_handshake)


@pytest.mark.parametrize("method", [CryptoMethod.RC4, CryptoMethod.PLAINTEXT])
async def test_generic_stream_conformance(method: CryptoMethod) -> None:
    # As trio's test_SSLStream_generic: memory pair for most checks, a lockstep
    # (unbuffered) pair for the "clogged" wait_send_all_might_not_block checks.
    async def stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        a, b = mse_pair(method=method)
        await handshake_both(a, b)
        return a, b

    async def clogged_stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        a, b = mse_pair(trio.testing.lockstep_stream_pair, method=method)
        await handshake_both(a, b)
        return a, b

    await trio.testing.check_two_way_stream(stream_maker, clogged_stream_maker)


async def test_lazy_handshake_and_properties() -> None:
    a, b = mse_pair()
    with pytest.raises(NeedHandshakeError):
        _ = a.crypto_method
    with pytest.raises(NeedHandshakeError):
        _ = b.skey

    async def talk() -> None:
        await a.send_all(b"ping")
        assert await a.receive_some() == b"pong"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(talk)
        assert await b.receive_some() == b"ping"
        await b.send_all(b"pong")
    assert a.crypto_method is b.crypto_method is CryptoMethod.RC4
    assert a.skey == b.skey == SKEY
    await a.do_handshake()  # idempotent once done
    await a.aclose()
    await b.aclose()


async def test_concurrent_do_handshake_calls_share_one_run() -> None:
    a, b = mse_pair()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(a.do_handshake)
        nursery.start_soon(b.do_handshake)
        nursery.start_soon(b.do_handshake)
    assert a.crypto_method is CryptoMethod.RC4


async def test_initial_payload_and_trailing_bytes_come_first() -> None:
    a, b = mse_pair(initial_payload=BT_HANDSHAKE)
    await handshake_both(a, b)
    await a.send_all(b"after")
    # IA is served in pieces honouring max_bytes, then the payload stream.
    got = await b.receive_some(20)
    assert got == BT_HANDSHAKE[:20]
    assert await b.receive_some(1000) == BT_HANDSHAKE[20:]
    assert await b.receive_some(1000) == b"after"


@pytest.mark.parametrize(
    ("method", "raw"), [(CryptoMethod.RC4, False), (CryptoMethod.PLAINTEXT, True)]
)
async def test_payload_on_the_wire(method: CryptoMethod, raw: bool) -> None:
    a, b = mse_pair(method=method)
    await handshake_both(a, b)
    secret = b"the piece data" * 10
    await a.send_all(secret)
    on_wire = await b.transport_stream.receive_some()
    assert (on_wire == secret) is raw
    assert len(on_wire) == len(secret)


async def test_large_sends_and_choppy_transport() -> None:
    a, b = mse_pair(lambda: choppy_pair(random.Random(1)))
    data = random.Random(2).randbytes(300_000)  # > SEND_CHUNK: several encrypted writes

    async def receive_all() -> bytes:
        got = bytearray()
        while len(got) < len(data):
            got += await b.receive_some(70_000)
        return bytes(got)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, data)
        assert await receive_all() == data


class ChoppyStream(trio.abc.Stream):
    """Deliver at most a random handful of bytes per read, like a slow TCP path."""

    def __init__(self, inner: trio.abc.Stream, rng: random.Random) -> None:
        self.inner = inner
        self.rng = rng

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        limit = self.rng.randint(1, 700)
        return await self.inner.receive_some(min(limit, max_bytes or limit))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


def choppy_pair(rng: random.Random) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    x, y = trio.testing.memory_stream_pair()
    return ChoppyStream(x, rng), ChoppyStream(y, rng)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32), ia=st.binary(max_size=300))
async def test_handshake_over_choppy_transport(seed: int, ia: bytes) -> None:
    rng = random.Random(seed)
    a, b = mse_pair(lambda: choppy_pair(rng), initial_payload=ia, seed=seed)
    await handshake_both(a, b)
    await a.send_all(b"!")
    expected = ia + b"!"
    got = bytearray()
    while len(got) < len(expected):
        got += await b.receive_some()
    assert got == expected


async def test_wrong_skey_breaks_both_sides() -> None:
    ta, tb = trio.testing.memory_stream_pair()
    a = MSEStream.initiator(ta, SKEY, rng=random.Random(0))
    b = MSEStream.receiver(tb, [bytes(20)], rng=random.Random(1))

    async def initiator() -> None:
        with pytest.raises(HandshakeError, match="closed"):
            await a.do_handshake()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(initiator)
        with pytest.raises(HandshakeError, match="SKEY"):
            await b.do_handshake()
        with pytest.raises(trio.BrokenResourceError):
            await b.send_all(b"x")
        await b.aclose()  # the peer sees EOF mid-handshake
    with pytest.raises(trio.BrokenResourceError):
        await a.do_handshake()
    with pytest.raises(trio.BrokenResourceError):
        await a.receive_some()


async def test_cancel_mid_handshake_breaks(autojump_clock: trio.testing.MockClock) -> None:
    a, b = mse_pair()
    with trio.move_on_after(5):
        await a.do_handshake()  # b never answers
    with pytest.raises(trio.BrokenResourceError):
        await a.send_all(b"x")
    with pytest.raises(trio.BrokenResourceError):
        await a.do_handshake()
    await a.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await a.send_all(b"x")
    del b


async def test_cancel_mid_send_breaks_but_mid_receive_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = mse_pair(trio.testing.lockstep_stream_pair)
    await handshake_both(a, b)
    # Nobody reads b, so a lockstep send blocks; the keystream is spent anyway.
    with trio.move_on_after(1):
        await a.send_all(b"x" * 100)
    with pytest.raises(trio.BrokenResourceError):
        await a.send_all(b"y")
    # A receive that is cancelled before any data arrives leaves the stream usable.
    a, b = mse_pair(trio.testing.lockstep_stream_pair)
    await handshake_both(a, b)
    with trio.move_on_after(1):
        await b.receive_some()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"still fine")
        assert await b.receive_some() == b"still fine"


async def test_concurrent_send_all_is_busy() -> None:
    a, b = mse_pair(trio.testing.lockstep_stream_pair)
    await handshake_both(a, b)
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_all, b"1")
            nursery.start_soon(a.send_all, b"2")
    del b


async def test_no_common_method_over_stream() -> None:
    ta, tb = trio.testing.memory_stream_pair()
    a = MSEStream.initiator(ta, SKEY, policy=EncryptionPolicy(methods=CryptoMethod.PLAINTEXT))
    b = MSEStream.receiver(
        tb, [SKEY], policy=EncryptionPolicy(methods=CryptoMethod.RC4, prefer=CryptoMethod.RC4)
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"never arrives")
        with pytest.raises(HandshakeError, match="no common crypto method"):
            await b.receive_some()
        nursery.cancel_scope.cancel()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("level", "method"), [(PE_RC4, CryptoMethod.RC4), (PE_PLAINTEXT, CryptoMethod.PLAINTEXT)]
)
async def test_interop_dial_libtorrent(tmp_path: Path, level: int, method: CryptoMethod) -> None:
    """libtorrent (encryption forced) accepts our handshake, IA and payload."""
    with lt_seed(tmp_path, level) as seed:
        with trio.fail_after(20):
            await wait_until_seeding(seed)
            transport = await trio.open_tcp_stream("127.0.0.1", seed.port)
            mse = MSEStream.initiator(
                transport, seed.info_hash, initial_payload=bt_handshake(seed.info_hash)
            )
            await mse.do_handshake()
            assert mse.crypto_method is method
            got = bytearray()
            while len(got) < 68 + 4:
                chunk = await mse.receive_some()
                assert chunk, "libtorrent hung up"
                got += chunk
        # Its BitTorrent handshake, decrypted, names our torrent; the bitfield follows.
        assert got[:20] == b"\x13BitTorrent protocol"
        assert got[28:48] == seed.info_hash
        assert got[48:56] == b"-LT2110-"
        await mse.aclose()


@pytest.mark.parametrize("method", [CryptoMethod.RC4, CryptoMethod.PLAINTEXT])
async def test_every_call_after_the_handshake_is_still_a_checkpoint(method: CryptoMethod) -> None:
    # The post-handshake fast path skips do_handshake(); each call must still yield.
    a, b = mse_pair(method=method, initial_payload=BT_HANDSHAKE)
    await handshake_both(a, b)
    with trio.testing.assert_checkpoints():
        assert await b.receive_some(10) == BT_HANDSHAKE[:10]  # served from leftovers
    with trio.testing.assert_checkpoints():
        await a.send_all(b"x")
    with trio.testing.assert_checkpoints():
        await a.send_all(b"")
    assert await b.receive_some(100) == BT_HANDSHAKE[10:]
    with trio.testing.assert_checkpoints():
        assert await b.receive_some(100) == b"x"


@pytest.mark.parametrize(
    "make_transport", [trio.testing.memory_stream_pair, trio.testing.lockstep_stream_pair]
)
@pytest.mark.parametrize("method", [CryptoMethod.RC4, CryptoMethod.PLAINTEXT])
async def test_both_roles_over_buffered_and_lockstep_transports(
    make_transport: PairMaker, method: CryptoMethod
) -> None:
    # Lockstep has no buffer at all: each handshake write waits for the peer's read,
    # so this catches a driver that writes and reads in the wrong order.
    a, b = mse_pair(make_transport, method=method, initial_payload=BT_HANDSHAKE, seed=9)
    big = random.Random(4).randbytes(100_000)

    async def a_side() -> None:
        await a.send_all(big)
        assert await receive_exactly(a, 5) == b"reply"

    async def b_side() -> None:
        assert await receive_exactly(b, len(BT_HANDSHAKE) + len(big)) == BT_HANDSHAKE + big
        await b.send_all(b"reply")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a_side)
            nursery.start_soon(b_side)
    assert a.crypto_method is b.crypto_method is method
    await a.aclose()
    await b.aclose()


async def receive_exactly(stream: trio.abc.Stream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = await stream.receive_some(n - len(got))
        assert chunk, "unexpected EOF"
        got += chunk
    return bytes(got)
