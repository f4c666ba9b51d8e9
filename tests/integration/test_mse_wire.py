"""What an observer on the path sees: loopback captures of whole downloads.

A recording TCP proxy on 127.0.0.1 sits between a shoal leecher and a seeder (shoal,
or libtorrent with encryption forced). With ``--encryption require`` the capture must
hold neither the BitTorrent protocol string, nor the info-hash, nor any 64-byte window
of the payload; the same capture with ``disable`` must hold all three, which proves
the check can fail (issue 5: "verify that the bytes on the wire are not plaintext").
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal import bencoding
from shoal import torrent_events as tev
from shoal.create import create_torrent
from shoal.metainfo import Metainfo, parse_metainfo
from tests.lt_helpers import loopback_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

Addr = tuple[str, int]
BLOCK = 16 * 1024
PSTR = b"BitTorrent protocol"


@dataclass
class Capture:
    """Bytes seen by the proxy, per direction (leecher→seeder and back)."""

    upstream: bytearray = field(default_factory=bytearray)
    downstream: bytearray = field(default_factory=bytearray)
    connections: int = 0

    def directions(self) -> tuple[bytes, bytes]:
        return bytes(self.upstream), bytes(self.downstream)


async def _pump(src: trio.abc.Stream, dst: trio.abc.Stream, record: bytearray) -> None:
    try:
        while data := await src.receive_some(65536):
            record += data
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _relay(client: trio.SocketStream, target: Addr, capture: Capture) -> None:
    capture.connections += 1
    try:
        server = await trio.open_tcp_stream(*target)
    except OSError:
        return  # serve_listeners closes `client`
    # `async with` closes both even when the first close re-raises our cancellation.
    async with client, server, trio.open_nursery() as nursery:

        async def pump_then_stop(
            src: trio.abc.Stream, dst: trio.abc.Stream, rec: bytearray
        ) -> None:
            await _pump(src, dst, rec)
            nursery.cancel_scope.cancel()  # either side hanging up ends the relay

        nursery.start_soon(pump_then_stop, client, server, capture.upstream)
        nursery.start_soon(pump_then_stop, server, client, capture.downstream)


async def serve_recording_proxy(
    target: Addr, capture: Capture, *, task_status: trio.TaskStatus[Addr]
) -> None:
    """Relay every connection to `target` (loopback only) and record both directions."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    host, port = listeners[0].socket.getsockname()[:2]

    async def handler(stream: trio.SocketStream) -> None:
        await _relay(stream, target, capture)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started((str(host), int(port)))


def windows(payload: bytes) -> list[bytes]:
    """64-byte windows that lie inside one 16 KiB block, so framing cannot split them."""
    starts = [100, len(payload) // 2 // BLOCK * BLOCK + 200, (len(payload) - 1) // BLOCK * BLOCK]
    return [payload[s : s + 64] for s in starts if s + 64 <= len(payload)]


def assert_wire(capture: Capture, info_hash: bytes, payload: bytes, *, visible: bool) -> None:
    up, down = capture.directions()
    # The whole download went through the proxy (bytes + framing, each way at least a handshake).
    assert len(down) >= len(payload)
    assert len(up) >= 68
    markers = [PSTR, info_hash, *windows(payload)]
    assert len(markers) >= 4
    for marker in markers:
        seen = [marker in d for d in (up, down)]
        if visible:
            assert any(seen), marker[:20]
        else:
            assert not any(seen), marker[:20]
    if visible:
        assert PSTR in up  # both handshakes in the clear
        assert PSTR in down
        assert all(w in down for w in windows(payload))


def config(mode: shoal.EncryptionMode) -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False, encryption=mode)


def make_payload(root: Path, size: int) -> tuple[Metainfo, bytes]:
    payload = random.Random(5).randbytes(size)
    (root / "payload.bin").parent.mkdir(parents=True, exist_ok=True)
    (root / "payload.bin").write_bytes(payload)
    return parse_metainfo(create_torrent(root / "payload.bin", piece_length=BLOCK * 2)), payload


async def download_via_proxy(
    leecher_mode: shoal.EncryptionMode, seeder: Addr, metainfo: Metainfo, save_to: Path
) -> tuple[Capture, list[bool]]:
    """Download `metainfo` from `seeder` through a recording proxy.

    Returns the capture and the ``encrypted`` flag of every connection the leecher made.
    """
    capture = Capture()
    flags: list[bool] = []
    async with shoal.open_client(config(leecher_mode)) as leecher, trio.open_nursery() as nursery:
        proxy = await nursery.start(serve_recording_proxy, seeder, capture)
        torrent = await leecher.add(metainfo, save_to=save_to, peers=[proxy])

        async def watch() -> None:
            async for event in torrent.events():
                if isinstance(event, tev.PeerConnected):
                    flags.append(event.encrypted)  # noqa: PERF401 (cancelled mid-loop)

        nursery.start_soon(watch)
        with trio.fail_after(30):
            await torrent.wait_complete()
        nursery.cancel_scope.cancel()
    return capture, flags


@pytest.mark.parametrize(
    ("mode", "visible"),
    [(shoal.EncryptionMode.REQUIRE, False), (shoal.EncryptionMode.DISABLE, True)],
)
async def test_shoal_to_shoal_capture(
    tmp_path: Path, mode: shoal.EncryptionMode, visible: bool
) -> None:
    metainfo, payload = make_payload(tmp_path / "seed", 200_000)
    async with shoal.open_client(config(mode)) as seeder:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(10):
            await seeding.wait_complete()
        capture, flags = await download_via_proxy(
            mode, seeder.listen_address, metainfo, tmp_path / "leech"
        )
    assert (tmp_path / "leech" / "payload.bin").read_bytes() == payload
    assert capture.connections >= 1
    assert flags == [not visible]
    assert_wire(capture, bytes(metainfo.info_hash), payload, visible=visible)


def lt_session(lt: Any, *, forced: bool) -> Any:
    """A loopback-only libtorrent session; `forced`: pe_forced both ways at pe_rc4."""
    settings = loopback_settings(utp=False)
    if forced:
        settings |= {
            "in_enc_policy": int(lt.enc_policy.pe_forced),
            "out_enc_policy": int(lt.enc_policy.pe_forced),
            "allowed_enc_level": int(lt.enc_level.pe_rc4),
        }
    else:
        settings |= {
            "in_enc_policy": int(lt.enc_policy.pe_disabled),
            "out_enc_policy": int(lt.enc_policy.pe_disabled),
        }
    return lt.session(settings)


def lt_torrent(root: Path, seed: int) -> tuple[bytes, Metainfo, bytes]:
    """Write a 150 kB payload under `root`; return (torrent bytes, metainfo, payload)."""
    payload = random.Random(seed).randbytes(150_000)
    root.mkdir(parents=True, exist_ok=True)
    (root / "p.bin").write_bytes(payload)
    info: dict[bytes, bencoding.Bencoded] = {
        b"name": b"p.bin",
        b"length": len(payload),
        b"piece length": BLOCK * 2,
        b"pieces": b"".join(
            hashlib.sha1(payload[i : i + 2 * BLOCK]).digest()
            for i in range(0, len(payload), 2 * BLOCK)
        ),
    }
    torrent = bencoding.encode({b"info": info})
    return torrent, parse_metainfo(torrent), payload


def has_content(path: Path, content: bytes) -> bool:
    return path.exists() and path.read_bytes() == content


async def wait_lt_seeding(handle: Any) -> None:
    # libtorrent's state lives in its own threads: polling is the only way.
    while not handle.status().is_seeding:  # noqa: ASYNC110
        await trio.sleep(0.05)


async def test_libtorrent_seed_capture_with_encryption_required(tmp_path: Path) -> None:
    """libtorrent forced to RC4 both ways; shoal requires it; the capture stays opaque."""
    lt = pytest.importorskip("libtorrent")
    torrent, metainfo, payload = lt_torrent(tmp_path / "seed", 6)
    params = lt.load_torrent_buffer(torrent)
    params.save_path = str(tmp_path / "seed")
    session = lt_session(lt, forced=True)
    handle = session.add_torrent(params)
    try:
        with trio.fail_after(20):
            await wait_lt_seeding(handle)
        capture, flags = await download_via_proxy(
            shoal.EncryptionMode.REQUIRE,
            ("127.0.0.1", session.listen_port()),
            metainfo,
            tmp_path / "leech",
        )
    finally:
        session.remove_torrent(handle)
        del handle, session
    assert (tmp_path / "leech" / "p.bin").read_bytes() == payload
    assert flags == [True]
    assert_wire(capture, bytes(metainfo.info_hash), payload, visible=False)


@pytest.mark.parametrize(
    ("mode", "visible"),
    [(shoal.EncryptionMode.REQUIRE, False), (shoal.EncryptionMode.DISABLE, True)],
)
async def test_libtorrent_leech_capture(
    tmp_path: Path, mode: shoal.EncryptionMode, visible: bool
) -> None:
    """The other role on the wire: libtorrent dials the proxy, shoal's listener answers."""
    lt = pytest.importorskip("libtorrent")
    torrent, metainfo, payload = lt_torrent(tmp_path / "seed", 8)
    capture = Capture()
    async with shoal.open_client(config(mode)) as seeder, trio.open_nursery() as nursery:
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(10):
            await seeding.wait_complete()
        proxy = await nursery.start(serve_recording_proxy, seeder.listen_address, capture)
        params = lt.load_torrent_buffer(torrent)
        params.save_path = str(tmp_path / "leech")
        session = lt_session(lt, forced=not visible)
        handle = session.add_torrent(params)
        try:
            handle.connect_peer(proxy)
            with trio.fail_after(30):
                await wait_lt_seeding(handle)
                # libtorrent reports completion before its disk thread has written.
                while not has_content(tmp_path / "leech" / "p.bin", payload):  # noqa: ASYNC110
                    await trio.sleep(0.05)
        finally:
            session.remove_torrent(handle)
            del handle, session
        stats = seeding.statistics()
        nursery.cancel_scope.cancel()
    assert capture.connections >= 1
    assert stats.uploaded >= len(payload)
    # Seeder's view: upstream is libtorrent -> shoal, downstream carries the payload.
    assert_wire(capture, bytes(metainfo.info_hash), payload, visible=visible)
