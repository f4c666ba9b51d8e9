"""Dialer and Listener over real loopback sockets: encryption modes, dispatch, refusals."""

from __future__ import annotations

import random

import pytest
import trio

from shoal.config import EncryptionMode
from shoal.errors import HandshakeError
from shoal.ids import InfoHash, PeerId
from shoal.net.dialer import Dialer, PeerLink
from shoal.net.listener import Listener
from shoal.peer.handshake import Handshake, encode_handshake

IH = InfoHash(bytes(range(20)))
OTHER = InfoHash(bytes(20))
SERVER_ID = PeerId(b"-SH0001-server000000")
CLIENT_ID = PeerId(b"-SH0001-client000000")


async def _serve(nursery: trio.Nursery, mode: EncryptionMode, got: list[PeerLink]) -> Listener:
    listener = Listener(SERVER_ID, host="127.0.0.1", port=0, encryption=mode, rng=random.Random(1))

    def accept(link: PeerLink) -> bool:
        got.append(link)
        nursery.start_soon(_echo, link)
        return True

    listener.register(IH, accept)
    await nursery.start(listener.serve)
    return listener


async def _echo(link: PeerLink) -> None:
    async with link.stream:
        data = await link.stream.receive_some(100)
        await link.stream.send_all(data)


MODES = [
    # A PREFER listener offered both methods picks header obfuscation, as libtorrent
    # does (docs/encryption.md): MSE, but no RC4 over the payload.
    (EncryptionMode.PREFER, EncryptionMode.PREFER, False),
    (EncryptionMode.REQUIRE, EncryptionMode.PREFER, True),
    (EncryptionMode.PREFER, EncryptionMode.REQUIRE, True),
    (EncryptionMode.REQUIRE, EncryptionMode.REQUIRE, True),
    (EncryptionMode.DISABLE, EncryptionMode.DISABLE, False),
    (EncryptionMode.DISABLE, EncryptionMode.PREFER, False),
    # PREFER dialling a DISABLE listener: MSE fails, the plaintext retry succeeds.
    (EncryptionMode.PREFER, EncryptionMode.DISABLE, False),
]


@pytest.mark.parametrize(("dial_mode", "listen_mode", "encrypted"), MODES)
async def test_modes_connect(
    dial_mode: EncryptionMode, listen_mode: EncryptionMode, encrypted: bool
) -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        listener = await _serve(nursery, listen_mode, got)
        assert listener.address is not None
        dialer = Dialer(CLIENT_ID, encryption=dial_mode, rng=random.Random(2))
        with trio.fail_after(5):
            link = await dialer.dial(listener.address, IH)
            assert link.remote.peer_id == SERVER_ID
            assert link.encrypted is encrypted
            assert not link.incoming
            await link.stream.send_all(b"ping")
            assert await link.stream.receive_some(100) == b"ping"
            await link.stream.aclose()
        assert got[0].remote.peer_id == CLIENT_ID
        assert got[0].encrypted is encrypted
        assert got[0].incoming
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("dial_mode", "listen_mode"),
    [
        (EncryptionMode.DISABLE, EncryptionMode.REQUIRE),
        (EncryptionMode.REQUIRE, EncryptionMode.DISABLE),
    ],
)
async def test_incompatible_modes_fail(
    dial_mode: EncryptionMode, listen_mode: EncryptionMode
) -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        listener = await _serve(nursery, listen_mode, got)
        assert listener.address is not None
        dialer = Dialer(CLIENT_ID, encryption=dial_mode)
        with trio.fail_after(5), pytest.raises((HandshakeError, trio.BrokenResourceError)):
            await dialer.dial(listener.address, IH)
        assert got == []
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("mode", [EncryptionMode.PREFER, EncryptionMode.DISABLE])
async def test_unknown_info_hash_is_closed(mode: EncryptionMode) -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        listener = await _serve(nursery, EncryptionMode.PREFER, got)
        assert listener.address is not None
        dialer = Dialer(CLIENT_ID, encryption=mode)
        with trio.fail_after(5), pytest.raises((HandshakeError, trio.BrokenResourceError)):
            await dialer.dial(listener.address, OTHER)
        assert got == []
        await trio.testing.wait_all_tasks_blocked()
        assert listener.refused >= 1
        nursery.cancel_scope.cancel()


async def test_self_connection_refused() -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        listener = await _serve(nursery, EncryptionMode.PREFER, got)
        assert listener.address is not None
        same = Dialer(SERVER_ID, encryption=EncryptionMode.DISABLE)
        with trio.fail_after(5), pytest.raises((HandshakeError, trio.BrokenResourceError)):
            await same.dial(listener.address, IH)
        own = Dialer(CLIENT_ID, local_addrs=frozenset({listener.address}))
        with pytest.raises(HandshakeError):
            await own.dial(listener.address, IH)
        assert got == []
        nursery.cancel_scope.cancel()


async def test_connect_refused_is_oserror() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    dialer = Dialer(CLIENT_ID, encryption=EncryptionMode.PREFER)
    with trio.fail_after(5), pytest.raises(OSError):
        await dialer.dial(("127.0.0.1", port), IH)


async def test_silent_peer_hits_the_listener_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        listener = await _serve(nursery, EncryptionMode.PREFER, got)
        assert listener.address is not None
        stream = await trio.open_tcp_stream(*listener.address)
        with trio.fail_after(60):
            assert await stream.receive_some(10) == b""  # closed by the listener's deadline
        assert listener.refused == 1
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_not_ready_torrent_refuses_before_answering() -> None:
    got: list[PeerLink] = []
    asked: list[tuple[str, int]] = []
    listener = Listener(SERVER_ID, host="127.0.0.1", port=0, encryption=EncryptionMode.DISABLE)

    def ready(remote: Handshake, addr: tuple[str, int]) -> bool:
        assert remote.peer_id == CLIENT_ID
        asked.append(addr)
        return False

    listener.register(IH, got.append, ready)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        address = await nursery.start(listener.serve)
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(encode_handshake(Handshake(IH, CLIENT_ID)))
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""  # closed without our handshake
        await stream.aclose()
        assert len(asked) == 1
        assert got == []
        nursery.cancel_scope.cancel()
