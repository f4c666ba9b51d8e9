"""``shoal dht`` and ``shoal dht get-peers`` as real processes, on 127.0.0.1 only."""

from __future__ import annotations

import json
import re
import signal
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.cli.common import parse_hostport
from shoal.dht_client import open_dht_node

from .shoal_cli import SHOAL, read_json_lines, shoal_process

if TYPE_CHECKING:
    from pathlib import Path

IH = "ab" * 20


async def test_serve_prints_stats_and_saves_state_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "dht.json"
    async with open_dht_node(("127.0.0.1", 0)) as peer:
        host, port = peer.address
        cmd = ["dht", "--bind", "127.0.0.1", "--bootstrap", f"{host}:{port}"]
        cmd += ["--state-file", str(state), "--json", "--interval", "0.2"]
        async with shoal_process(cmd) as proc:
            assert proc.stdout is not None
            with trio.fail_after(20):
                listening, stats = await read_json_lines(proc.stdout, 2)
                assert listening["event"] == "listening"
                assert listening["address"][0] == "127.0.0.1"
                assert stats["event"] == "stats"
                assert stats["nodes"] == 1  # it bootstrapped through `peer`
                assert stats["queries_out_per_s"] >= 0
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 130
    saved = json.loads(state.read_text())
    assert saved["node_id"] == listening["node_id"]
    assert saved["nodes"] == [{"id": peer.node_id.hex(), "ip": host, "port": port}]


async def test_get_peers_prints_the_announced_peer(tmp_path: Path) -> None:
    async with (
        open_dht_node(("127.0.0.1", 0)) as a,
        open_dht_node(("127.0.0.1", 0), bootstrap=[a.address]) as b,
    ):
        await b.wait_bootstrapped()
        await b.announce(bytes.fromhex(IH), 51413)
        cmd = [*SHOAL, "dht", "get-peers", IH, "--bind", "127.0.0.1", "--json"]
        cmd += ["--bootstrap", f"{a.address[0]}:{a.address[1]}"]
        with trio.fail_after(20):
            result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {
        "event": "peer",
        "ip": "127.0.0.1",
        "port": 51413,
        "elapsed": lines[0]["elapsed"],
        "hops": 1,  # `a` stores the peer and is the lookup's seed
    }
    assert lines[-1]["event"] == "done"
    assert lines[-1]["peers"] == 1
    assert lines[-1]["hops"] >= 1


async def test_get_peers_text_output_shows_each_peers_hop() -> None:
    async with (
        open_dht_node(("127.0.0.1", 0)) as a,
        open_dht_node(("127.0.0.1", 0), bootstrap=[a.address]) as b,
    ):
        await b.wait_bootstrapped()
        await b.announce(bytes.fromhex(IH), 51413)
        cmd = [*SHOAL, "dht", "get-peers", IH, "--bind", "127.0.0.1"]
        cmd += ["--bootstrap", f"{a.address[0]}:{a.address[1]}"]
        with trio.fail_after(20):
            result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)
    first = result.stdout.decode().splitlines()[0]
    assert re.fullmatch(r"127\.0\.0\.1:51413\t[0-9.]+s\thop 1", first), first


async def test_get_peers_rejects_a_bad_info_hash() -> None:
    result = await trio.run_process(
        [*SHOAL, "dht", "get-peers", "xyz", "--bootstrap", "127.0.0.1:9"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1
    assert b"invalid info-hash" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6881", ("127.0.0.1", 6881)),
        ("[::1]:1", ("::1", 1)),
        ("h.example:80", ("h.example", 80)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["6881", ":6881", "host:", "host:0", "host:70000", "host:x"])
def test_parse_hostport_rejects(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_hostport(text)
