"""The real ``qbittorrent-api`` package, unmodified, against the real ``shoal daemon``
command: a magnet of a libtorrent seeder found through a loopback DHT, files and
properties, incremental sync/maindata, pause/resume, categories and tags, a restart
(everything back, the completed torrent seeding without a recheck), delete with files.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
import qbittorrentapi
import trio

from tests.integration.peers import (
    LT_SEED_IP,
    dht_router,
    free_port,
    hostport,
    lt_seed,
    lt_session,
    make_content,
    wait_announced,
    wait_lt_seeding,
)

from .helpers import DaemonProcess, poll, start_daemon_process, stop_daemon_process

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAEMON_IP = "127.0.0.8"
PASSWORD = "s3cret-for-tests"


def _client(daemon: DaemonProcess) -> qbittorrentapi.Client:
    client = qbittorrentapi.Client(
        host=daemon.url,
        username="admin",
        password=PASSWORD,
        REQUESTS_ARGS={"timeout": 30},
        VERIFY_WEBUI_CERTIFICATE=False,
    )
    client.auth_log_in()
    return client


async def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


async def test_qbittorrent_api_drives_the_daemon(tmp_path: Path) -> None:
    content = make_content(tmp_path / "seed", "album", [300_000, 200_000], v1_only=True)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    downloads = tmp_path / "downloads"
    web_port = free_port("127.0.0.1")

    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            await wait_lt_seeding(lt_seed(ses, content))
            await wait_announced(router)
            args = [
                "--state-dir",
                str(tmp_path / "state"),
                "--download-dir",
                str(downloads),
                "--bind",
                DAEMON_IP,
                "--port",
                "0",
                "--bootstrap",
                hostport(router),
            ]
            daemon = start_daemon_process(
                tmp_path, web_port, [*args, "--password-file", str(tmp_path / "pw")]
            )
            try:
                qbt = await _call(_client, daemon)
                assert (await _call(qbt.app_version)) == "v4.6.7"
                await _call(
                    qbt.torrents_create_category, "music", save_path=str(downloads / "music")
                )
                answer = await _call(
                    qbt.torrents_add, urls=content.magnet, category="music", tags="lossless,2024"
                )
                assert answer == "Ok."
                h = content.info_hash
                full = await _call(qbt.sync_maindata, rid=0)
                assert full.full_update
                assert h in full.torrents

                def done() -> bool:
                    info = qbt.torrents_info(hashes=h)
                    return bool(info) and info[0].progress == 1.0

                await poll("download", done)
                content.assert_identical(downloads / "music")

                files = await _call(qbt.torrents_files, torrent_hash=h)
                assert sorted((f.name, f.size, f.progress) for f in files) == [
                    ("album/file0.bin", 300_000, 1.0),
                    ("album/file1.bin", 200_000, 1.0),
                ]
                props = await _call(qbt.torrents_properties, torrent_hash=h)
                assert props.save_path == str(downloads / "music")
                assert props.pieces_have == props.pieces_num > 0
                assert props.total_size == 500_000
                trackers = await _call(qbt.torrents_trackers, torrent_hash=h)
                assert "** [DHT] **" in [t.url for t in trackers]

                # Incremental sync: a pause shows up as a changed state, nothing more.
                base = await _call(qbt.sync_maindata, rid=0)
                await _call(qbt.torrents_pause, torrent_hashes=h)
                delta = await _call(qbt.sync_maindata, rid=base.rid)
                assert not delta.get("full_update")
                assert delta.torrents[h]["state"] == "pausedUP"
                assert "name" not in delta.torrents[h]
                await _call(qbt.torrents_resume, torrent_hashes=h)
                resumed = await _call(qbt.torrents_info, hashes=h)
                assert resumed[0].state in ("stalledUP", "uploading")

                await _call(qbt.torrents_add_tags, tags="keep", torrent_hashes=h)
                await _call(qbt.torrents_remove_tags, tags="2024", torrent_hashes=h)
                assert sorted(await _call(qbt.torrents_tags)) == ["2024", "keep", "lossless"]
                assert set((await _call(qbt.torrents_categories)).keys()) == {"music"}
                await _call(qbt.torrents_pause, torrent_hashes=h)
            finally:
                assert stop_daemon_process(daemon) == 0

            # Restart without --password-file: the stored hash still logs us in, and
            # the torrent, its category, tags and paused state are back. A byte
            # flipped with size and mtime kept proves no recheck happened: the resume
            # file is trusted, the corruption goes unnoticed.
            victim = downloads / "music" / "album" / "file1.bin"
            stat = victim.stat()
            with victim.open("r+b") as f:
                f.seek(1000)
                byte = f.read(1)
                f.seek(1000)
                f.write(bytes([byte[0] ^ 0xFF]))
            os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            daemon = start_daemon_process(tmp_path, web_port, args)
            try:
                qbt = await _call(_client, daemon)
                info = await _call(qbt.torrents_info)
                assert [t.hash for t in info] == [h]
                t = info[0]
                assert (t.category, t.tags, t.state) == ("music", "keep, lossless", "pausedUP")
                assert t.progress == 1.0
                # All-time statistics survived the restart; this run's start at zero.
                assert t.downloaded >= 500_000
                assert t.downloaded_session == 0
                props = await _call(qbt.torrents_properties, torrent_hash=h)
                assert props.pieces_have == props.pieces_num
                await _call(qbt.torrents_resume, torrent_hashes=h)

                await _call(qbt.torrents_delete, delete_files=True, torrent_hashes=h)
                assert await _call(qbt.torrents_info) == []
                assert not (downloads / "music" / "album").exists()
            finally:
                assert stop_daemon_process(daemon) == 0
