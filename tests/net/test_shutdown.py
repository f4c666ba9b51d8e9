"""Bounded shutdown (issue 6): leaving ``open_client`` mid-download, with peer
connections open, DHT queries unanswered and piece data in flight, takes under 2 s
and leaves no file descriptor and no Trio task behind."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import trio
import trio.lowlevel

import shoal
from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from pathlib import Path

#: Big enough that the download is still running when we leave (16 MiB, 256 KiB pieces).
SIZE = 16 * 1024 * 1024
PIECE = 256 * 1024


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def live_tasks() -> list[str]:
    """Names of every task in this run (the test's own and Trio's system tasks too)."""
    out: list[str] = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    todo = [root]
    while todo:
        task = todo.pop()
        out.append(task.name)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return sorted(out)


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


async def test_leaving_open_client_mid_download_is_bounded_and_leak_free(tmp_path: Path) -> None:
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    (data / "big.bin").write_bytes(random.Random(3).randbytes(SIZE))
    metainfo = parse_metainfo(create_torrent(data, piece_length=PIECE))
    # A "DHT node" that never answers: the leecher's bootstrap queries stay pending.
    silent = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    await silent.bind(("127.0.0.1", 0))
    try:
        fds_before = open_fds()
        tasks_before = live_tasks()
        leecher_config = config(dht=True, bootstrap=(silent.getsockname(),), state_dir=tmp_path)
        async with (
            shoal.open_client(config()) as seeder,
            shoal.open_client(leecher_config) as leecher,
        ):
            seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
            with trio.fail_after(10):
                await seeding.wait_complete()
            t = await leecher.add(metainfo, save_to=tmp_path / "leech")
            t.add_peers([seeder.listen_address])
            with trio.fail_after(10):
                while t.statistics().pieces_done < 2:  # noqa: ASYNC110
                    await trio.sleep(0.002)
            stats = t.statistics()
            assert stats.peers == 1
            assert stats.pieces_done < stats.pieces_total  # still downloading
            assert leecher.dht is not None
            assert leecher.dht.statistics().service.queries_out >= 1
            assert open_fds() != fds_before  # sockets and files really are open
            start = trio.current_time()
        elapsed = trio.current_time() - start
        assert elapsed < 2.0, elapsed
        await trio.testing.wait_all_tasks_blocked()
        leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in open_fds() - fds_before}
        assert leaked == {}
        assert fds_before <= open_fds()
        assert live_tasks() == tasks_before
        # The pending DHT queries went to the silent node and were never answered.
        assert (await silent.recv(2048)).startswith(b"d")
    finally:
        silent.close()
    # Shut down mid-download, yet resume data and DHT state were written.
    assert (tmp_path / "dht.json").exists()
    assert any((tmp_path / "resume").iterdir())
