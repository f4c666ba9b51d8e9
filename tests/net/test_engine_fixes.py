"""Torrent/Client engine fixes on loopback: pad-free stats, ``--bind`` for outgoing
connections, ``select`` validation and BEP 53 ``so=``, two seeds hanging up, BEP 6
allowed-fast in both directions."""

from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING

import pytest
import trio
import trio.lowlevel

import shoal
from shoal import torrent_events as tev
from shoal.config import EncryptionMode
from shoal.create import create_torrent
from shoal.ids import PeerId
from shoal.magnet import Magnet
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.net.dialer import Dialer
from shoal.net.listener import Listener
from shoal.peer import events as ev
from shoal.peer.fast import allowed_fast_set
from shoal.swarm.bitfield import Bitfield
from shoal.torrent import TorrentState
from tests.net.scripted_peer import run_scripted_peer, scripted_connection
from tests.storage.helpers import make_torrent

if TYPE_CHECKING:
    from pathlib import Path

    from shoal.net.dialer import PeerLink
    from shoal.peer.connection import PeerConnection


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


def padded(root: Path) -> Metainfo:
    """Four data files and two BEP 47 pad files (24 KiB of zeros), data written to `root`."""
    t = make_torrent([40_000, 24_576, 25_000, 30_000, 8_192, 50_000], pads={1, 4}, seed=3)
    for i, f in enumerate(t.info.files):
        if not f.pad:
            path = root.joinpath(*f.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(t.file_bytes(i))
    return Metainfo(t.info, None, (), (), None, None, None)


def files(root: Path, sizes: list[int], seed: int = 1) -> Metainfo:
    data = root / "payload"
    data.mkdir(parents=True)
    rnd = random.Random(seed)
    for i, size in enumerate(sizes):
        (data / f"f{i}.bin").write_bytes(rnd.randbytes(size))
    return parse_metainfo(create_torrent(data, piece_length=16384))


# ---- 1. statistics never count pad bytes ----------------------------------------------


@pytest.mark.parametrize("select", [None, [0], [2, 3]])
async def test_downloaded_counts_no_pad_bytes(tmp_path: Path, select: list[int] | None) -> None:
    metainfo = padded(tmp_path / "seed")
    info = metainfo.info
    chosen = range(len(info.files)) if select is None else select
    data_size = sum(info.files[i].length for i in chosen if not info.files[i].pad)
    async with shoal.open_client(config()) as seeder, shoal.open_client(config()) as leecher:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(5):
            await seeding.wait_complete()
        s = seeding.statistics()
        assert s.total_size == info.total_length
        assert s.downloaded == s.selected_size == info.total_length - 24_576 - 8_192
        t = await leecher.add(
            metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address], select=select
        )
        with trio.fail_after(5):
            await t.wait_complete()
        s = t.statistics()
        # Whole pieces are verified, but only the selected files' bytes are counted.
        assert s.downloaded == s.selected_size == data_size
        assert s.pieces_done < s.pieces_total or select is None


# ---- 2. --bind applies to outgoing connections ----------------------------------------


async def test_outgoing_connections_leave_from_the_bind_address(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [60_000])
    async with (
        shoal.open_client(config(bind_host="127.0.0.2", dht=True)) as seeder,
        shoal.open_client(config(bind_host="127.0.0.3", dht=True)) as leecher,
    ):
        assert leecher.dht is not None
        assert leecher.dht.address[0] == "127.0.0.3"  # the DHT socket is bound too
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        await seeding.wait_complete()
        events = seeding.events()
        t = await leecher.add(metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address])
        with trio.fail_after(5):
            async for event in events:
                if isinstance(event, tev.PeerConnected):
                    # The seeder sees the leecher's source address: its --bind, not 127.0.0.1.
                    assert event.addr[0] == "127.0.0.3"
                    assert event.incoming
                    break
            await t.wait_complete()


# ---- 3. select is validated; a magnet's so= is applied --------------------------------


async def test_select_out_of_range_is_a_value_error(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [20_000, 20_000])
    async with shoal.open_client(config()) as client:
        for bad in ([2], [-1], [0, 7]):
            with pytest.raises(ValueError, match="out of range"):
                await client.add(metainfo, save_to=tmp_path / "dl", select=bad)
        assert client.torrents() == []
        t = await client.add(metainfo, save_to=tmp_path / "dl", select=[1])
        assert t.info_hash == metainfo.info_hash


async def test_magnet_select_out_of_range_stops_the_torrent_with_a_message(
    tmp_path: Path,
) -> None:
    metainfo = files(tmp_path / "seed", [20_000, 20_000])
    async with shoal.open_client(config()) as seeder, shoal.open_client(config()) as leecher:
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        magnet = Magnet(metainfo.info_hash, peers=(seeder.listen_address,))
        t = await leecher.add(magnet, save_to=tmp_path / "leech", select=[5])
        with trio.fail_after(5), pytest.raises(shoal.StorageError, match="out of range"):
            await t.wait_complete()
        assert t.statistics().state is TorrentState.ERROR
        assert not (tmp_path / "leech").exists()


async def test_magnet_so_selects_files_unless_select_is_given(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [20_000, 30_000, 40_000])
    sizes = [f.length for f in metainfo.info.files]
    async with shoal.open_client(config()) as seeder, shoal.open_client(config()) as leecher:
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        magnet = Magnet(metainfo.info_hash, peers=(seeder.listen_address,), select_only=((1, 2),))
        by_so = await leecher.add(magnet, save_to=tmp_path / "so")
        with trio.fail_after(5):
            await by_so.wait_complete()
        assert by_so.statistics().selected_size == sizes[1] + sizes[2]
        assert by_so.statistics().downloaded == sizes[1] + sizes[2]
        await by_so.remove()
        explicit = await leecher.add(magnet, save_to=tmp_path / "explicit", select=[0])
        with trio.fail_after(5):
            await explicit.wait_complete()
        assert explicit.statistics().selected_size == sizes[0]


# ---- 4. two seeds hang up ------------------------------------------------------------


async def _reasons(*streams: trio.MemoryReceiveChannel[tev.TorrentEvent]) -> list[str]:
    """Disconnect reasons seen on each side until both report one (in a deadline)."""
    reasons: list[str] = []
    for events in streams:
        async for event in events:
            if isinstance(event, tev.PeerDisconnected):
                reasons.append(event.reason)
                break
    return reasons


async def test_two_seeds_close_the_connection(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [100_000])
    async with (
        shoal.open_client(config()) as a,
        shoal.open_client(config()) as b,
        shoal.open_client(config()) as c,
    ):
        ta = await a.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(5):
            await ta.wait_complete()
        # A leecher that completes: both ends are seeds now, so they hang up (whoever
        # notices first says why; the other sees the peer close).
        a_events = ta.events()
        tb = await b.add(metainfo, save_to=tmp_path / "b", peers=[a.listen_address])
        b_events = tb.events()
        with trio.fail_after(5):
            await tb.wait_complete()
            reasons = await _reasons(a_events, b_events)
            while ta.statistics().peers or tb.statistics().peers:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert any("seeds" in r for r in reasons), reasons
        assert ta.statistics().uploaded == metainfo.info.total_length
        # A seed dialling a seed: connected, then closed at the first bitfield.
        tc = await c.add(metainfo, save_to=tmp_path / "seed")  # the same data: a seed
        with trio.fail_after(5):
            await tc.wait_complete()
        c_events = tc.events()
        tc.add_peers([a.listen_address])
        with trio.fail_after(5):
            reasons = await _reasons(a_events, c_events)
        assert any("seeds" in r for r in reasons), reasons
        assert tc.statistics().peers == 0
        assert ta.statistics().uploaded == metainfo.info.total_length  # nothing more sent


# ---- 5. BEP 6 allowed-fast -----------------------------------------------------------


class Recorder:
    """A scripted peer's reactions: records events; optionally serves allowed-fast pieces."""

    def __init__(self, data: bytes | None = None, offer: tuple[int, ...] = ()) -> None:
        self.events: list[ev.PeerEvent] = []
        self.data = data
        self.offer = offer
        self.piece_length = 16384
        self.changed = trio.Event()

    def __call__(self, conn: PeerConnection, event: ev.PeerEvent) -> None:
        self.events.append(event)
        if isinstance(event, ev.HaveNoneReceived | ev.BitfieldReceived) and self.offer:
            for index in self.offer:  # offered, but never unchoked
                conn.send_allowed_fast(index)
        elif isinstance(event, ev.BlockRequested) and self.data is not None:
            start = event.index * self.piece_length + event.begin
            conn.send_piece(event.index, event.begin, self.data[start : start + event.length])
        self.changed.set()
        self.changed = trio.Event()


async def test_choked_fast_peers_are_offered_the_allowed_fast_set(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [200_000])
    n = metainfo.info.num_pieces
    async with shoal.open_client(config(encryption=EncryptionMode.DISABLE)) as seeder:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        await seeding.wait_complete()
        peer_id = PeerId(b"-XX0001-fastpeer0000")
        link = await Dialer(peer_id, encryption=EncryptionMode.DISABLE).dial(
            seeder.listen_address, metainfo.info_hash
        )
        conn = scripted_connection(
            link,
            peer_id,
            our_pieces=Bitfield(n),  # have_none: a starting peer
            piece_length=metainfo.info.piece_length,
            total_length=metainfo.info.total_length,
        )
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_scripted_peer, link, conn, recorder)
            expected = set(
                allowed_fast_set(ipaddress.ip_address("127.0.0.1"), metainfo.info_hash, n)
            )
            with trio.fail_after(5):
                while conn.peer_allowed_fast != expected:
                    await recorder.changed.wait()
            assert conn.peer_choking, recorder.events  # offered while choked
            offered = [e.index for e in recorder.events if isinstance(e, ev.AllowedFastReceived)]
            assert sorted(offered) == sorted(expected)  # each once
            nursery.cancel_scope.cancel()


async def test_choked_leecher_requests_allowed_fast_pieces(tmp_path: Path) -> None:
    metainfo = files(tmp_path / "seed", [200_000])
    data = (tmp_path / "seed" / "payload" / "f0.bin").read_bytes()
    n = metainfo.info.num_pieces
    offer = (1, 4, 7)
    recorder = Recorder(data, offer)
    listener = Listener(
        PeerId(b"-XX0001-chokingseed0"), host="127.0.0.1", port=0, encryption=EncryptionMode.DISABLE
    )
    async with trio.open_nursery() as nursery:

        def accept(link: PeerLink) -> bool:
            conn = scripted_connection(
                link,
                listener.peer_id,
                our_pieces=Bitfield.all(n),  # a seed that never unchokes
                piece_length=metainfo.info.piece_length,
                total_length=metainfo.info.total_length,
            )
            nursery.start_soon(run_scripted_peer, link, conn, recorder)
            return True

        listener.register(metainfo.info_hash, accept)
        seed_addr = await nursery.start(listener.serve)
        async with shoal.open_client(config(encryption=EncryptionMode.DISABLE)) as leecher:
            t = await leecher.add(metainfo, save_to=tmp_path / "leech", peers=[seed_addr])
            with trio.fail_after(5):
                while t.statistics().pieces_done < len(offer):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert t.data is not None
            assert set(t.data.storage.verified()) == set(offer)
            requested = {e.index for e in recorder.events if isinstance(e, ev.BlockRequested)}
            assert requested == set(offer)  # nothing outside the allowed-fast set
        nursery.cancel_scope.cancel()
