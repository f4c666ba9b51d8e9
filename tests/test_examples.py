"""docs/examples/*.py run as real programs against a swarm on loopback.

Each test starts a DHT node and a seeding `Client` on 127.0.0.1 in this process and
runs one example as a subprocess, given only loopback addresses.
"""

from __future__ import annotations

import random
import re
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.dht_client import open_dht_node
from shoal.magnet import Magnet
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from shoal.metainfo import Metainfo

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
SIZE = 700_000


class Swarm:
    def __init__(self, router: tuple[str, int], seeder: shoal.Client, meta: Metainfo) -> None:
        self.router = router
        self.seeder = seeder
        self.meta = meta
        self.magnet = str(Magnet(meta.info_hash))


@asynccontextmanager
async def local_swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    """One DHT node, one seeder holding SIZE random bytes, announced on that node."""
    data = tmp_path / "seed" / "example.bin"
    data.parent.mkdir(parents=True)
    data.write_bytes(random.Random(5).randbytes(SIZE))
    meta = parse_metainfo(create_torrent(data, piece_length=32768))
    async with open_dht_node(("127.0.0.1", 0)) as router:
        config = shoal.ClientConfig(bind_host="127.0.0.1", port=0, bootstrap=(router.address,))
        async with shoal.open_client(config) as seeder:
            torrent = await seeder.add(meta, save_to=data.parent, seed=True)
            with trio.fail_after(10):
                await torrent.wait_complete()
                assert seeder.dht is not None
                await seeder.dht.announce(meta.info_hash, seeder.listen_address[1])
            yield Swarm(router.address, seeder, meta)


async def run_example(name: str, *args: str, cwd: Path | None = None) -> str:
    with trio.fail_after(90):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / name), *args],
            cwd=cwd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


async def test_embed_download_fetches_identical_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with local_swarm(tmp_path) as swarm:
        host, port = swarm.router
        text = await run_example("embed_download.py", swarm.magnet, host, str(port), str(out))
    assert text == f"example.bin: {SIZE} bytes verified\n"
    assert (out / "example.bin").read_bytes() == (tmp_path / "seed" / "example.bin").read_bytes()


async def test_dht_lookup_finds_the_seeder(tmp_path: Path) -> None:
    async with local_swarm(tmp_path) as swarm:
        host, port = swarm.router
        info_hash = swarm.meta.info_hash.hex()
        text = await run_example("dht_lookup.py", info_hash, f"{host}:{port}")
        seeder_port = swarm.seeder.listen_address[1]
    lines = text.splitlines()
    assert lines[0].startswith(f"peer 127.0.0.1:{seeder_port} after ")
    assert any(line.startswith("lookup: ") for line in lines)
    assert lines[-1].startswith("routing table: ")
    assert "routing table: 0 nodes" not in lines[-1]


async def test_fetch_metadata_writes_a_torrent_with_the_same_info_hash(tmp_path: Path) -> None:
    out = tmp_path / "fetched.torrent"
    work = tmp_path / "work"
    work.mkdir()
    async with local_swarm(tmp_path) as swarm:
        host, port = swarm.router
        text = await run_example(
            "fetch_metadata.py", swarm.magnet, f"{host}:{port}", str(out), cwd=work
        )
        expected = swarm.meta.info_hash
    fetched = parse_metainfo(out.read_bytes())
    assert fetched.info_hash == expected
    assert text == f"example.bin: {SIZE} bytes in {fetched.info.num_pieces} pieces -> {out}\n"
    assert list(work.iterdir()) == []  # metadata only: no payload, no state written


def test_embed_download_stays_short() -> None:
    lines = (EXAMPLES / "embed_download.py").read_text().splitlines()
    assert len([line for line in lines if line.strip()]) <= 20


def test_the_dht_engine_snippet_in_api_md_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLES.parent / "api.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "DHTNode(" in b]
    exec(compile(snippet, "docs/api.md", "exec"), {"__name__": "snippet"})
    events = [line.split("(")[0] for line in capsys.readouterr().out.splitlines()]
    assert events == ["NodeAdded", "AnnounceReceived", "LookupFinished"]
