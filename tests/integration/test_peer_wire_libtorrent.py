"""Peer-wire interop with libtorrent 2.1.1: our codecs against a real seed on 127.0.0.1.

Over one plaintext TCP connection the shoal side sends a handshake with the DHT, Fast
and extension-protocol bits, an extended handshake and ``interested``; it then fetches
the info dict with ``ut_metadata`` and two blocks with ``request``. Every byte libtorrent
sends goes through `HandshakeParser`, `FrameDecoder` (with the piece count set, so all
limits are live) and the extension decoders. DHT, LSD, UPnP, NAT-PMP and uTP are off
and the session listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.ids import InfoHash, PeerId
from shoal.peer.extension import (
    EXTENDED_HANDSHAKE_ID,
    UT_METADATA,
    ExtendedHandshake,
    MetadataData,
    MetadataRequest,
    decode_extended_handshake,
    decode_metadata_message,
    encode_extended_handshake,
    encode_metadata_message,
)
from shoal.peer.frames import FrameDecoder
from shoal.peer.handshake import Handshake, HandshakeParser, ReservedBits, encode_handshake
from shoal.peer.messages import (
    BLOCK_SIZE,
    BitfieldMessage,
    Extended,
    HaveAll,
    Interested,
    Message,
    Piece,
    Request,
    Unchoke,
    encode_message,
)
from shoal.swarm import Bitfield
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("libtorrent is not installed", allow_module_level=True)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

PE_DISABLED = 2  # libtorrent settings_pack::enc_policy: plaintext BitTorrent only
DATA = bytes(range(256)) * 160  # 40 KiB: pieces of 16, 16 and 8 KiB
NUM_PIECES = 3
OUR_UT_METADATA = 3  # the extended id we ask libtorrent to use towards us


@dataclass
class Seed:
    session: Any
    handle: Any
    info: bytes
    port: int


@contextmanager
def plaintext_seed(tmp_path: Path) -> Iterator[Seed]:
    (tmp_path / "f.bin").write_bytes(DATA)
    info = single_file_info(DATA, BLOCK_SIZE)
    settings = loopback_settings(utp=False)
    settings |= {"in_enc_policy": PE_DISABLED, "out_enc_policy": PE_DISABLED}
    with lt_torrent_session(lt, info, tmp_path, settings) as (session, handle):
        yield Seed(session, handle, info, session.listen_port())


class Peer:
    """The shoal side of one connection: a stream plus our decoders."""

    def __init__(self, stream: trio.SocketStream, decoder: FrameDecoder) -> None:
        self.stream = stream
        self.decoder = decoder
        self.received: list[Message] = []

    async def send(self, *msgs: Message) -> None:
        await self.stream.send_all(b"".join(encode_message(m) for m in msgs))

    async def next_message(self) -> Message:
        while (msg := self.decoder.next_message()) is None:
            data = await self.stream.receive_some(65536)
            assert data, "libtorrent closed the connection"
            self.decoder.receive_data(data)
        self.received.append(msg)
        return msg


async def connect(seed: Seed, info_hash: bytes) -> tuple[Peer, Handshake]:
    stream = await trio.open_tcp_stream("127.0.0.1", seed.port)
    ours = Handshake(
        InfoHash(info_hash),
        PeerId(b"-SH0001-interop-test"),
        ReservedBits.DHT | ReservedBits.FAST | ReservedBits.EXTENSION_PROTOCOL,
    )
    await stream.send_all(encode_handshake(ours))
    parser = HandshakeParser(expected_info_hash=info_hash)
    while parser.handshake is None:
        data = await stream.receive_some(65536)
        assert data, "libtorrent closed the connection during the handshake"
        parser.receive_data(data)
    decoder = FrameDecoder(num_pieces=NUM_PIECES)
    if parser.trailing_data:
        decoder.receive_data(parser.trailing_data)
    return Peer(stream, decoder), parser.handshake


async def test_handshake_metadata_and_blocks_with_libtorrent(tmp_path: Path) -> None:
    with plaintext_seed(tmp_path) as seed, trio.fail_after(30):
        info_hash = hashlib.sha1(seed.info).digest()
        while not seed.handle.status().is_seeding:  # noqa: ASYNC110 - libtorrent's threads
            await trio.sleep(0.05)
        peer, theirs = await connect(seed, info_hash)
        async with peer.stream:
            assert theirs.info_hash == info_hash
            assert ReservedBits.EXTENSION_PROTOCOL in theirs.reserved
            assert ReservedBits.FAST in theirs.reserved

            ours = ExtendedHandshake(m={UT_METADATA: OUR_UT_METADATA}, v="shoal interop")
            await peer.send(
                Extended(EXTENDED_HANDSHAKE_ID, encode_extended_handshake(ours)), Interested()
            )
            their_ext: ExtendedHandshake | None = None
            have: Bitfield | None = None
            unchoked = False
            while their_ext is None or have is None or not unchoked:
                msg = await peer.next_message()
                if isinstance(msg, Extended) and msg.extended_id == EXTENDED_HANDSHAKE_ID:
                    their_ext = decode_extended_handshake(msg.payload)
                elif isinstance(msg, HaveAll):
                    have = Bitfield.all(NUM_PIECES)
                elif isinstance(msg, BitfieldMessage):
                    have = Bitfield.from_bytes(msg.bitfield, NUM_PIECES)
                elif isinstance(msg, Unchoke):
                    unchoked = True
            assert have.has_all()
            assert their_ext.metadata_size == len(seed.info)
            assert their_ext.yourip is not None
            assert str(their_ext.yourip) == "127.0.0.1"
            lt_metadata_id = their_ext.m[UT_METADATA]
            assert 0 < lt_metadata_id < 256

            await peer.send(
                Extended(lt_metadata_id, encode_metadata_message(MetadataRequest(0))),
                Request(0, 0, BLOCK_SIZE),
                Request(2, 0, len(DATA) - 2 * BLOCK_SIZE),
            )
            metadata: MetadataData | None = None
            blocks: dict[int, bytes] = {}
            while metadata is None or len(blocks) < 2:
                msg = await peer.next_message()
                if isinstance(msg, Extended) and msg.extended_id == OUR_UT_METADATA:
                    decoded = decode_metadata_message(msg.payload)
                    assert isinstance(decoded, MetadataData)
                    metadata = decoded
                elif isinstance(msg, Piece):
                    assert msg.begin == 0
                    blocks[msg.index] = bytes(msg.block)
            assert metadata == MetadataData(0, len(seed.info), seed.info)
            assert blocks == {0: DATA[:BLOCK_SIZE], 2: DATA[2 * BLOCK_SIZE :]}
            assert peer.decoder.unknown_messages == 0
