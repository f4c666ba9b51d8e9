"""``shoal remote`` (a real subprocess) against a daemon: add, list, pause, resume and
remove over the Web API, and one-line errors for a wrong password or an unknown hash."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import trio

from .helpers import PASSWORD, web_daemon

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

HASH = "00112233445566778899aabbccddeeff00112233"


async def _remote(url: str, pw: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "shoal", "remote", *args, "--url", url, "--password-file", str(pw)]
    with trio.fail_after(60):
        return await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)


async def test_remote_add_list_pause_resume_remove(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    async with web_daemon(tmp_path / "d") as web:
        added = await _remote(web.url, pw, "add", f"magnet:?xt=urn:btih:{HASH}&dn=remote-test")
        assert added.returncode == 0, added.stderr
        assert web.running.daemon.hashes() == [HASH]

        listed = await _remote(web.url, pw, "list")
        assert listed.returncode == 0
        line = listed.stdout.decode().strip()
        assert line.startswith(HASH[:12])
        assert "remote-test" in line
        assert "metaDL" in line

        assert (await _remote(web.url, pw, "pause", HASH[:8])).returncode == 0
        assert web.running.daemon.view(HASH).row.paused
        assert (await _remote(web.url, pw, "resume", "all")).returncode == 0
        assert not web.running.daemon.view(HASH).row.paused

        unknown = await _remote(web.url, pw, "remove", "ffff")
        assert unknown.returncode == 1
        assert (
            unknown.stderr.decode().strip()
            == "shoal: 'ffff' matches no torrent; give more of the hash"
        )

        assert (await _remote(web.url, pw, "remove", HASH)).returncode == 0
        assert web.running.daemon.hashes() == []

        pw.write_text("wrong\n")
        refused = await _remote(web.url, pw, "list")
        assert refused.returncode == 1
        assert refused.stderr.decode().strip() == "shoal: login refused: wrong username or password"
