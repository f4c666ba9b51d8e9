"""Issue 6's "done when", as one run: a magnet from a local libtorrent seeder, found
through the DHT, downloaded by ``shoal get`` with the live display on a terminal.

The libtorrent seed (hybrid v1+v2, multi-file with pad files) and shoal meet only
through a shoal DHT node on 127.0.0.1; ``shoal get``'s stdout is a pseudo-terminal, so
rich draws its live view, and the run must still end with exit 0, the one summary
line, and files identical to the seed's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import trio

from .peers import (
    DEADLINE,
    LT_SEED_IP,
    SHOAL_IP,
    dht_router,
    hostport,
    lt_seed,
    lt_session,
    make_content,
    require_libtorrent,
    wait_announced,
    wait_lt_seeding,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

require_libtorrent()


def _run_on_a_pty(argv: list[str]) -> tuple[int, bytes, str]:
    """Run `argv` with stdout on a new pseudo-terminal; (status, terminal bytes, stderr)."""
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "NO_COLOR"}}
    env |= {"TERM": "xterm-256color", "COLUMNS": "120"}
    with os.fdopen(master, "rb", buffering=0) as tty:
        proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        seen = b""
        try:
            while True:
                try:
                    chunk = tty.read(4096)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                seen += chunk
            status = proc.wait(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    return status, seen, err


async def test_magnet_from_libtorrent_with_the_live_display(tmp_path: Path) -> None:
    content = make_content(tmp_path / "seed", "journey", [300_000, 5, 70_001], v1_only=False)
    out = tmp_path / "out"
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            await wait_lt_seeding(lt_seed(ses, content))
            await wait_announced(router)
            argv = [sys.executable, "-m", "shoal", "get", content.magnet, "-o", str(out)]
            argv += ["--bind", SHOAL_IP, "--port", "0", "--bootstrap", hostport(router)]
            argv += ["--no-seed", "--timeout", str(DEADLINE - 10)]
            status, seen, err = await trio.to_thread.run_sync(_run_on_a_pty, argv)
    assert status == 0, err
    assert err == ""
    assert b"\x1b[" in seen, "the view is drawn in place"
    assert b"journey" in seen
    assert b"verified in" in seen, "the summary line"
    content.assert_identical(out)
