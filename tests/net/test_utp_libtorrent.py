"""uTP interop with a real, uTP-only libtorrent 2.1 on 127.0.0.1 (TCP off both ways).

A passing test proves libtorrent and our engine agree on the wire: header, connection
ids, the SYN-ACK sequence numbers, selective ACKs and FIN. We dial libtorrent and take
a whole torrent (plain and with MSE RC4 forced), and libtorrent dials us.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.net.mse_stream import MSEStream
from shoal.net.utp_socket import open_utp_socket
from tests.net.lt_utp import PIECE, info_hash_of, utp_only_seed, wait_seeding

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

BLOCK = 16384


def handshake(info_hash: bytes) -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-SH0001-utputputputp"


class _Reader:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some()
            assert chunk, "remote hung up"
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def message(self) -> tuple[int, bytes]:
        (length,) = struct.unpack(">I", await self.exactly(4))
        if length == 0:
            return -1, b""
        body = await self.exactly(length)
        return body[0], body[1:]


async def leech(stream: trio.abc.Stream, info_hash: bytes, size: int) -> bytes:
    """A minimal BEP 3 leecher: handshake, interested, request every block, collect."""
    reader = _Reader(stream)
    await stream.send_all(handshake(info_hash))
    theirs = await reader.exactly(68)
    assert theirs[28:48] == info_hash
    await stream.send_all(struct.pack(">IB", 1, 2))  # interested
    out = bytearray(size)
    blocks = [(i, min(BLOCK, size - i)) for i in range(0, size, BLOCK)]
    pending = 0
    unchoked = False
    got = 0
    while got < size:
        kind, body = await reader.message()
        if kind == 1:
            unchoked = True
        elif kind == 7:
            index, begin = struct.unpack_from(">II", body)
            offset = index * PIECE + begin
            out[offset : offset + len(body) - 8] = body[8:]
            got += len(body) - 8
            pending -= 1
        while unchoked and blocks and pending < 64:
            offset, length = blocks.pop(0)
            index, begin = divmod(offset, PIECE)
            await stream.send_all(struct.pack(">IBIII", 13, 6, index, begin, length))
            pending += 1
    return bytes(out)


@pytest.mark.parametrize("rc4", [False, True], ids=["plain", "rc4"])
async def test_download_a_torrent_from_utp_only_libtorrent(tmp_path: Path, rc4: bool) -> None:
    size = 2 << 20
    with utp_only_seed(tmp_path, size, rc4=rc4) as (session, handle, info, data):
        info_hash = info_hash_of(info)
        async with open_utp_socket() as sock:
            with trio.fail_after(60):
                await wait_seeding(handle)
                stream: trio.abc.Stream = await sock.connect(("127.0.0.1", session.listen_port()))
                if rc4:
                    stream = MSEStream.initiator(stream, info_hash)
                got = await leech(stream, info_hash, size)
            assert got == data
            if isinstance(stream, MSEStream):
                assert stream.crypto_method.name == "RC4"
            await stream.aclose()


async def test_utp_only_libtorrent_dials_us(tmp_path: Path) -> None:
    with utp_only_seed(tmp_path, 1 << 16, rc4=False) as (_session, handle, info, _):
        info_hash = info_hash_of(info)
        async with open_utp_socket() as sock:
            assert sock.local_address is not None
            with trio.fail_after(30):
                await wait_seeding(handle)
                handle.connect_peer(sock.local_address)
                stream = await sock.accept()
                reader = _Reader(stream)
                theirs = await reader.exactly(68)
                assert theirs[:20] == b"\x13BitTorrent protocol"
                assert theirs[28:48] == info_hash
                await stream.send_all(handshake(info_hash))
                # A seed answers with its bitfield: the stream works both ways.
                kind, _ = await reader.message()
                while kind in (20, -1):  # extension handshake / keep-alive first
                    kind, _ = await reader.message()
                assert kind in (5, 14)  # bitfield, or have_all
            await stream.aclose()
