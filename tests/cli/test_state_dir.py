"""The state directory makes the second run start warm (issue 6).

Run 1 joins a DHT through its only node (the router) and is stopped with Ctrl-C; it saves
``dht.json`` in ``--state-dir``. Run 2 is given only a bootstrap address where nothing
listens, so any DHT node it has can only have come from the saved state.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import trio

from tests.integration.peers import SHOAL_IP, dht_router, hostport, shoal_process

from .helpers import run_shoal

if TYPE_CHECKING:
    from pathlib import Path

DEAD_BOOTSTRAP = "127.0.0.1:9"  # the discard port: nothing answers


@pytest.mark.integration
async def test_second_run_starts_with_the_saved_dht_nodes(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 400)
    torrent = tmp_path / "data.torrent"
    made = run_shoal("create", str(data), "-o", str(torrent))
    assert made.returncode == 0, made.stderr
    state = tmp_path / "state"

    def get_args(bootstrap: str, out: str) -> list[str]:
        return [
            "get", str(torrent), "-o", str(tmp_path / out), "--bind", SHOAL_IP, "--port", "0",
            "--bootstrap", bootstrap, "--state-dir", str(state), "--interval", "0.2",
        ]  # fmt: skip

    async with dht_router() as router:
        async with shoal_process(get_args(hostport(router), "one"), tmp_path / "g1") as first:
            await first.wait_record("progress", lambda r: r["dht_nodes"] >= 1)
        # Leaving shoal_process sent SIGINT; the client saved the routing table.
        saved = json.loads((state / "dht.json").read_text())
        assert [n["port"] for n in saved["nodes"]] == [router.address[1]]

        async with shoal_process(get_args(DEAD_BOOTSTRAP, "two"), tmp_path / "g2") as second:
            with trio.fail_after(20):
                record = await second.wait_record("progress", lambda r: r["dht_nodes"] >= 1)
        assert record["dht_nodes"] >= 1
