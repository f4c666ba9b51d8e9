"""``shoal dht get-peers --scrape``, ``put``/``get`` between shoal nodes, and ``keygen``,
as real processes on 127.0.0.1 (the libtorrent interop is in tests/integration)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import trio

from shoal.dht import bep44
from shoal.dht_client import open_dht_node

if TYPE_CHECKING:
    from pathlib import Path

IH = bytes.fromhex("cd" * 20)


async def shoal(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    with trio.fail_after(60):
        proc = await trio.run_process(
            [sys.executable, "-m", "shoal", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = proc.stdout.decode()
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return proc.returncode, lines, out + proc.stderr.decode()


async def test_scrape_estimates_seeds_and_peers_from_several_nodes() -> None:
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        open_dht_node(("127.0.0.1", 0), bootstrap=[router.address]) as other,
    ):
        await other.wait_bootstrapped()
        now = trio.current_time()
        for i in range(40):  # 10 seeds, 30 peers, split over two nodes, 5 IPs on both
            node = (router if i % 2 else other).service.node
            node.peer_store.add(IH, (f"127.3.0.{i}", 6881), now, seed=i < 10)
        router.service.node.peer_store.add(IH, ("127.3.0.20", 6881), now)
        host, port = router.address
        code, lines, text = await shoal(
            "dht",
            "get-peers",
            IH.hex(),
            "--scrape",
            "--bind",
            "127.0.0.1",
            "--bootstrap",
            f"{host}:{port}",
            "--json",
        )
        assert code == 0, text
        (scrape,) = lines
        assert scrape["event"] == "scrape"
        assert scrape["responders"] == 2
        assert abs(scrape["seeds"] - 10) < 1.5
        assert abs(scrape["peers"] - 30) < 2  # 127.3.0.20 is on both nodes: counted once


async def test_put_get_between_shoal_nodes_and_keygen(tmp_path: Path) -> None:
    key = tmp_path / "k"
    code, _, text = await shoal("dht", "keygen", str(key))
    assert code == 0, text
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    code, _, text = await shoal("dht", "keygen", str(key))
    assert code == 1
    assert "already exists" in text
    async with (
        open_dht_node(("127.0.0.1", 0)) as router,
        open_dht_node(("127.0.0.1", 0), bootstrap=[router.address]) as other,
    ):
        await other.wait_bootstrapped()
        node = ["--bind", "127.0.0.1", "--bootstrap", "{}:{}".format(*router.address), "--json"]
        code, (put,), text = await shoal("dht", "put", "héllo", *node)
        assert code == 0, text
        assert put["stored"] == 2
        code, (got,), text = await shoal("dht", "get", put["target"], *node)
        assert code == 0, text
        assert (got["value"], got["seq"], got["nodes"]) == ("héllo", None, 2)
        code, (put,), _ = await shoal("dht", "put", "v1", "--key", str(key), *node)
        assert (put["seq"], put["cas"]) == (1, None)  # nothing stored: nothing to compare
        code, (put,), _ = await shoal("dht", "put", "v2", "--key", str(key), *node)
        # The next seq after what the network holds, sent with cas = the seq read.
        assert (put["seq"], put["cas"], put["stored"]) == (2, 1, 2)
        code, (got,), _ = await shoal("dht", "get", put["public_key"], *node)
        assert (got["value"], got["seq"]) == ("v2", 2)
        code, (stale,), text = await shoal(
            "dht", "put", "old", "--key", str(key), "--seq", "1", *node
        )
        assert code == 1  # refused everywhere
        assert stale["errors"] == [302, 302]
        assert "error 302" in text
        # A writer who read seq 1 (now stale) is refused with 301 by both nodes.
        code, (lost,), text = await shoal(
            "dht", "put", "v3", "--key", str(key), "--cas", "1", *node
        )
        assert code == 1
        assert (lost["seq"], lost["cas"], lost["errors"]) == (2, 1, [301, 301])
        assert "error 301" in text
        assert "re-read" in text
        code, (won,), text = await shoal("dht", "put", "v3", "--key", str(key), "--cas", "2", *node)
        assert code == 0, text
        assert (won["seq"], won["stored"]) == (3, 2)
        code, (missing,), _ = await shoal("dht", "get", "ee" * 20, *node)
        assert code == 1
        assert missing["event"] == "not_found"


async def test_put_keep_reputs_until_interrupted(tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert (await shoal("dht", "keygen", str(key)))[0] == 0
    async with open_dht_node(("127.0.0.1", 0)) as router:
        args = [sys.executable, "-m", "shoal", "dht", "put", "kept", "--key", str(key)]
        args += ["--keep", "--keep-interval", "0.2", "--bind", "127.0.0.1", "--json"]
        args += ["--bootstrap", "{}:{}".format(*router.address)]
        proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            buffer, lines = b"", []
            with trio.fail_after(60):
                while len(lines) < 3:
                    chunk = await proc.stdout.receive_some()
                    assert chunk, "shoal dht put --keep exited early"
                    buffer += chunk
                    *done, buffer = buffer.split(b"\n")
                    lines += [json.loads(line) for line in done if line.strip()]
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(30):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert code == 130
        assert [line["puts"] for line in lines[:3]] == [1, 2, 3]
        assert all(line["stored"] == 1 and line["seq"] == 1 for line in lines)
        assert [line["cas"] for line in lines[:3]] == [None, None, None]
        public = bytes.fromhex(lines[0]["public_key"])
        item = router.service.node.server.items.get(
            bep44.mutable_target(public), trio.current_time()
        )
        assert item is not None
