"""``shoal dht get-peers`` against hostile bootstrap nodes: it gives up, exits 1, says why.

Before ``--timeout`` the command never exited when its only node was silent, answered
with the wrong transaction id, or sent replies too big to parse.
"""

from __future__ import annotations

import json

import pytest
import trio

from shoal.testing.hostile import AttackStats, DHTMode, serve_hostile_dht_node

from .shoal_cli import SHOAL

pytestmark = pytest.mark.integration

IH = "cd" * 20


@pytest.mark.parametrize("mode", list(DHTMode))
async def test_get_peers_gives_up_on_a_hostile_bootstrap_node(mode: DHTMode) -> None:
    stats = AttackStats()
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_hostile_dht_node, mode, stats)
        cmd = [*SHOAL, "dht", "get-peers", IH, "--bind", "127.0.0.1", "--timeout", "2"]
        cmd += ["--bootstrap", f"{host}:{port}"]
        with trio.fail_after(30):
            result = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False
            )
        nursery.cancel_scope.cancel()
    assert result.returncode == 1, result.stderr
    assert b"no peers found within 2s" in result.stderr
    assert stats.datagrams >= 1, "the node was asked"
    assert stats.datagrams <= 20, "retries are bounded, whatever the node does"


async def test_get_peers_timeout_with_peers_found_is_not_an_error() -> None:
    from shoal.dht_client import open_dht_node

    async with (
        open_dht_node(("127.0.0.1", 0)) as a,
        open_dht_node(("127.0.0.1", 0), bootstrap=[a.address]) as b,
    ):
        await b.wait_bootstrapped()
        await b.announce(bytes.fromhex(IH), 51413)
        cmd = [*SHOAL, "dht", "get-peers", IH, "--bind", "127.0.0.1", "--json"]
        cmd += ["--bootstrap", f"{a.address[0]}:{a.address[1]}", "--timeout", "20"]
        with trio.fail_after(30):
            result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["event"] in ("done", "timeout")
    assert lines[-1]["peers"] == 1


def test_timeout_must_be_positive() -> None:
    import subprocess

    out = subprocess.run(
        [*SHOAL, "dht", "get-peers", IH, "--timeout", "0"], capture_output=True, check=False
    )
    assert out.returncode == 2
    assert b"--timeout" in out.stderr
