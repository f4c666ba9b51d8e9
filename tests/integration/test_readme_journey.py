"""Issue 6's "done when", as one run: a magnet from a local libtorrent seeder, found
through the DHT, downloaded by ``shoal get`` with the live display on a terminal.

The libtorrent seed (hybrid v1+v2, multi-file with pad files) and shoal meet only
through a shoal DHT node on 127.0.0.1; ``shoal get``'s stdout is a pseudo-terminal, so
rich draws its live view, and the run must still end with exit 0, the one summary
line, and files identical to the seed's.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pytest
import trio

from tests.cli.helpers import run_on_pty

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


async def test_magnet_from_libtorrent_with_the_live_display(tmp_path: Path) -> None:
    content = make_content(tmp_path / "seed", "journey", [300_000, 5, 70_001], v1_only=False)
    out = tmp_path / "out"
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router) as ses:
            await wait_lt_seeding(lt_seed(ses, content))
            await wait_announced(router)
            argv = ["get", content.magnet, "-o", str(out)]
            argv += ["--bind", SHOAL_IP, "--port", "0", "--bootstrap", hostport(router)]
            argv += ["--no-seed", "--timeout", str(DEADLINE - 10)]
            status, _, seen, err = await trio.to_thread.run_sync(
                functools.partial(
                    run_on_pty,
                    argv,
                    stdout_on_tty=True,
                    stderr_on_tty=False,
                    columns=120,
                    read_for=DEADLINE,
                )
            )
    assert status == 0, err
    assert err == ""
    assert b"\x1b[" in seen, "the view is drawn in place"
    assert b"journey" in seen
    assert b"verified in" in seen, "the summary line"
    content.assert_identical(out)
