"""SIGHUP makes a real ``shoal daemon`` re-read ``--ip-filter`` (issue 14): a list that
now blocks the libtorrent seeder it downloads from closes that connection, and a file
that cannot be parsed leaves the old list in place with one clear line on stderr."""

from __future__ import annotations

import gzip
import os
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
    wait_lt,
    wait_lt_seeding,
)

from .helpers import add_magnet, poll, start_daemon_process, stop_daemon_process

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration]

DAEMON_IP = "127.0.0.13"


def _seeds(url: str) -> int:
    info = requests.get(url + "/api/v2/torrents/info", timeout=30).json()
    return int(info[0]["num_seeds"]) if info else -1


async def _wait_log(log: Path, text: str) -> str:
    return str(await poll(text, lambda: text in log.read_text(errors="replace") and text))


async def test_sighup_reloads_the_ip_filter_and_drops_blocked_peers(tmp_path: Path) -> None:
    content = make_content(tmp_path / "seed", "big", [2 * 1024 * 1024], v1_only=True)
    block_list = tmp_path / "block.dat"
    block_list.write_text("192.0.2.0 - 192.0.2.255 , 000 , documentation only\n")
    web_port = free_port("127.0.0.1")
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            seed = lt_seed(ses, content)
            await wait_lt_seeding(seed)
            await wait_announced(router)
            seed.set_upload_limit(32 * 1024)  # about a minute: still downloading throughout
            args = ["--state-dir", str(tmp_path / "state"), "--download-dir"]
            args += [str(tmp_path / "downloads"), "--bind", DAEMON_IP, "--port", "0"]
            args += ["--bootstrap", hostport(router), "--localhost-bypass"]
            args += ["--ip-filter", str(block_list)]
            daemon = start_daemon_process(tmp_path, web_port, args)
            try:
                assert await add_magnet(daemon, content.magnet) == "Ok."
                await poll("connected to the seeder", lambda: _seeds(daemon.url) >= 1)

                # A corrupt file: the old list stays (still connected), one line says why.
                block_list.write_bytes(gzip.compress(b"x:127.0.0.0-127.255.255.255\n")[:20])
                os.kill(daemon.proc.pid, signal.SIGHUP)
                await _wait_log(daemon.log, "IP filter not reloaded, keeping the previous list")
                assert daemon.proc.poll() is None
                assert await trio.to_thread.run_sync(_seeds, daemon.url) >= 1

                # Now the seeder's address is blocked: its connection goes, for good.
                block_list.write_text(f"seeder:{LT_SEED_IP}-{LT_SEED_IP}\n")
                os.kill(daemon.proc.pid, signal.SIGHUP)
                line = await _wait_log(daemon.log, "IP filter reloaded from")
                await poll("seeder dropped", lambda: _seeds(daemon.url) == 0)
                await wait_lt(seed, "peer gone", lambda s: s.num_peers == 0)
                assert daemon.proc.poll() is None
                text = daemon.log.read_text(errors="replace")
                assert "1 ranges, 1 connections closed" in text, line
            finally:
                assert stop_daemon_process(daemon) == 0
