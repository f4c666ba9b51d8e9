"""Encryption policy at the edges (issue 5), over loopback sockets.

test_dialer_listener.py pairs our own dialer and listener. Here the other side is a
hand-written peer, to pin the cases that pairing cannot reach: a REQUIRE listener
must refuse MSE that offers header obfuscation only; a PREFER listener takes it
(unencrypted); a PREFER dialer falls back to plaintext on a second connection when
the peer hangs up on MSE, and a REQUIRE dialer never does.
"""

from __future__ import annotations

import random

import pytest
import trio

from shoal.config import EncryptionMode
from shoal.errors import HandshakeError
from shoal.ids import InfoHash, PeerId
from shoal.net.dialer import Dialer, PeerLink
from shoal.net.listener import Listener
from shoal.net.mse_stream import MSEStream
from shoal.peer.handshake import Handshake, encode_handshake
from shoal.peer.mse import CryptoMethod, EncryptionPolicy

IH = InfoHash(bytes(range(1, 21)))
SERVER_ID = PeerId(b"-SH0001-server000000")
CLIENT_ID = PeerId(b"-SH0001-client000000")
PSTR = b"\x13BitTorrent protocol"
Addr = tuple[str, int]


async def _listen(nursery: trio.Nursery, mode: EncryptionMode, got: list[PeerLink]) -> Addr:
    listener = Listener(SERVER_ID, host="127.0.0.1", port=0, encryption=mode, rng=random.Random(1))

    def accept(link: PeerLink) -> bool:
        got.append(link)
        return False  # the listener closes it; we only look at what was negotiated

    listener.register(IH, accept)
    address: Addr = await nursery.start(listener.serve)
    return address


async def _dial_mse(addr: Addr, methods: CryptoMethod) -> MSEStream:
    """An MSE initiator offering `methods`, our BitTorrent handshake as IA; not started."""
    tcp = await trio.open_tcp_stream(*addr)
    ours = encode_handshake(Handshake(IH, CLIENT_ID))
    policy = EncryptionPolicy(methods=methods, prefer=CryptoMethod.RC4)
    return MSEStream.initiator(tcp, bytes(IH), policy=policy, initial_payload=ours)


async def _read_until_eof(stream: trio.abc.Stream) -> bytes:
    got = bytearray()
    while chunk := await stream.receive_some(4096):
        got += chunk
    return bytes(got)


async def test_require_listener_refuses_header_obfuscation_only() -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        addr = await _listen(nursery, EncryptionMode.REQUIRE, got)
        with trio.fail_after(5):
            async with await _dial_mse(addr, CryptoMethod.PLAINTEXT) as mse:
                # B accepts RC4 only, finds no common method and hangs up.
                with pytest.raises((HandshakeError, trio.BrokenResourceError)):
                    await mse.do_handshake()
        assert got == []
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("mode", "offered", "encrypted"),
    [
        (EncryptionMode.PREFER, CryptoMethod.PLAINTEXT, False),
        (EncryptionMode.PREFER, CryptoMethod.RC4, True),
        (EncryptionMode.REQUIRE, CryptoMethod.RC4 | CryptoMethod.PLAINTEXT, True),
    ],
)
async def test_listener_records_the_negotiated_method(
    mode: EncryptionMode, offered: CryptoMethod, encrypted: bool
) -> None:
    got: list[PeerLink] = []
    async with trio.open_nursery() as nursery:
        addr = await _listen(nursery, mode, got)
        with trio.fail_after(5):
            async with await _dial_mse(addr, offered) as mse:
                await mse.do_handshake()
                assert (mse.crypto_method is CryptoMethod.RC4) is encrypted
                reply = await _read_until_eof(mse)  # their handshake, then the close
        assert reply[:20] == PSTR
        assert reply[48:68] == SERVER_ID
        assert len(got) == 1
        assert got[0].encrypted is encrypted
        assert got[0].remote.peer_id == CLIENT_ID
        nursery.cancel_scope.cancel()


async def _plaintext_only_peer(
    listener: trio.SocketListener,
    firsts: list[bytes],
    expected: int,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[Addr],
) -> None:
    """A peer without MSE: hangs up on anything but a plain BitTorrent handshake."""
    host, port = listener.socket.getsockname()[:2]
    task_status.started((str(host), int(port)))
    async with listener:
        for _ in range(4):  # bounded: no test here dials more often
            stream = await listener.accept()
            async with stream:
                first = await stream.receive_some(len(PSTR))
                firsts.append(bytes(first))
                if len(firsts) == expected:
                    done.set()
                if first == PSTR:
                    await stream.send_all(encode_handshake(Handshake(IH, SERVER_ID)))
                    await stream.receive_some(1)  # hold it open until the dialer leaves


@pytest.mark.parametrize(
    ("mode", "connections"),
    [(EncryptionMode.PREFER, 2), (EncryptionMode.DISABLE, 1), (EncryptionMode.REQUIRE, 1)],
)
async def test_dialer_fallback_only_when_preferred(mode: EncryptionMode, connections: int) -> None:
    firsts: list[bytes] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        addr = await nursery.start(_plaintext_only_peer, listener, firsts, connections, done)
        dialer = Dialer(CLIENT_ID, encryption=mode, rng=random.Random(3))
        with trio.fail_after(5):
            if mode is EncryptionMode.REQUIRE:
                with pytest.raises((HandshakeError, trio.BrokenResourceError)):
                    await dialer.dial(addr, IH)
            else:
                link = await dialer.dial(addr, IH)
                assert not link.encrypted
                assert link.remote.peer_id == SERVER_ID
                await link.stream.aclose()
            await done.wait()  # dial() made every attempt before it returned
        assert len(firsts) == connections
        # Only the last attempt (if any) is plaintext; an MSE attempt starts with Ya.
        assert [f == PSTR for f in firsts] == [
            *([False] * (connections - 1)),
            mode is not EncryptionMode.REQUIRE,
        ]
        nursery.cancel_scope.cancel()


def test_responder_choice_when_both_methods_are_offered() -> None:
    """As libtorrent (``prefer_rc4 = false``): PREFER picks header obfuscation, REQUIRE
    RC4; a dialer offering one method gets that one if we accept it."""
    both = int(CryptoMethod.PLAINTEXT | CryptoMethod.RC4)
    assert EncryptionMode.PREFER.policy().select(both) is CryptoMethod.PLAINTEXT
    assert EncryptionMode.PREFER.policy().select(int(CryptoMethod.RC4)) is CryptoMethod.RC4
    assert EncryptionMode.REQUIRE.policy().select(both) is CryptoMethod.RC4
    assert EncryptionMode.REQUIRE.policy().select(int(CryptoMethod.PLAINTEXT)) is None
