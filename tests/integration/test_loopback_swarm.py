"""Whole shoal clients swarming on 127.0.0.1: magnet-only discovery through a loopback
DHT, encryption modes, a corrupt peer, and cancellation followed by resume."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal import torrent_events as tev
from shoal.create import create_torrent
from shoal.dht_client import open_dht_node
from shoal.ids import PeerId
from shoal.magnet import Magnet
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.peer import messages as m
from shoal.peer.frames import FrameDecoder
from shoal.peer.handshake import (
    Handshake,
    HandshakeParser,
    ReservedBits,
    encode_handshake,
)
from shoal.storage.resume import decode_resume, resume_path
from shoal.storage.verify import check_existing
from shoal.swarm.bitfield import Bitfield
from shoal.torrent import TorrentState

if TYPE_CHECKING:
    from pathlib import Path

PIECE = 16 * 1024
FILES = {"a.bin": 300_000, "sub/b.bin": 220_001}


def make_payload(root: Path, seed: int = 7) -> Metainfo:
    rnd = random.Random(seed)
    data = root / "payload"
    for name, size in FILES.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(rnd.randbytes(size))
    return parse_metainfo(create_torrent(data, piece_length=PIECE))


def write_partial(src: Path, dst: Path, metainfo: Metainfo, keep: set[int]) -> None:
    """Copy only pieces `keep` of the payload under `src` to `dst` (the rest zeroed)."""
    info = metainfo.info
    blob = bytearray(b"".join((src / "payload" / n).read_bytes() for n in FILES))
    for i in range(info.num_pieces):
        if i not in keep:
            start = i * info.piece_length
            blob[start : start + info.piece_size(i)] = bytes(info.piece_size(i))
    for f in info.files:
        path = dst.joinpath(*f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob[f.offset : f.offset + f.length])


def assert_identical(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / "payload" / name).read_bytes() == (b / "payload" / name).read_bytes(), name


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


async def test_magnet_swarm_over_loopback_dht(tmp_path: Path) -> None:
    metainfo = make_payload(tmp_path / "seed")
    magnet = Magnet(metainfo.info_hash)
    async with open_dht_node(("127.0.0.1", 0)) as router:
        boot = (router.address,)
        cfg = config(dht=True, bootstrap=boot, upload_slots=1)
        async with shoal.open_client(cfg) as seeder:
            seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
            with trio.fail_after(5):
                await seeding.wait_complete()
            leechers: list[tuple[shoal.Client, shoal.Torrent]] = []
            async with (
                shoal.open_client(config(dht=True, bootstrap=boot)) as c1,
                shoal.open_client(config(dht=True, bootstrap=boot)) as c2,
                shoal.open_client(config(dht=True, bootstrap=boot)) as c3,
            ):
                # Each leecher starts with a different third of the pieces (an
                # interrupted earlier download) and the seeder serves one peer at a
                # time, so every leecher has pieces the others need from it.
                n = metainfo.info.num_pieces
                for i, client in enumerate((c1, c2, c3)):
                    own = {p for p in range(n) if p % 3 == i}
                    write_partial(tmp_path / "seed", tmp_path / f"leech{i}", metainfo, own)
                    t = await client.add(magnet, save_to=tmp_path / f"leech{i}")
                    leechers.append((client, t))
                with trio.fail_after(10):
                    for _, t in leechers:
                        await t.wait_complete()
                stats = [t.statistics() for _, t in leechers]
                for _, t in leechers:
                    assert t.metainfo is not None
                    assert t.metainfo.info.raw == metainfo.info.raw
        for i, s in enumerate(stats):
            assert_identical(tmp_path / "seed", tmp_path / f"leech{i}")
            assert s.state is TorrentState.SEEDING
            assert s.pieces_done == s.pieces_total == metainfo.info.num_pieces
        # The seeder unchokes one peer (upload_slots=1, next rechoke after the test),
        # so the others got pieces from leechers.
        assert sum(s.uploaded for s in stats) > 0


async def test_leechers_trade_pieces_each_uploads(tmp_path: Path) -> None:
    """Magnet metadata from the seeder via the DHT; then the seeder leaves, and the
    leechers, each holding a different third, must all upload to finish."""
    metainfo = make_payload(tmp_path / "seed")
    magnet = Magnet(metainfo.info_hash)
    n = metainfo.info.num_pieces
    async with open_dht_node(("127.0.0.1", 0)) as router:
        boot = (router.address,)
        async with (
            shoal.open_client(config(dht=True, bootstrap=boot)) as c0,
            shoal.open_client(config(dht=True, bootstrap=boot)) as c1,
            shoal.open_client(config(dht=True, bootstrap=boot)) as c2,
        ):
            async with shoal.open_client(config(dht=True, bootstrap=boot)) as seeder:
                seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
                await seeding.wait_complete()
                got: dict[int, Metainfo] = {}

                async def fetch(i: int, client: shoal.Client) -> None:
                    got[i] = await client.fetch_metadata(magnet)

                with trio.fail_after(10):
                    async with trio.open_nursery() as nursery:
                        for i, client in enumerate((c0, c1, c2)):
                            nursery.start_soon(fetch, i, client)
            assert all(m.info.raw == metainfo.info.raw for m in got.values())
            torrents = []
            for i, client in enumerate((c0, c1, c2)):
                meta = got[i]
                own = {p for p in range(n) if p % 3 == i}
                write_partial(tmp_path / "seed", tmp_path / f"leech{i}", metainfo, own)
                torrents.append(await client.add(meta, save_to=tmp_path / f"leech{i}"))
            with trio.fail_after(10):
                for t in torrents:
                    await t.wait_complete()
            uploaded = [t.statistics().uploaded for t in torrents]
    for i in range(3):
        assert_identical(tmp_path / "seed", tmp_path / f"leech{i}")
    assert all(u > 0 for u in uploaded), uploaded


@pytest.mark.parametrize(
    ("mode", "encrypted"),
    [(shoal.EncryptionMode.REQUIRE, True), (shoal.EncryptionMode.DISABLE, False)],
)
async def test_encryption_modes_end_to_end(
    tmp_path: Path, mode: shoal.EncryptionMode, encrypted: bool
) -> None:
    metainfo = make_payload(tmp_path / "seed")
    async with (
        shoal.open_client(config(encryption=mode)) as seeder,
        shoal.open_client(config(encryption=mode)) as leecher,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        await seeding.wait_complete()  # checked its data: now it accepts peers
        magnet = Magnet(metainfo.info_hash, peers=(seeder.listen_address,))
        t = await leecher.add(magnet, save_to=tmp_path / "leech")
        connected: list[tev.PeerConnected] = []
        encrypted_peers: list[int] = []

        async def watch() -> None:
            async for event in t.events():  # recorded as they come: the task is cancelled
                if isinstance(event, tev.PeerConnected):
                    connected.append(event)
                    # Counted while connected: two seeds hang up once the download ends.
                    encrypted_peers.append(t.statistics().encrypted_peers)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            with trio.fail_after(10):
                await t.wait_complete()
            nursery.cancel_scope.cancel()
        assert connected
        assert all(e.encrypted is encrypted for e in connected)
        assert encrypted_peers == [1 if encrypted else 0] * len(connected)
    assert_identical(tmp_path / "seed", tmp_path / "leech")


async def _corrupt_peer(
    listener: trio.SocketListener, metainfo: Metainfo, served: list[int]
) -> None:
    """A tiny hand-written peer: claims every piece, answers requests with garbage."""
    rnd = random.Random(3)
    n = metainfo.info.num_pieces
    async with listener, trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            nursery.start_soon(_serve_garbage, stream, metainfo, n, rnd, served)


async def _serve_garbage(
    stream: trio.SocketStream, metainfo: Metainfo, n: int, rnd: random.Random, served: list[int]
) -> None:
    parser = HandshakeParser(expected_info_hash=metainfo.info_hash)
    with trio.move_on_after(10):
        try:
            while parser.handshake is None:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                parser.receive_data(bytes(chunk))
            ours = Handshake(metainfo.info_hash, PeerId(b"-XX0001-corruptpeer0"), ReservedBits.NONE)
            await stream.send_all(encode_handshake(ours))
            bits = m.BitfieldMessage(Bitfield.all(n).to_bytes())
            await stream.send_all(m.encode_message(bits) + m.encode_message(m.Unchoke()))
            decoder = FrameDecoder()
            decoder.set_num_pieces(n)
            if parser.trailing_data:  # b"" would mean end of stream
                decoder.receive_data(parser.trailing_data)
            while True:
                for msg in decoder:
                    if isinstance(msg, m.Request):
                        served.append(msg.index)
                        junk = rnd.randbytes(msg.length)
                        piece = m.Piece(msg.index, msg.begin, junk)
                        await stream.send_all(m.encode_message(piece))
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                decoder.receive_data(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)


async def test_corrupt_peer_is_banned_and_download_completes(tmp_path: Path) -> None:
    metainfo = make_payload(tmp_path / "seed")
    served: list[int] = []
    disable = shoal.EncryptionMode.DISABLE
    async with trio.open_nursery() as nursery:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        bad_addr = listener.socket.getsockname()[:2]
        nursery.start_soon(_corrupt_peer, listener, metainfo, served)
        async with (
            shoal.open_client(config(encryption=disable)) as seeder,
            # TCP only: the corrupt peer is a bare TCP listener, and under "both" its
            # dial waits out uTP's head start while the seeder's uTP dial is instant,
            # so the download could finish before the corrupt peer is asked anything.
            shoal.open_client(config(encryption=disable, transports=("tcp",))) as leecher,
        ):
            await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
            sub_events: list[tev.TorrentEvent] = []
            t = await leecher.add(
                metainfo, save_to=tmp_path / "leech", peers=[bad_addr, seeder.listen_address]
            )

            async def watch() -> None:
                async for event in t.events():  # recorded as they come: cancelled later
                    sub_events.append(event)  # noqa: PERF401

            nursery.start_soon(watch)
            with trio.fail_after(10):
                await t.wait_complete()
        nursery.cancel_scope.cancel()
    assert served, "the corrupt peer was never asked for anything"
    banned = [e for e in sub_events if isinstance(e, tev.PeerBanned)]
    assert [tuple(e.addr) for e in banned] == [tuple(bad_addr)]
    assert any(isinstance(e, tev.PieceFailed) for e in sub_events)
    assert_identical(tmp_path / "seed", tmp_path / "leech")


async def test_cancel_mid_download_then_resume(tmp_path: Path) -> None:
    metainfo = make_payload(tmp_path / "seed")
    n = metainfo.info.num_pieces
    half = set(range(n // 2))
    # A partial seeder (it has only the first half) makes the first download stop
    # part-way without racing a loopback transfer that finishes in milliseconds.
    write_partial(tmp_path / "seed", tmp_path / "half", metainfo, half)
    state = tmp_path / "state"
    leech = tmp_path / "leech"
    async with shoal.open_client(config()) as partial:
        source = await partial.add(metainfo, save_to=tmp_path / "half")
        with trio.fail_after(10):
            # Polling: the partial source never completes, so no event says "checked".
            while source.statistics().pieces_done < len(half):  # noqa: ASYNC110
                await trio.sleep(0.01)
        async with shoal.open_client(config(state_dir=state)) as leecher:
            t = await leecher.add(metainfo, save_to=leech, peers=[partial.listen_address])
            with trio.fail_after(10):
                async for event in t.events():
                    if isinstance(event, tev.PieceVerified) and t.statistics().pieces_done >= 3:
                        break  # leave the client mid-download
    # Every piece the resume file vouches for is really on disk.
    raw = resume_path(metainfo.info, leech, state / "resume").read_bytes()
    recorded = decode_resume(raw).have
    on_disk = await check_existing(metainfo.info, leech)
    assert 0 < recorded.count() < n
    assert set(recorded) <= set(on_disk)
    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config(state_dir=state)) as again,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        t2 = await again.add(metainfo, save_to=leech, peers=[seeder.listen_address])
        with trio.fail_after(10):
            await t2.wait_complete()
        # Only the missing pieces were fetched again.
        recorded_bytes = sum(metainfo.info.piece_size(i) for i in recorded)
        assert t2.statistics().downloaded_payload <= metainfo.info.total_length - recorded_bytes
    assert_identical(tmp_path / "seed", leech)
