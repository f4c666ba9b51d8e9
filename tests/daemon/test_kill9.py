"""``kill -9`` in the middle of a download, then a restart: the torrent is still there
and the download resumes to identical bytes (the database and resume files are written
so that a hard kill loses at most recent statistics)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest
import requests
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

from .helpers import add_magnet, poll, start_daemon_process, stop_daemon_process

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAEMON_IP = "127.0.0.9"


def _progress(url: str) -> float:
    info = requests.get(url + "/api/v2/torrents/info", timeout=30).json()
    return float(info[0]["progress"]) if info else -1.0


async def test_kill_9_mid_download_then_restart_resumes(tmp_path: Path) -> None:
    content = make_content(tmp_path / "seed", "big", [3 * 1024 * 1024], v1_only=True)
    downloads = tmp_path / "downloads"
    web_port = free_port("127.0.0.1")
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            seed = lt_seed(ses, content)
            await wait_lt_seeding(seed)
            await wait_announced(router)
            # A per-torrent limit (session limits exempt local peers): ~12 s for 3 MiB.
            seed.set_upload_limit(256 * 1024)
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
                "--localhost-bypass",
            ]
            daemon = start_daemon_process(tmp_path, web_port, args)
            try:
                assert await add_magnet(daemon, content.magnet) == "Ok."
                progress = await poll("a quarter", lambda: _progress(daemon.url) >= 0.25 and 1)
                assert await trio.to_thread.run_sync(_progress, daemon.url) < 1.0, progress
            finally:
                assert stop_daemon_process(daemon, signal.SIGKILL) == -signal.SIGKILL

            daemon = start_daemon_process(tmp_path, web_port, args)
            try:
                # Still there after the kill (progress -1 would mean "no torrent").
                assert await trio.to_thread.run_sync(_progress, daemon.url) >= 0.0
                seed.set_upload_limit(-1)
                await poll("complete", lambda: _progress(daemon.url) == 1.0)
                content.assert_identical(downloads)
            finally:
                assert stop_daemon_process(daemon) == 0
