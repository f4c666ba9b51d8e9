"""The client through a real dante proxy, the IP filter and anonymous mode, checked
at the far end: a real libtorrent seeder on FAR_IP reports who connected to it.

Only the proxy's external address (EXTERNAL_IP) may appear there; with
``anonymous=True`` libtorrent must not be able to name our client (no ``v``, no
BEP 20 prefix in the peer id).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal import torrent_events as tev
from shoal.config import EncryptionMode
from shoal.ipfilter import parse_ip_filter
from shoal.metainfo import parse_metainfo
from shoal.net.guarded import FilteredTransport, RateLimitedTransport
from shoal.swarm.peer_pool import PeerSource
from tests.integration.peers import require_libtorrent
from tests.integration.socks_servers import CLIENT_IP, EXTERNAL_IP, FAR_IP, run_dante
from tests.integration.test_mse_wire import Capture, serve_recording_proxy
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info
from tests.net.lt_utp import wait_seeding

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration
lt = require_libtorrent()
SIZE = 1 << 20


def seed(tmp_path: Path) -> tuple[bytes, bytes, Path]:
    data = random.Random(7).randbytes(SIZE)
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    (seed_dir / "f.bin").write_bytes(data)
    return data, single_file_info(data, 64 * 1024), seed_dir


def lt_seed(info: bytes, seed_dir: Path) -> Iterator[tuple[Any, Any]]:
    settings = loopback_settings(FAR_IP, utp=False) | {"enable_dht": False}
    return lt_torrent_session(lt, info, seed_dir, settings)  # type: ignore[return-value]


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def config(**kw: Any) -> shoal.ClientConfig:
    base: dict[str, Any] = {"bind_host": CLIENT_IP, "port": 0, "dht": True}
    return shoal.ClientConfig(**(base | kw))


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous", "named"])
async def test_download_through_dante(tmp_path: Path, anonymous: bool) -> None:
    data, info, seed_dir = seed(tmp_path)
    async with run_dante(tmp_path) as proxy:
        with lt_seed(info, seed_dir) as (session, handle):
            cfg = config(proxy=proxy.url(), anonymous=anonymous)
            seen: dict[str, tuple[str, bytes]] = {}  # ip -> (client name, peer id)

            async def record_peers() -> None:
                # Seeds drop each other at completion: look while the transfer runs.
                while True:
                    for p in handle.get_peer_info():
                        seen[p.ip[0]] = (_text(p.client), bytes(p.pid.to_bytes()))
                    await trio.sleep(0.01)

            async with shoal.open_client(cfg) as client, trio.open_nursery() as nursery:
                assert client.dht is not None  # through the proxy's UDP relay
                assert client.dht.relay is not None
                with trio.fail_after(60):
                    await wait_seeding(handle)
                    nursery.start_soon(record_peers)
                    torrent = await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / "leech",
                        peers=[(FAR_IP, session.listen_port())],
                    )
                    await torrent.wait_complete()
                nursery.cancel_scope.cancel()
                assert list(seen) == [EXTERNAL_IP]
                name, pid = seen[EXTERNAL_IP]
                # The control case proves libtorrent would name us if it could.
                assert ("shoal" in name.lower()) is not anonymous
                assert pid.startswith(b"-SH") is not anonymous
                # Incoming is off while proxied: nothing listens on our port.
                with pytest.raises(OSError):
                    await trio.open_tcp_stream(*client.listen_address)
    assert (tmp_path / "leech" / "f.bin").read_bytes() == data


async def test_ip_filter_blocks_the_seeder(tmp_path: Path) -> None:
    _, info, seed_dir = seed(tmp_path)
    flt, bad = parse_ip_filter(f"test:{FAR_IP}-{FAR_IP}\n".encode())
    assert not bad
    with lt_seed(info, seed_dir) as (session, handle):
        async with shoal.open_client(config(dht=False, ip_filter=flt)) as client:
            outer = client._dialer.transport
            assert isinstance(outer, RateLimitedTransport)
            transport = outer.inner
            assert isinstance(transport, FilteredTransport)
            with trio.fail_after(60):
                await wait_seeding(handle)
                torrent = await client.add(
                    parse_metainfo(b"d4:info" + info + b"e"),
                    save_to=tmp_path / "leech",
                    peers=[(FAR_IP, session.listen_port())],
                )
                while transport.refused == 0:  # noqa: ASYNC110 - a counter, no event
                    await trio.sleep(0.05)
            assert handle.get_peer_info() == []
            assert handle.status().num_peers == 0
            # DHT and PEX results pass through peers_found: blocked ones never enter.
            blocked = [(FAR_IP, 7000), ("127.0.0.9", 7000)]
            assert torrent.peers_found(blocked, PeerSource.DHT) == 1
            assert (FAR_IP, 7000) not in torrent.pool.known()
            assert ("127.0.0.9", 7000) in torrent.pool.known()


async def test_killing_the_proxy_mid_download_sends_nothing_direct(tmp_path: Path) -> None:
    """Our download limit keeps the transfer going for seconds; the proxy dies after
    the first verified piece. The peer drops (the user sees PeerDisconnected with a
    reason), a redial fails at the proxy, and the seeder never hears our address."""
    _, info, seed_dir = seed(tmp_path)
    with lt_seed(info, seed_dir) as (session, handle):
        seen: set[str] = set()

        async def record_peers() -> None:
            while True:
                seen.update(p.ip[0] for p in handle.get_peer_info())
                await trio.sleep(0.01)

        async with run_dante(tmp_path) as proxy:
            cfg = config(proxy=proxy.url(), max_download_rate=128 * 1024)
            async with shoal.open_client(cfg) as client, trio.open_nursery() as nursery:
                nursery.start_soon(record_peers)
                with trio.fail_after(60):
                    await wait_seeding(handle)
                    torrent = await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / "leech",
                        peers=[(FAR_IP, session.listen_port())],
                    )
                    events = torrent.events()
                    async for event in events:
                        if isinstance(event, tev.PieceVerified):
                            break
                    proxy.stop()  # mid-download
                    async for event in events:
                        if isinstance(event, tev.PeerDisconnected):
                            assert event.addr == (FAR_IP, session.listen_port())
                            assert event.reason
                            break
                    with pytest.raises(OSError, match="cannot reach proxy"):
                        await client._dialer.transport.connect((FAR_IP, session.listen_port()))
                stats = torrent.statistics()
                assert stats.peers == 0
                assert 0 < stats.pieces_done < SIZE // (64 * 1024)  # stopped mid-download
                nursery.cancel_scope.cancel()
        seen.update(p.ip[0] for p in handle.get_peer_info())
    assert seen == {EXTERNAL_IP}


async def test_two_torrents_under_one_global_limit_share_it(tmp_path: Path) -> None:
    """Two equal torrents from two libtorrent seeders, one client-wide download limit:
    when the first completes, the second has received about as many bytes (bytes are
    compared, not speeds, so the machine's load does not matter)."""
    infos = []
    for name in ("a", "b"):
        data = random.Random(name).randbytes(SIZE)
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.bin").write_bytes(data)
        infos.append(single_file_info(data, 64 * 1024))
    settings = loopback_settings(FAR_IP, utp=False)
    with (
        lt_torrent_session(lt, infos[0], tmp_path / "a", settings) as (sa, ha),
        lt_torrent_session(lt, infos[1], tmp_path / "b", settings) as (sb, hb),
    ):
        cfg = config(dht=False, max_download_rate=256 * 1024)
        async with shoal.open_client(cfg) as client:
            with trio.fail_after(90):
                await wait_seeding(ha)
                await wait_seeding(hb)
                torrents = [
                    await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / f"leech{i}",
                        peers=[(FAR_IP, s.listen_port())],
                        seed=False,
                    )
                    for i, (info, s) in enumerate(zip(infos, (sa, sb), strict=True))
                ]
                # Sample both when the leader is half-way: under the shared limit the
                # other must be close behind (without a limit, or with unfair
                # sharing, they would drift apart).
                got = [0, 0]
                while max(got) < SIZE // 2:
                    await trio.sleep(0.05)
                    got = [t.statistics().downloaded_payload for t in torrents]
    print("shares at half-way", got)
    assert max(got) < SIZE  # the limit holds them: nobody is done yet
    assert min(got) == pytest.approx(max(got), rel=0.15)


async def test_per_torrent_limits_set_at_run_time(tmp_path: Path) -> None:
    """`Torrent.set_limits` on two running torrents, 128 and 384 KiB/s, no global
    limit: when the faster is half-way the slower has about a third of its bytes."""
    infos = []
    for name in ("a", "b"):
        data = random.Random(name).randbytes(SIZE)
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.bin").write_bytes(data)
        infos.append(single_file_info(data, 64 * 1024))
    settings = loopback_settings(FAR_IP, utp=False)
    with (
        lt_torrent_session(lt, infos[0], tmp_path / "a", settings) as (sa, ha),
        lt_torrent_session(lt, infos[1], tmp_path / "b", settings) as (sb, hb),
    ):
        async with shoal.open_client(config(dht=False)) as client:
            with trio.fail_after(90):
                await wait_seeding(ha)
                await wait_seeding(hb)
                torrents = []
                for i, (info, s) in enumerate(zip(infos, (sa, sb), strict=True)):
                    torrent = await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / f"leech{i}",
                        seed=False,
                    )
                    torrent.set_limits(download=(128, 384)[i] * 1024)
                    torrent.add_peers([(FAR_IP, s.listen_port())])
                    torrents.append(torrent)
                got = [0, 0]
                while got[1] < SIZE // 2:
                    await trio.sleep(0.05)
                    got = [t.statistics().downloaded_payload for t in torrents]
    print("bytes when the faster is half-way", got)
    assert got[0] == pytest.approx(got[1] / 3, rel=0.3)


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous", "named"])
async def test_anonymous_mode_on_the_wire(tmp_path: Path, anonymous: bool) -> None:
    """A recording relay between shoal (plaintext, so the BEP 10 handshake is
    readable) and a libtorrent seeder: in anonymous mode our bytes carry no ``v``, no
    ``yourip`` and no ``-SH`` peer id prefix; the control run shows all three."""
    _, info, seed_dir = seed(tmp_path)
    capture = Capture()
    with lt_seed(info, seed_dir) as (session, handle):
        async with trio.open_nursery() as nursery:
            relay = await nursery.start(
                serve_recording_proxy, (FAR_IP, session.listen_port()), capture
            )
            cfg = config(dht=False, anonymous=anonymous, encryption=EncryptionMode.DISABLE)
            async with shoal.open_client(cfg) as client:
                with trio.fail_after(60):
                    await wait_seeding(handle)
                    torrent = await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / "leech",
                        peers=[relay],
                        seed=False,
                    )
                    await torrent.wait_complete()
            nursery.cancel_scope.cancel()
    ours = bytes(capture.upstream)
    assert ours[:20] == b"\x13BitTorrent protocol"  # plaintext: the test can read it
    ext = ours.index(b"d1:md")  # our BEP 10 handshake
    handshake = ours[ext : ext + 300]
    assert (b"1:v" in handshake) is not anonymous
    assert (b"6:yourip" in handshake) is not anonymous
    assert ours[48:51].startswith(b"-SH") is not anonymous


@pytest.mark.parametrize("transports", [("utp",), ("utp", "tcp")], ids=["utp", "both"])
async def test_utp_through_dantes_udp_relay(tmp_path: Path, transports: tuple[str, ...]) -> None:
    """uTP rides on the DHT's socket, which goes through dante's UDP relay: a download
    from a libtorrent seeder that speaks only uTP works, and the seeder sees only the
    proxy's external address."""
    data, info, seed_dir = seed(tmp_path)
    settings = loopback_settings(FAR_IP) | {
        "enable_dht": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_tcp": False,
    }
    async with run_dante(tmp_path) as proxy:
        with lt_torrent_session(lt, info, seed_dir, settings) as (session, handle):
            seen: set[str] = set()

            async def record_peers() -> None:
                while True:
                    seen.update(p.ip[0] for p in handle.get_peer_info())
                    await trio.sleep(0.01)

            cfg = config(proxy=proxy.url(), transports=transports)
            async with shoal.open_client(cfg) as client, trio.open_nursery() as nursery:
                assert client.utp is not None
                nursery.start_soon(record_peers)
                with trio.fail_after(60):
                    await wait_seeding(handle)
                    torrent = await client.add(
                        parse_metainfo(b"d4:info" + info + b"e"),
                        save_to=tmp_path / "leech",
                        peers=[(FAR_IP, session.listen_port())],
                        seed=False,
                    )
                    await torrent.wait_complete()
                nursery.cancel_scope.cancel()
    assert (tmp_path / "leech" / "f.bin").read_bytes() == data
    assert seen == {EXTERNAL_IP}  # the seeder takes no TCP: this was uTP, relayed
