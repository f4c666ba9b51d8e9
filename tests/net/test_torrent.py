"""Torrent and Client behaviour on loopback: metadata-only fetch, bad metadata bans,
pause/resume, removal, sources and event subscriptions."""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING

import pytest
import trio
import trio.lowlevel

import shoal
from shoal import torrent_events as tev
from shoal.config import EncryptionMode
from shoal.create import create_torrent
from shoal.dht_client import DHT, PeerSearch, open_dht_node
from shoal.ids import PeerId
from shoal.magnet import Magnet, format_magnet
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.peer.handshake import Handshake, encode_handshake
from shoal.testing.hostile import AttackStats, MetadataLie, serve_lying_metadata_peer
from shoal.torrent import TorrentState

if TYPE_CHECKING:
    from pathlib import Path


def payload(root: Path) -> Metainfo:
    data = root / "payload"
    data.mkdir(parents=True)
    (data / "x.bin").write_bytes(random.Random(5).randbytes(200_000))
    return parse_metainfo(create_torrent(data, piece_length=16384))


def two_files(root: Path) -> Metainfo:
    """Two 100 kB files. A leecher selecting only file 0 never becomes a seed, so its
    connection to a seed stays open after it completes (two seeds hang up)."""
    data = root / "payload"
    data.mkdir(parents=True)
    rnd = random.Random(6)
    (data / "a.bin").write_bytes(rnd.randbytes(100_000))
    (data / "b.bin").write_bytes(rnd.randbytes(100_000))
    return parse_metainfo(create_torrent(data, piece_length=16384))


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


async def test_bad_metadata_bans_the_peer_and_nothing_is_written(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    # The right metadata_size, wrong bytes (BEP 9 pieces of zeros): fails the info-hash.
    liar = AttackStats()
    async with trio.open_nursery() as nursery:
        bad = await nursery.start(
            serve_lying_metadata_peer,
            metainfo.info_hash,
            len(metainfo.info.raw),
            MetadataLie.GARBAGE,
            liar,
        )
        async with (
            shoal.open_client(config()) as seeder,
            shoal.open_client(config()) as leecher,
        ):
            await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
            magnet = Magnet(metainfo.info_hash, peers=(bad,))
            t = await leecher.add(magnet, save_to=tmp_path / "leech")
            events = t.events()
            with trio.fail_after(5):
                async for event in events:
                    if isinstance(event, tev.PeerBanned):
                        assert event.addr == bad
                        break
            assert not (tmp_path / "leech").exists()  # nothing before verified metadata
            with trio.fail_after(5):
                while t.statistics().peers:  # noqa: ASYNC110 - the banned session closing
                    await trio.sleep(0.01)
            # The only metadata source is gone: back to looking for peers.
            assert t.statistics().state is TorrentState.FINDING_PEERS
            t.add_peers([seeder.listen_address])
            with trio.fail_after(5):
                got = await t.wait_metadata()
                await t.wait_complete()
            assert got.info.raw == metainfo.info.raw
        nursery.cancel_scope.cancel()
    assert liar.sent > len(metainfo.info.raw)  # it answered a metadata request
    assert liar.closed_by_victim >= 1


async def test_fetch_metadata_only(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with (
        shoal.open_client(config(encryption=EncryptionMode.DISABLE)) as seeder,
        shoal.open_client(config()) as other,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        uri = format_magnet(Magnet(metainfo.info_hash, peers=(seeder.listen_address,)))
        with trio.fail_after(5):
            got = await other.fetch_metadata(uri)
        assert got.info_hash == metainfo.info_hash
        assert got.info.raw == metainfo.info.raw
        await trio.lowlevel.checkpoint()
        assert other.torrents() == []
    assert sorted(p.name for p in await trio.Path(tmp_path).iterdir()) == ["seed"]


async def test_sources_duplicates_pause_resume_and_remove(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    torrent_file = tmp_path / "x.torrent"
    torrent_file.write_bytes(create_torrent(tmp_path / "seed" / "payload", piece_length=16384))
    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        seeding = await seeder.add(torrent_file, save_to=tmp_path / "seed")
        with pytest.raises(ValueError, match="already added"):
            await seeder.add(format_magnet(Magnet(metainfo.info_hash)), save_to=tmp_path)
        await seeding.wait_complete()
        t = await leecher.add(metainfo, save_to=tmp_path / "leech")
        await t.pause()
        t.add_peers([seeder.listen_address])
        await trio.sleep(0.3)
        assert t.statistics().peers == 0  # paused: nothing dialled
        assert t.statistics().state is TorrentState.PAUSED
        await t.resume()
        with trio.fail_after(5):
            await t.wait_complete()
        stats = seeding.statistics()
        assert stats.uploaded == metainfo.info.total_length
        assert leecher.statistics().torrents == 1
        events = t.events()
        await t.remove(delete_files=True)
        with trio.fail_after(5):
            async for _ in events:  # the subscription ends when the torrent stops
                pass
        assert leecher.torrents() == []
    assert not (tmp_path / "leech" / "payload" / "x.bin").exists()


async def test_progress_events_and_statistics(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with shoal.open_client(config()) as seeder:
        t = await seeder.add(metainfo, save_to=tmp_path / "seed")
        events = t.events()
        with trio.fail_after(5):
            async for event in events:
                if isinstance(event, tev.Progress) and event.stats.state is TorrentState.SEEDING:
                    break
        s = t.statistics()
        assert s.pieces_done == s.pieces_total == metainfo.info.num_pieces
        assert s.downloaded == s.total_size == s.selected_size == metainfo.info.total_length
        assert s.eta == 0.0
        assert s.name == "payload"


async def test_checking_reports_its_progress(tmp_path: Path) -> None:
    """A recheck of data on disk says how far it is (a big one takes minutes)."""
    data = tmp_path / "seed" / "big"
    data.mkdir(parents=True)
    rnd = random.Random(7)
    with (data / "x.bin").open("wb") as f:
        for _ in range(12):  # 48 MiB: three 16 MiB chunks of the recheck
            f.write(rnd.randbytes(4 * 1024 * 1024))
    metainfo = parse_metainfo(create_torrent(data, piece_length=1024 * 1024))
    seen: list[float] = []
    async with shoal.open_client(config()) as seeder:
        t = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(60):
            while (s := t.statistics()).state is not TorrentState.SEEDING:
                if s.state is TorrentState.CHECKING and s.checked is not None:
                    seen.append(s.checked)
                await trio.sleep(0.001)
        assert t.statistics().checked is None  # only while checking
    assert seen == sorted(seen)
    assert any(0.0 < x < 1.0 for x in seen), seen


async def test_shutdown_is_bounded_and_saves_state(tmp_path: Path) -> None:
    metainfo = two_files(tmp_path / "seed")
    state = tmp_path / "state"
    async with shoal.open_client(config()) as seeder:
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        async with shoal.open_client(config(dht=True, state_dir=state)) as leecher:
            # Only file 0: complete but not a seed, so the connection stays open.
            t = await leecher.add(metainfo, save_to=tmp_path / "leech", select=[0])
            t.add_peers([seeder.listen_address])
            with trio.fail_after(5):
                await t.wait_complete()
            assert t.statistics().peers == 1
            start = trio.current_time()
        elapsed = trio.current_time() - start
        assert elapsed < 2.0
    names = sorted(p.name for p in await trio.Path(state).iterdir())
    assert "dht.json" in names
    assert "resume" in names


async def test_disk_error_stops_the_torrent_not_the_client(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")  # the download directory cannot be created under a file
    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        t = await leecher.add(metainfo, save_to=blocker / "sub")
        events = t.events()
        t.add_peers([seeder.listen_address])
        with trio.fail_after(5), pytest.raises(shoal.StorageError):
            await t.wait_complete()
        assert t.statistics().state is TorrentState.ERROR
        assert any([isinstance(e, tev.TorrentError) async for e in events])
        # The client and the other torrent carry on.
        again = await leecher.add(metainfo, save_to=tmp_path / "ok", peers=[seeder.listen_address])
        with trio.fail_after(5):
            await again.wait_complete()


async def test_pex_introduces_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shoal.torrent, "PEX_INTERVAL", 0.2)
    metainfo = two_files(tmp_path / "seed")
    async with (
        shoal.open_client(config()) as a,
        shoal.open_client(config()) as b,
        shoal.open_client(config()) as c,
    ):
        await (await a.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        # B takes only file 0 so that it stays connected to A (two seeds hang up).
        tb = await b.add(metainfo, save_to=tmp_path / "b", peers=[a.listen_address], select=[0])
        with trio.fail_after(5):
            await tb.wait_complete()
        tc = await c.add(metainfo, save_to=tmp_path / "c", peers=[a.listen_address], select=[0])
        events = tc.events()
        with trio.fail_after(5):
            async for event in events:
                # C was only told about A. A's PEX names B to C (by the listen port B
                # announced in its BEP 10 handshake) and C to B: whichever dials
                # first, C ends up connected to someone other than A.
                if isinstance(event, tev.PeerConnected) and event.addr != a.listen_address:
                    assert event.addr == b.listen_address or event.incoming
                    break


async def test_private_torrent_uses_neither_dht_nor_pex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEP 27: no DHT get_peers/announce, no PEX (neither offered nor sent), no port
    message. A public torrent in the same clients is the control: it does use the DHT."""
    monkeypatch.setattr(shoal.torrent, "PEX_INTERVAL", 0.1)
    lookups: list[bytes] = []
    announces: list[bytes] = []
    real_get_peers, real_announce = DHT.get_peers, DHT.announce

    def get_peers(self: DHT, info_hash: bytes, *, noseed: bool = False) -> PeerSearch:
        lookups.append(bytes(info_hash))
        return real_get_peers(self, info_hash, noseed=noseed)

    async def announce(self: DHT, info_hash: bytes, port: int, *, seed: bool = False) -> None:
        announces.append(bytes(info_hash))
        await real_announce(self, info_hash, port, seed=seed)

    monkeypatch.setattr(DHT, "get_peers", get_peers)
    monkeypatch.setattr(DHT, "announce", announce)
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    rnd = random.Random(9)
    (data / "a.bin").write_bytes(rnd.randbytes(50_000))
    (data / "b.bin").write_bytes(rnd.randbytes(50_000))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384, private=True))
    assert metainfo.info.private
    public = payload(tmp_path / "public")
    async with (
        shoal.open_client(config(dht=True)) as seeder,
        shoal.open_client(config(dht=True)) as l1,
        shoal.open_client(config(dht=True)) as l2,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        await seeding.wait_complete()
        await (await seeder.add(public, save_to=tmp_path / "public")).wait_complete()
        # Both leechers take file 0 only, so neither becomes a seed and every
        # connection stays open; each knows only the seeder.
        t1 = await l1.add(
            metainfo, save_to=tmp_path / "l1", peers=[seeder.listen_address], select=[0]
        )
        t2 = await l2.add(
            metainfo, save_to=tmp_path / "l2", peers=[seeder.listen_address], select=[0]
        )
        with trio.fail_after(5):
            await t1.wait_complete()
            await t2.wait_complete()
        await trio.sleep(0.5)  # five PEX rounds: with PEX, the seeder would name l1 to l2
        assert list(t1.sessions) == [seeder.listen_address]
        assert list(t2.sessions) == [seeder.listen_address]
        assert len(seeding.sessions) == 2
        for t in (t1, t2, seeding):
            for session in t.sessions.values():
                assert not session.conn.peer_supports("ut_pex")  # PEX not offered
        for client in (seeder, l1, l2):
            assert client.dht is not None
            assert client.dht.statistics().node.routing.nodes == 0  # no BEP 5 port message
        assert bytes(metainfo.info_hash) not in lookups + announces
        assert bytes(public.info_hash) in lookups  # the control: public torrents look up


async def test_port_message_feeds_the_dht(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with (
        shoal.open_client(config(dht=True)) as seeder,
        shoal.open_client(config(dht=True)) as leecher,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        t = await leecher.add(metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address])
        assert leecher.dht is not None
        with trio.fail_after(5):
            await t.wait_complete()
            # BEP 5 "port" message: neither DHT had any node; now they know each other.
            while leecher.dht.statistics().node.routing.nodes == 0:  # noqa: ASYNC110
                await trio.sleep(0.05)


def _random_frames(rnd: random.Random, num_pieces: int) -> bytes:
    """Well-framed messages with random ids and payloads (plus the odd valid one)."""
    out = bytearray()
    for _ in range(rnd.randrange(1, 12)):
        msg_id = rnd.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20, 99])
        if msg_id == 6 and rnd.random() < 0.5:  # a plausible request
            body = struct.pack(">III", rnd.randrange(num_pieces + 2), 0, 16384)
        elif msg_id == 20 and rnd.random() < 0.5:  # a plausible extended message
            body = bytes([rnd.randrange(4)]) + b"d8:msg_typei0e5:piecei0ee"
        else:
            body = rnd.randbytes(rnd.choice([0, 1, 4, 8, 12, 13, 40]))
        out += struct.pack(">IB", len(body) + 1, msg_id) + body
    if rnd.random() < 0.3:
        out += rnd.randbytes(rnd.randrange(1, 30))  # trailing garbage
    return bytes(out)


async def test_hostile_peers_cannot_crash_a_seeder(tmp_path: Path) -> None:
    """Fuzz smoke test through real sockets: random frames from 40 peers, then a real
    download still works and the seeder torrent never left SEEDING."""
    metainfo = payload(tmp_path / "seed")
    rnd = random.Random(2024)
    disable = EncryptionMode.DISABLE
    async with shoal.open_client(config(encryption=disable)) as seeder:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        await seeding.wait_complete()
        for i in range(40):
            stream = await trio.open_tcp_stream(*seeder.listen_address)
            peer_id = PeerId(b"-XX0001-" + b"%012d" % i)
            await stream.send_all(encode_handshake(Handshake(metainfo.info_hash, peer_id)))
            try:
                await stream.send_all(_random_frames(rnd, metainfo.info.num_pieces))
                with trio.move_on_after(0.05):
                    while await stream.receive_some(65536):
                        pass
            except trio.BrokenResourceError:
                pass  # the seeder hung up on us: fine
            await stream.aclose()
        assert seeding.statistics().state is TorrentState.SEEDING
        async with shoal.open_client(config(encryption=disable)) as leecher:
            t = await leecher.add(metainfo, save_to=tmp_path / "leech")
            t.add_peers([seeder.listen_address])
            with trio.fail_after(5):
                await t.wait_complete()


async def test_simultaneous_dials_keep_exactly_one_connection(tmp_path: Path) -> None:
    metainfo = two_files(tmp_path / "seed")
    async with (
        shoal.open_client(config()) as a,
        shoal.open_client(config()) as b,
    ):
        ta = await a.add(metainfo, save_to=tmp_path / "seed")
        # File 0 only: B never becomes a seed, so the kept connection outlives completion.
        tb = await b.add(metainfo, save_to=tmp_path / "leech", select=[0])
        await ta.wait_complete()
        with trio.fail_after(5):
            while tb.statistics().state is not TorrentState.DOWNLOADING:  # noqa: ASYNC110
                await trio.sleep(0.01)
        # Both dial each other at once: each sees the other's connection as a duplicate.
        ta.add_peers([b.listen_address])
        tb.add_peers([a.listen_address])
        with trio.fail_after(5):
            await tb.wait_complete()
        await trio.sleep(0.2)
        assert ta.statistics().peers == 1
        assert tb.statistics().peers == 1
        (sa,) = ta.sessions.values()
        (sb,) = tb.sessions.values()
        # Both sides kept the same connection (when both dials get through, the one
        # opened by the smaller peer id; a dial may also be skipped because the
        # other connection announced that listen port first).
        assert sa.link.incoming != sb.link.incoming


@pytest.mark.parametrize(("dry_relookup", "at_least", "at_most"), [(0.2, 6, 100), (1000.0, 1, 4)])
async def test_an_empty_pool_triggers_dht_relookups(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dry_relookup: float,
    at_least: int,
    at_most: int,
) -> None:
    """Issue 4: re-lookup "when the pool runs dry", not only on the schedule (after 1, 2,
    4 ... s). The control (a huge floor) shows the schedule alone looks up far less."""
    monkeypatch.setattr(shoal.torrent, "DRY_RELOOKUP", dry_relookup)
    lookups: list[float] = []
    real_get_peers = DHT.get_peers

    def get_peers(self: DHT, info_hash: bytes, *, noseed: bool = False) -> PeerSearch:
        lookups.append(trio.current_time())
        return real_get_peers(self, info_hash, noseed=noseed)

    monkeypatch.setattr(DHT, "get_peers", get_peers)
    nobody_has_it = Magnet(info_hash=shoal.InfoHash(bytes(range(20))))
    async with open_dht_node(bind=("127.0.0.1", 0)) as router:
        cfg = config(dht=True, bootstrap=(router.address,))
        async with shoal.open_client(cfg) as client:
            await client.add(format_magnet(nobody_has_it), save_to=tmp_path / "dl")
            await trio.sleep(2.5)
    assert at_least <= len(lookups) <= at_most, lookups
