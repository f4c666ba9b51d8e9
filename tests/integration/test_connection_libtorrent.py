"""`PeerConnection` + `MetadataAssembler` against libtorrent 2.1.1 on 127.0.0.1.

Both directions over plaintext TCP, driven by a minimal Trio loop written here (the
real peer session lives in ``shoal.net``):

* shoal leeches from a libtorrent seed knowing only the info-hash: BEP 10 handshake,
  BEP 9 metadata through the assembler, ``set_num_pieces``, then every block through
  the adaptive request pipeline, each piece checked against its SHA-1;
* a libtorrent leech downloads from a shoal engine that serves metadata and blocks.

DHT, LSD, UPnP, NAT-PMP and uTP are off; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.ids import InfoHash, PeerId
from shoal.metainfo import InfoDict, parse_info
from shoal.peer import events as ev
from shoal.peer.connection import PeerConnection
from shoal.peer.extension import METADATA_PIECE_SIZE
from shoal.peer.messages import BLOCK_SIZE
from shoal.swarm import Bitfield
from shoal.swarm.metadata import MetadataAssembler, MetadataVerified
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info

from .peers import require_libtorrent

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

pytestmark = pytest.mark.integration

PE_DISABLED = 2  # libtorrent settings_pack::enc_policy: plaintext only
PIECE_LENGTH = 64 * 1024
DATA = random.Random(7).randbytes(3 * 1024 * 1024 + 12345)  # 49 pieces, short last one
OUR_ID = PeerId(b"-SH0100-conn-interop")


def make_info() -> bytes:
    return single_file_info(DATA, PIECE_LENGTH)


def lt_session(info: bytes, save_path: Path) -> AbstractContextManager[tuple[Any, Any]]:
    settings = loopback_settings(utp=False)
    settings |= {"in_enc_policy": PE_DISABLED, "out_enc_policy": PE_DISABLED}
    return lt_torrent_session(require_libtorrent(), info, save_path, settings)


async def pump(conn: PeerConnection, stream: trio.abc.Stream) -> list[ev.PeerEvent]:
    """Write what the engine queued, then read once (or fire its timer)."""
    for buf in conn.data_to_send():
        await stream.send_all(buf)
    timer = conn.get_timer()
    with trio.move_on_at(math.inf if timer is None else timer):
        data = await stream.receive_some(256 * 1024)
        conn.receive_data(data, trio.current_time())
        return list(iter(conn.next_event, None))
    conn.handle_timer(trio.current_time())
    return list(iter(conn.next_event, None))


async def test_shoal_leeches_from_libtorrent_with_metadata_fetch(tmp_path: Path) -> None:
    info = make_info()
    info_hash = InfoHash(hashlib.sha1(info).digest())
    (tmp_path / "f.bin").write_bytes(DATA)
    with lt_session(info, tmp_path) as (session, handle), trio.fail_after(60):
        while not handle.status().is_seeding:  # noqa: ASYNC110 - libtorrent's threads
            await trio.sleep(0.05)
        stream = await trio.open_tcp_stream("127.0.0.1", session.listen_port())
        conn = PeerConnection(info_hash, OUR_ID, None, now=trio.current_time(), rng=random.Random())
        asm: MetadataAssembler[str] = MetadataAssembler(info_hash)
        todo: list[tuple[int, int, int]] = []
        got: dict[int, bytearray] = {}
        verified: set[int] = set()
        parsed: InfoDict | None = None
        max_depth = 0
        async with stream:
            while parsed is None or len(verified) < parsed.num_pieces:
                for e in await pump(conn, stream):
                    now = trio.current_time()
                    match e:
                        case ev.ExtendedHandshakeReceived(hs):
                            assert hs.metadata_size == len(info)
                            assert asm.set_size("lt", hs.metadata_size)
                            while (piece := asm.next_request("lt", now)) is not None:
                                conn.send_metadata_request(piece)
                        case ev.MetadataPieceReceived(piece, _, data):
                            result = asm.piece_received("lt", piece, data)
                            if isinstance(result, MetadataVerified):
                                parsed = parse_info(result.raw)
                                conn.set_num_pieces(
                                    parsed.num_pieces,
                                    piece_length=parsed.piece_length,
                                    total_length=parsed.total_length,
                                )
                                conn.set_interested(True)
                                todo = [
                                    (i, b, min(BLOCK_SIZE, parsed.piece_size(i) - b))
                                    for i in range(parsed.num_pieces)
                                    for b in range(0, parsed.piece_size(i), BLOCK_SIZE)
                                ]
                                todo.reverse()
                        case ev.BlockReceived(index, begin, data):
                            assert parsed is not None
                            piece_buf = got.setdefault(index, bytearray())
                            assert begin == len(piece_buf), "libtorrent answers in order"
                            piece_buf += data
                            if len(piece_buf) == parsed.piece_size(index):
                                assert hashlib.sha1(piece_buf).digest() == parsed.piece_hash(index)
                                verified.add(index)
                                conn.send_have(index)
                        case ev.RequestRejected() | ev.RequestTimedOut() | ev.PeerIdle():
                            pytest.fail(f"unexpected {e}")
                        case ev.ConnectionClosed():
                            pytest.fail("libtorrent closed the connection")
                if conn.peer_choking or not todo:
                    continue
                now = trio.current_time()
                for _ in range(conn.request_slots(now)):
                    if todo:
                        conn.request(*todo.pop(), now)
                max_depth = max(max_depth, len(conn.outstanding))
        assert asm.raw() == info
        assert parsed.num_pieces == 49
        assert b"".join(got[i] for i in range(49)) == DATA
        assert conn.unexpected_blocks == 0
        assert max_depth > 2, "the pipeline grew past its initial depth"
        assert len(info) < METADATA_PIECE_SIZE  # one metadata piece at this size


async def test_libtorrent_leeches_from_a_shoal_engine(tmp_path: Path) -> None:
    info = make_info()
    info_hash = InfoHash(hashlib.sha1(info).digest())
    parsed = parse_info(info)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    served: list[int] = []
    with lt_session(info, tmp_path) as (_session, handle), trio.fail_after(60):
        handle.connect_peer(("127.0.0.1", port))
        stream = await listeners[0].accept()
        conn = PeerConnection(
            info_hash,
            OUR_ID,
            parsed.num_pieces,
            now=trio.current_time(),
            rng=random.Random(),
            our_pieces=Bitfield.all(parsed.num_pieces),
            piece_length=PIECE_LENGTH,
            total_length=len(DATA),
            metadata_size=len(info),
        )

        async def serve() -> None:
            while True:
                for e in await pump(conn, stream):
                    match e:
                        case ev.PeerInterested():
                            conn.set_choking(False)
                        case ev.BlockRequested(index, begin, length):
                            start = index * PIECE_LENGTH + begin
                            assert conn.send_piece(index, begin, DATA[start : start + length])
                            served.append(length)
                        case ev.MetadataRequested(piece):
                            chunk = info[piece * METADATA_PIECE_SIZE :][:METADATA_PIECE_SIZE]
                            conn.send_metadata_data(piece, len(info), chunk)
                        case ev.ConnectionClosed():
                            return

        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            while not handle.status().is_seeding:  # noqa: ASYNC110 - libtorrent's threads
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        for listener in listeners:
            await listener.aclose()
        # libtorrent 2 hashes pieces from its store buffer, so it can report seeding
        # before its disk threads have written (or even created) the file.
        handle.flush_cache()
        target = tmp_path / "f.bin"
        while not (target.exists() and target.read_bytes() == DATA):  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert sum(served) == len(DATA)
    assert conn.statistics()["uploaded"] == len(DATA)
